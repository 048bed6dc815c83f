//! The distilled student on an STM32F405 (QEMU `netduinoplus2`: 1 MiB of flash, 192 KiB of
//! SRAM), no OS. The student's device blob (`bert export-device`) and the intent task (anchor
//! embeddings and held-out questions with the host's answers, `cargo run --example
//! firmware_task`) are linked into flash and read in place. For every question the device
//! tokenizes, runs the low-RAM forward in one arena, and picks the nearest intent; it prints
//! the picks, the memory it used (flash from the linker's symbols, heap and painted-stack
//! high-water marks) and the guest instructions per inference. Then it trains a linear head on
//! the labelled training sentences (the core's backward and AdamW) and classifies the
//! held-out questions with it. It exits through semihosting with 0 only when every pick,
//! cosine, trained weight and loss equals the host's bit for bit and the RAM fits.
#![no_std]
#![no_main]

extern crate alloc;

mod budget;
mod clock;
mod head;
mod intents;
mod selfcheck;
mod task;

use alloc::format;
use alloc::string::String;
use alloc::vec;

use bert_core::device_blob::DeviceModel;
use bert_core::model::low_ram::LowRamPlan;
use cortex_m::peripheral::Peripherals;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprint};

use budget::TrackedHeap;
use task::Task;

/// Tokens embedded at most; the RAM budget is for this many.
pub const MAX_TOKENS: usize = 64;

/// Bytes aligned as the device blob's sections need (64).
#[repr(C, align(64))]
struct Align64<Bytes: ?Sized>(Bytes);

/// The student: config, compiled vocabulary, int8 weights (`bert export-device`).
static STUDENT: &Align64<[u8]> = &Align64(*include_bytes!("../student.bin"));
/// The intent task and the host's answers (examples/firmware_task.rs).
static TASK: &Align64<[u8]> = &Align64(*include_bytes!(env!("STUDENT_TASK_BLOB")));

#[global_allocator]
static HEAP: TrackedHeap = TrackedHeap::new();

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprint!("PANIC: {}\n", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// A number in [-1, 1] shown with four decimals, without the float formatter (8 KB of flash).
pub struct Fixed4(pub f32);

impl core::fmt::Display for Fixed4 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let scaled = (self.0 * 10_000.0) as i32;
        let sign = if scaled < 0 { "-" } else { "" };
        let a = scaled.unsigned_abs();
        write!(f, "{sign}{}.{:04}", a / 10_000, a % 10_000)
    }
}

/// Runs the self-check, the intent matching and the head training. Returns whether every
/// result equals the host's.
fn run(ipk: u64) -> Result<bool, String> {
    if let Err((rows, k, n)) = selfcheck::rowwise_matches_oracle() {
        return Err(format!(
            "the SMLAD row-wise product differs from the integer oracle at {rows}x{k}x{n}"
        ));
    }
    hprint!("kernel self-check: SMLAD row-wise int8 products == integer oracle, bit for bit\n");
    let student = DeviceModel::parse(&STUDENT.0).map_err(|e| format!("student: {e}"))?;
    let encoder = student.encoder().map_err(|e| format!("student: {e}"))?;
    let task = Task::parse(&TASK.0)?;
    let plan = LowRamPlan::of(&student.config, MAX_TOKENS);
    let mut arena = vec![0.0f32; plan.arena_len()];
    hprint!(
        "student: {} layers, hidden {}, {} tokens, int8 in flash (read in place: {}); \
         low-RAM arena for {} tokens: {} bytes\n",
        student.config.num_hidden_layers,
        student.config.hidden_size,
        student.tokenizer.vocab_size(),
        encoder
            .embeddings
            .word_embeddings
            .weight
            .storage
            .is_borrowed(),
        MAX_TOKENS,
        plan.arena_bytes()
    );
    let matched = intents::match_questions(&student, &encoder, &task, &mut arena, ipk)?;
    intents::forward_at_lengths(&student, &encoder, &mut arena, ipk)?;
    let trained = head::train_and_classify(&student, &encoder, &task, &mut arena)?;
    Ok(matched && trained)
}

#[entry]
fn main() -> ! {
    budget::paint_stack();
    HEAP.init();
    let ok = match Peripherals::take() {
        Some(p) => {
            clock::start(p.SYST);
            let ipk = clock::instructions_per_kilotick();
            let result = run(ipk);
            let flash = budget::flash_used();
            let (fixed, heap, stack) = (
                budget::static_ram(),
                HEAP.high_water(),
                budget::stack_high_water(),
            );
            let ram = fixed + heap + stack;
            hprint!(
                "FLASH: {} of {} bytes (student blob {}, task {})\n\
                 RAM: {} of {} bytes (static {} + heap high-water {} + stack high-water {})\n",
                flash,
                budget::FLASH_LEN,
                STUDENT.0.len(),
                TASK.0.len(),
                ram,
                budget::RAM_LEN,
                fixed,
                heap,
                stack
            );
            let fits = flash <= budget::FLASH_LEN
                && ram <= budget::RAM_LEN
                && stack < budget::STACK_RESERVE;
            match result {
                Ok(agree) => agree && fits,
                Err(e) => {
                    hprint!("ERROR: {}\n", e);
                    false
                }
            }
        }
        None => false,
    };
    hprint!("{}\n", if ok { "PASS" } else { "FAIL" });
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}
