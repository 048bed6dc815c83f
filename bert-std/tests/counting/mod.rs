//! A global allocator that counts the bytes asked for, for the tests that prove a path
//! allocates little or nothing. Each such test is its own binary (`#[global_allocator]` is
//! per binary), so no other test's allocations are counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The bytes this thread asked for (a `const` initializer: reading it never allocates).
    static MINE: Cell<usize> = const { Cell::new(0) };
}

fn count(bytes: usize) {
    BYTES.fetch_add(bytes, Ordering::SeqCst);
    // `try_with`: a thread being torn down has no counter left, and is not being measured.
    let _ = MINE.try_with(|m| m.set(m.get() + bytes));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is only
// incremented.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated while `f` runs, and its result.
pub fn bytes_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = BYTES.load(Ordering::SeqCst);
    let out = f();
    (BYTES.load(Ordering::SeqCst) - before, out)
}

/// Bytes this thread allocated while `f` runs, and its result: immune to what the test
/// harness or another test allocates meanwhile, for work that stays on the calling thread.
#[allow(dead_code)] // not every counting binary uses it
pub fn bytes_on_this_thread_during<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let before = MINE.with(Cell::get);
    let out = f();
    (MINE.with(Cell::get) - before, out)
}
