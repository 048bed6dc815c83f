//! SPLADE-tiny (a bert-tiny-shaped masked LM) with int8 weights on a Cortex-M4F (QEMU
//! `mps2-an386`), no OS: the host packs config.json, vocab.txt, the int8 model.safetensors, a
//! sentence with one `[MASK]` and the host's f32 top-1 token into a blob that QEMU loads into
//! PSRAM. The device tokenizes, runs the model zero-copy over the blob, and exits through
//! semihosting with 0 when its top-1 equals the host's, else 1.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use bert_core::wordpiece::{BasicOptions, WordPieceTokenizer};
use bert_core::{Batch, BertConfig, BertForMaskedLM, Weights};
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{Peripherals, SYST};
use cortex_m_rt::{entry, exception};
use cortex_m_semihosting::{debug, hprint};
use embedded_alloc::LlffHeap as Heap;

/// Where QEMU's loader puts the blob (PSRAM).
const BLOB_ADDR: usize = 0x2100_0000;
/// PSRAM ends here; the heap takes what the blob leaves.
const PSRAM_END: usize = 0x2200_0000;

static HEAP: Heap = Heap::empty();

/// The heap, with its high-water mark recorded.
struct PeakTracking;

/// Largest number of heap bytes in use at any time.
static PEAK: AtomicU32 = AtomicU32::new(0);

// SAFETY: every call is forwarded unchanged to the LlffHeap allocator (itself a sound
// GlobalAlloc); the only addition is reading its usage counter afterwards.
unsafe impl core::alloc::GlobalAlloc for PeakTracking {
    unsafe fn alloc(&self, layout: core::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { HEAP.alloc(layout) };
        PEAK.fetch_max(HEAP.used() as u32, Ordering::Relaxed);
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: core::alloc::Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { HEAP.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: PeakTracking = PeakTracking;

/// SysTick wraps (every 2^24 ticks of the 25 MHz core clock).
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Core-clock ticks since SysTick started. Under QEMU with `-icount shift=0` one guest
/// instruction takes 1 ns of virtual time, so one tick of the 25 MHz clock is 40 instructions.
fn ticks() -> u64 {
    loop {
        let before = WRAPS.load(Ordering::Relaxed);
        let current = SYST::get_current();
        if WRAPS.load(Ordering::Relaxed) == before {
            return u64::from(before) * (1 << 24) + u64::from(0x00FF_FFFF - current);
        }
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprint!("PANIC: {}\n", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

fn read_u64(b: &[u8], at: usize) -> usize {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x) as usize
}

/// The int8 kernel in use (the DSP one) against the portable reference on odd shapes, on the
/// device: both must give exactly the same integer products.
fn kernel_self_check() -> bool {
    use alloc::borrow::Cow;
    use alloc::vec;
    use bert_core::kernels::gemm::{matmul_with, GemmNeeds, GemmScratch, Rhs};
    use bert_core::kernels::{isa, scalar::Scalar, MatMut, MatRef};
    use bert_core::weights::{Matrix, Storage};
    let mut seed = 7u32;
    let mut next = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
    };
    for (m, k, n) in [(1, 7, 5), (3, 33, 9), (5, 384, 17)] {
        let a: alloc::vec::Vec<f32> = (0..m * k).map(|_| next()).collect();
        let q: alloc::vec::Vec<i8> = (0..n * k).map(|_| (next() * 254.0) as i8).collect();
        let scales = vec![0.01f32; n];
        let w = Matrix {
            rows: n,
            cols: k,
            storage: Storage::I8 {
                values: Cow::Borrowed(&q),
                scales: Cow::Borrowed(&scales),
            },
        };
        let needs = GemmNeeds {
            rows: m,
            depth: k,
            int8: true,
        };
        let mut scratch = GemmScratch::new(needs);
        let (mut got, mut want) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
        let lhs = MatRef::dense(&a, m, k);
        matmul_with(
            isa(),
            MatMut::dense(&mut got, m, n),
            lhs,
            Rhs::WeightT(&w),
            false,
            1.0,
            &mut scratch,
        );
        matmul_with(
            &Scalar,
            MatMut::dense(&mut want, m, n),
            lhs,
            Rhs::WeightT(&w),
            false,
            1.0,
            &mut scratch,
        );
        if got != want {
            hprint!("kernel self-check failed at {}x{}x{}\n", m, k, n);
            return false;
        }
    }
    hprint!(
        "kernel self-check: {} int8 kernel == scalar reference\n",
        isa().name()
    );
    true
}

fn run(blob: &'static [u8]) -> Result<bool, String> {
    if !kernel_self_check() {
        return Ok(false);
    }
    if blob.get(..8) != Some(b"BERTBLOB".as_slice()) {
        return Err("no blob at 0x21000000 (magic BERTBLOB missing)".into());
    }
    let section = |i: usize| -> Result<&'static [u8], String> {
        let (off, len) = (read_u64(blob, 8 + 16 * i), read_u64(blob, 16 + 16 * i));
        blob.get(off..off + len)
            .ok_or_else(|| format!("section {i} outside the blob"))
    };
    let config = core::str::from_utf8(section(0)?).map_err(|e| format!("{e}"))?;
    let config = BertConfig::from_json(config).map_err(|e| format!("{e}"))?;
    let tokenizer = WordPieceTokenizer::from_vocab(section(1)?, BasicOptions::default())
        .map_err(|e| format!("{e}"))?;
    let weights = Weights::from_buffers(&[section(2)?]).map_err(|e| format!("{e}"))?;
    let mut model = BertForMaskedLM::load(&config, &weights).map_err(|e| format!("{e}"))?;
    // The encoder's int8 weights packed once into the kernel's panels (393 KB for SPLADE-tiny).
    model.bert.prepack();
    let sentence = core::str::from_utf8(section(3)?).map_err(|e| format!("{e}"))?;
    let expected = read_u64(section(4)?, 0) as u32;
    let mask = tokenizer
        .token_to_id("[MASK]")
        .ok_or("no [MASK] in the vocabulary")?;
    hprint!(
        "sentence: {:?}\nweights: {:?}, {} bytes in PSRAM, zero-copy: {}\n",
        sentence,
        model.bert.encoder.layer[0]
            .intermediate
            .dense
            .weight
            .storage
            .dtype(),
        model.bert.weight_bytes(),
        model.bert.encoder.layer[0]
            .intermediate
            .dense
            .weight
            .storage
            .is_borrowed()
    );

    let start = ticks();
    let enc = tokenizer.encode(sentence, None);
    let positions: alloc::vec::Vec<usize> =
        (0..enc.ids.len()).filter(|&i| enc.ids[i] == mask).collect();
    if positions.len() != 1 {
        return Err(format!("expected one [MASK], found {}", positions.len()));
    }
    let mut ws = model
        .workspace_at(1, enc.ids.len(), 1)
        .map_err(|e| format!("{e}"))?;
    let logits = model
        .forward_at(
            &Batch::single(&enc.ids).with_token_type_ids(&enc.type_ids),
            &positions,
            &mut ws,
        )
        .map_err(|e| format!("{e}"))?;
    let row = logits.row(0);
    let top1 = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b }) as u32;
    let spent = ticks() - start;
    let token: &str = (0..)
        .zip(section(1)?.split(|&b| b == b'\n'))
        .find(|(i, _)| *i == top1)
        .map_or("?", |(_, t)| core::str::from_utf8(t).unwrap_or("?"));
    hprint!(
        "tokens: {}; device top-1: {} ({:?}); host f32 top-1: {}\n\
         inference: {} SysTick ticks at 25 MHz (with -icount shift=0: ~{} instructions)\n\
         peak heap: {} bytes; kernels: {}\n",
        enc.ids.len(),
        top1,
        token,
        expected,
        spent,
        spent * 40,
        PEAK.load(Ordering::Relaxed),
        bert_core::kernels::isa_name()
    );
    Ok(top1 == expected)
}

#[entry]
fn main() -> ! {
    let Some(mut core_p) = Peripherals::take() else {
        debug::exit(debug::EXIT_FAILURE);
        loop {
            cortex_m::asm::wfi();
        }
    };
    core_p.SYST.set_clock_source(SystClkSource::Core);
    core_p.SYST.set_reload(0x00FF_FFFF);
    core_p.SYST.clear_current();
    core_p.SYST.enable_interrupt();
    core_p.SYST.enable_counter();
    // SAFETY: QEMU's loader wrote the blob into PSRAM at BLOB_ADDR before reset; the first 96
    // bytes are its header, whose last word is the blob's total length, checked against PSRAM.
    let blob: &'static [u8] = unsafe {
        let header = core::slice::from_raw_parts(BLOB_ADDR as *const u8, 96);
        let total = read_u64(header, 88).min(PSRAM_END - BLOB_ADDR);
        core::slice::from_raw_parts(BLOB_ADDR as *const u8, total)
    };
    // The heap: PSRAM after the blob (8-byte aligned).
    let heap_start = (BLOB_ADDR + blob.len() + 7) & !7;
    // SAFETY: [heap_start, PSRAM_END) is PSRAM that nothing else uses (the blob ends below it;
    // code, data and stack live in SSRAM); init runs once, before any allocation.
    unsafe { HEAP.init(heap_start, PSRAM_END - heap_start) };
    let code = match run(blob) {
        Ok(true) => {
            hprint!("PASS\n");
            debug::EXIT_SUCCESS
        }
        Ok(false) => {
            hprint!("FAIL: top-1 differs from the host's\n");
            debug::EXIT_FAILURE
        }
        Err(e) => {
            hprint!("ERROR: {}\n", e);
            debug::EXIT_FAILURE
        }
    };
    debug::exit(code);
    loop {
        cortex_m::asm::wfi();
    }
}
