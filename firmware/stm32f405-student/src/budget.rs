//! What the firmware measures of its own memory: the flash image from the linker's symbols,
//! the heap's high-water mark (the highest byte any allocation reached), and the stack's
//! (painted at start, the untouched paint counted at the end).

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicUsize, Ordering};

use embedded_alloc::LlffHeap;

/// The part's flash: 1 MiB at 0x0800_0000.
pub const FLASH_START: usize = 0x0800_0000;
pub const FLASH_LEN: usize = 1024 * 1024;
/// The part's SRAM as QEMU's netduinoplus2 models it: 192 KiB at 0x2000_0000.
pub const RAM_START: usize = 0x2000_0000;
pub const RAM_LEN: usize = 192 * 1024;
const RAM_END: usize = RAM_START + RAM_LEN;
/// The top of RAM kept for the stack; the heap gets what lies between the static data and it.
pub const STACK_RESERVE: usize = 16 * 1024;
const PAINT: u32 = 0x5EED_F00D;

extern "C" {
    static __sidata: u8;
    static __sdata: u8;
    static __edata: u8;
    static __sheap: u8;
}

/// Bytes of flash the image takes (code, constants, the blobs, `.data`'s initial values).
pub fn flash_used() -> usize {
    // Only the addresses of the linker's symbols are taken, never their contents.
    let (sidata, sdata, edata) = (
        core::ptr::addr_of!(__sidata) as usize,
        core::ptr::addr_of!(__sdata) as usize,
        core::ptr::addr_of!(__edata) as usize,
    );
    sidata - FLASH_START + (edata - sdata)
}

/// Bytes of RAM the static data (`.data`, `.bss`) takes: the heap starts where it ends.
pub fn static_ram() -> usize {
    heap_start() - RAM_START
}

fn heap_start() -> usize {
    // Only the address of the linker's symbol is taken.
    (core::ptr::addr_of!(__sheap) as usize + 7) & !7
}

/// The heap: LlffHeap over [end of static data, RAM end − STACK_RESERVE), with the highest
/// address any allocation reached recorded.
pub struct TrackedHeap {
    heap: LlffHeap,
    top: AtomicUsize,
}

impl TrackedHeap {
    pub const fn new() -> Self {
        TrackedHeap {
            heap: LlffHeap::empty(),
            top: AtomicUsize::new(0),
        }
    }

    /// Hands the heap its memory. Call once, first thing.
    pub fn init(&self) {
        let start = heap_start();
        // SAFETY: [start, RAM_END − STACK_RESERVE) lies between the static data and the
        // stack's reserve: nothing else uses it; init runs once, before any allocation.
        unsafe { self.heap.init(start, RAM_END - STACK_RESERVE - start) };
        self.top.store(start, Ordering::Relaxed);
    }

    /// Bytes from the heap's start to the highest byte any allocation has reached.
    pub fn high_water(&self) -> usize {
        self.top.load(Ordering::Relaxed) - heap_start()
    }
}

// SAFETY: every call is forwarded unchanged to LlffHeap (a sound GlobalAlloc); the only
// addition is recording the end of each block handed out.
unsafe impl GlobalAlloc for TrackedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.heap.alloc(layout) };
        if !p.is_null() {
            self.top
                .fetch_max(p as usize + layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.heap.dealloc(ptr, layout) }
    }
}

/// Fills the stack's reserve below the current stack pointer with a pattern.
#[inline(never)]
pub fn paint_stack() {
    let sp = cortex_m::register::msp::read() as usize;
    let mut at = RAM_END - STACK_RESERVE;
    // Leave this function's own frame (and a margin) alone.
    while at + 256 < sp {
        // SAFETY: [RAM_END − STACK_RESERVE, sp − 256) is the stack's reserve below the live
        // frames: no one has data there, and the heap ends below it.
        unsafe { core::ptr::write_volatile(at as *mut u32, PAINT) };
        at += 4;
    }
}

/// Bytes of stack used since [`paint_stack`]: from the top of RAM down to the lowest word whose
/// paint was overwritten (the whole reserve if even the bottom word was).
pub fn stack_high_water() -> usize {
    let mut at = RAM_END - STACK_RESERVE;
    // SAFETY: reads words of the stack's reserve, all inside RAM.
    while at < RAM_END && unsafe { core::ptr::read_volatile(at as *const u32) } == PAINT {
        at += 4;
    }
    RAM_END - at
}
