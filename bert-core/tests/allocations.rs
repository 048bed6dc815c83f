//! After warm-up, a forward pass allocates nothing: every buffer is in the workspace (the
//! matmul's packing buffers and quantized activations included). Checked with a counting global
//! allocator, for f32, prepacked f32, int8 and f16 weights, the masked LM head, padded batches
//! with padding removed and kept.
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bert_core::kernels::Precision;
use bert_core::quantize::{quantize, QuantDtype};
use bert_core::weights::AlignedBytes;
use bert_core::{Batch, BertForMaskedLM, BertModel, Sequential, Weights};
use common::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is only
// incremented.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made while `f` runs (this binary has one test, so nothing else allocates).
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    f();
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[test]
fn forward_passes_allocate_nothing_after_warm_up() {
    // The counter sees allocations at all.
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 10]))) > 0);
    let (config, bytes) = load_model_files("all-minilm-l6-v2");
    let int8 = AlignedBytes::copy_from(&quantize(&[&bytes], QuantDtype::Int8).unwrap());
    let f16 = AlignedBytes::copy_from(&quantize(&[&bytes], QuantDtype::F16).unwrap());
    let golden = Golden::open("minilm.safetensors");
    let batch = golden.inputs("batch");
    let short: Vec<u32> = (0..9).map(|i| 1000 + i * 37).collect();
    let (stored, bf16) = (Some(Precision::Stored), Some(Precision::Bf16));
    for (name, file, prepack) in [
        ("f32", &bytes[..], None),
        ("f32 prepacked", &bytes[..], stored),
        ("int8", &int8[..], None),
        ("f16 prepacked", &f16[..], stored),
        ("bf16 compute", &bytes[..], bf16),
    ] {
        let weights = Weights::from_buffers(&[file]).unwrap();
        let mut model = BertModel::load(&config, &weights).unwrap();
        if let Some(precision) = prepack {
            model.prepack_as(precision);
        }
        // One thread, and two (through `Sequential`, which allocates nothing itself): a short
        // input then takes the column split of few-row products.
        for threads in [1, 2] {
            let mut ws = model.workspace(batch.batch, batch.seq).unwrap();
            ws.set_parallelism(threads, &Sequential);
            for remove_padding in [true, false] {
                ws.set_remove_padding(remove_padding);
                for b in [batch.batch(), Batch::single(&short)] {
                    model.forward(&b, &mut ws).unwrap(); // warm-up
                    let n = allocations_in(|| {
                        for _ in 0..3 {
                            let out = model.forward(&b, &mut ws).unwrap();
                            std::hint::black_box(out.last_hidden_state);
                        }
                    });
                    assert_eq!(
                        n, 0,
                        "{name}, {threads} threads (padding removed: {remove_padding})"
                    );
                }
            }
        }
    }

    let (config, bytes) = load_model_files("splade-tiny");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertForMaskedLM::load(&config, &weights).unwrap();
    let golden = Golden::open("splade_tiny.safetensors");
    let batch = golden.inputs("batch");
    let mut ws = model.workspace(batch.batch, batch.seq).unwrap();
    model.forward(&batch.batch(), &mut ws).unwrap();
    let n = allocations_in(|| {
        std::hint::black_box(model.forward(&batch.batch(), &mut ws).unwrap().data);
    });
    assert_eq!(n, 0, "masked LM head");
}
