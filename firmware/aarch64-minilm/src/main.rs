//! all-MiniLM-L6-v2 on bare-metal aarch64 (QEMU `virt`, cortex-a72), no OS: the host packs
//! config.json, vocab.txt, model.safetensors, a sentence and the host's f32 embedding of it into
//! one blob that QEMU places in guest RAM (`-device loader,...,addr=0x48000000`). The device
//! tokenizes the sentence with bert-core's WordPiece, runs the model zero-copy over the blob,
//! mean-pools and normalises, compares with the host's result and exits through semihosting
//! with 0 (within 1e-4) or 1.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::{GlobalAlloc, Layout};
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicUsize, Ordering};

use bert_core::wordpiece::{BasicOptions, WordPieceTokenizer};
use bert_core::{Batch, BertConfig, BertModel, Weights};

/// Where QEMU's loader puts the blob.
const BLOB_ADDR: usize = 0x4800_0000;
/// The heap: between the kernel (+ stack) and the blob.
const HEAP_START: usize = 0x4100_0000;
const HEAP_END: usize = BLOB_ADDR;
/// The largest blob accepted (RAM ends at 0x8000_0000 with `-m 1024`).
const BLOB_MAX: usize = 0x8000_0000 - BLOB_ADDR;

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    mrs     x0, mpidr_el1
    and     x0, x0, #3
    cbz     x0, 2f
1:  wfe
    b       1b
2:  ldr     x0, =__stack_top
    mov     sp, x0
    mov     x0, #(3 << 20)
    msr     cpacr_el1, x0
    isb
    ldr     x0, =__bss_start
    ldr     x1, =__bss_end
3:  cmp     x0, x1
    b.hs    4f
    str     xzr, [x0], #8
    b       3b
4:  bl      firmware_main
5:  wfe
    b       5b
"#
);

/// A bump allocator over the fixed heap region that also takes back the most recent block
/// (last in, first out: gemm's per-call packing buffers are freed in that order), and records
/// the peak.
struct Bump {
    next: AtomicUsize,
    peak: AtomicUsize,
}

// SAFETY: `alloc` hands out disjoint, aligned ranges inside [HEAP_START, HEAP_END), a region no
// other code uses (the linker script ends the image and stack below it; the blob starts at its
// end); it returns null when the region is exhausted. `dealloc` only moves `next` back when the
// freed block is the last one handed out (so no live block is ever handed out twice), and
// otherwise frees nothing, which is sound.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut current = self.next.load(Ordering::Relaxed);
        loop {
            let start = (current + layout.align() - 1) & !(layout.align() - 1);
            let Some(end) = start.checked_add(layout.size()) else {
                return core::ptr::null_mut();
            };
            if end > HEAP_END {
                return core::ptr::null_mut();
            }
            match self
                .next
                .compare_exchange(current, end, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.peak.fetch_max(end, Ordering::Relaxed);
                    return start as *mut u8;
                }
                Err(seen) => current = seen,
            }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let end = ptr as usize + layout.size();
        let _ = self
            .next
            .compare_exchange(end, ptr as usize, Ordering::Relaxed, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Bump = Bump {
    next: AtomicUsize::new(HEAP_START),
    peak: AtomicUsize::new(HEAP_START),
};

/// One semihosting call.
fn semihost(op: u64, param: usize) -> u64 {
    let ret: u64;
    // SAFETY: `hlt #0xf000` is the AArch64 semihosting trap; QEMU (with -semihosting-config
    // enable=on) services it, reading only the parameter block `param` points to, which the
    // callers keep alive for the call. No memory of ours is written.
    unsafe {
        asm!("hlt #0xf000", inout("x0") op => ret, in("x1") param, options(nostack));
    }
    ret
}

fn print(s: &str) {
    let mut z = String::with_capacity(s.len() + 1);
    z.push_str(s);
    z.push('\0');
    semihost(0x04, z.as_ptr() as usize); // SYS_WRITE0
}

fn exit(code: u64) -> ! {
    let block = [0x20026u64, code]; // ADP_Stopped_ApplicationExit, exit status
    semihost(0x18, block.as_ptr() as usize); // SYS_EXIT
    loop {
        core::hint::spin_loop();
    }
}

/// The virtual counter: with QEMU's `-icount shift=0`, one tick = 16 guest instructions at the
/// virt board's 62.5 MHz counter.
fn counter() -> (u64, u64) {
    let (count, freq): (u64, u64);
    // SAFETY: reading CNTVCT_EL0 / CNTFRQ_EL0 has no side effects and is allowed at EL1.
    unsafe {
        asm!("isb", "mrs {c}, cntvct_el0", "mrs {f}, cntfrq_el0", c = out(reg) count, f = out(reg) freq, options(nostack));
    }
    (count, freq)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    print(&format!("PANIC: {info}\n"));
    exit(2)
}

fn read_u64(b: &[u8], at: usize) -> usize {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x) as usize
}

/// The blob's sections: config.json, vocab.txt, model.safetensors, sentence, expected f32.
fn sections(blob: &'static [u8]) -> Result<[&'static [u8]; 5], String> {
    if blob.get(..8) != Some(b"BERTBLOB".as_slice()) {
        return Err("no blob at 0x48000000 (magic BERTBLOB missing)".into());
    }
    let mut out = [&blob[..0]; 5];
    for (i, s) in out.iter_mut().enumerate() {
        let (off, len) = (read_u64(blob, 8 + 16 * i), read_u64(blob, 16 + 16 * i));
        *s = blob
            .get(off..off.checked_add(len).ok_or("bad section")?)
            .ok_or_else(|| format!("section {i} outside the blob"))?;
    }
    Ok(out)
}

fn run() -> Result<bool, String> {
    // SAFETY: QEMU's loader wrote the blob to guest RAM at BLOB_ADDR before the CPU started;
    // nothing writes that region afterwards (the heap ends below it), and the first 8 bytes give
    // the blob's total length, checked against the RAM that exists.
    let blob: &'static [u8] = unsafe {
        let header = core::slice::from_raw_parts(BLOB_ADDR as *const u8, 96);
        let total = read_u64(header, 88);
        if total > BLOB_MAX {
            return Err("blob length beyond RAM".into());
        }
        core::slice::from_raw_parts(BLOB_ADDR as *const u8, total)
    };
    let [config, vocab, weights, sentence, expected] = sections(blob)?;
    let config = core::str::from_utf8(config).map_err(|e| format!("{e}"))?;
    let config = BertConfig::from_json(config).map_err(|e| format!("{e}"))?;
    let heap = || ALLOCATOR.next.load(Ordering::Relaxed) - HEAP_START;
    let tokenizer = WordPieceTokenizer::from_vocab(vocab, BasicOptions::default())
        .map_err(|e| format!("{e}"))?;
    let after_vocab = heap();
    let weights = Weights::from_buffers(&[weights]).map_err(|e| format!("{e}"))?;
    let mut model = BertModel::load(&config, &weights).map_err(|e| format!("{e}"))?;
    let before_prepack = heap();
    // The encoder's weights packed once into NEON panels (f32, in RAM): the products then skip
    // packing, which for a handful of tokens costs as much as the arithmetic.
    model.prepack();
    print(&format!(
        "prepacked encoder weights: {} bytes of heap\n",
        heap() - before_prepack
    ));
    let borrowed = model.encoder.layer[0]
        .attention
        .self_attention
        .query
        .weight
        .storage
        .is_borrowed();
    print(&format!(
        "heap: vocab {after_vocab} bytes, + model {} bytes (weights zero-copy: {borrowed})\n",
        heap() - after_vocab
    ));
    let sentence = core::str::from_utf8(sentence).map_err(|e| format!("{e}"))?;
    print(&format!("sentence: {sentence:?}\n"));

    let (t0, freq) = counter();
    let enc = tokenizer.encode(sentence, None);
    let mut ws = model
        .workspace(1, enc.ids.len())
        .map_err(|e| format!("{e}"))?;
    let out = model
        .forward(
            &Batch::single(&enc.ids).with_token_type_ids(&enc.type_ids),
            &mut ws,
        )
        .map_err(|e| format!("{e}"))?;
    let h = out.hidden_size;
    let mut emb: Vec<f32> = alloc::vec![0.0; h];
    for row in out.last_hidden_state.chunks_exact(h) {
        emb.iter_mut().zip(row).for_each(|(e, x)| *e += x);
    }
    let n = enc.ids.len() as f32;
    emb.iter_mut().for_each(|e| *e /= n);
    let norm = libm_sqrt(emb.iter().map(|x| x * x).sum::<f32>()).max(1e-12);
    emb.iter_mut().for_each(|e| *e /= norm);
    let (t1, _) = counter();

    let want: Vec<f32> = expected
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if want.len() != emb.len() {
        return Err(format!(
            "expected {} values, computed {}",
            want.len(),
            emb.len()
        ));
    }
    let diff = emb
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    print(&format!(
        "tokens: {}; embedding[0..4] = {:?}\nmax abs diff vs host f32: {diff:e}\n\
         guest counter: {} ticks at {freq} Hz (with -icount shift=0: ~{} instructions)\n\
         peak heap: {} bytes; kernels: {}\n",
        enc.ids.len(),
        &emb[..4],
        t1 - t0,
        (t1 - t0) * (1_000_000_000 / freq.max(1)),
        ALLOCATOR.peak.load(Ordering::Relaxed) - HEAP_START,
        bert_core::kernels::isa_name(),
    ));
    Ok(diff <= 1e-4)
}

fn libm_sqrt(x: f32) -> f32 {
    // Newton's method is plenty for one normalisation; avoids another dependency here.
    if x <= 0.0 {
        return 0.0;
    }
    let mut r = if x > 1.0 { x } else { 1.0 };
    for _ in 0..40 {
        r = 0.5 * (r + x / r);
    }
    r
}

#[no_mangle]
extern "C" fn firmware_main() -> ! {
    match run() {
        Ok(true) => {
            print("PASS\n");
            exit(0)
        }
        Ok(false) => {
            print("FAIL: embedding differs from the host's\n");
            exit(1)
        }
        Err(e) => {
            print(&format!("ERROR: {e}\n"));
            exit(1)
        }
    }
}
