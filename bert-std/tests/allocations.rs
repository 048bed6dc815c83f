//! Pipelines keep their workspaces between calls (the core's allocate-once rule, one level up):
//! a second call of a shape seen before builds no workspace and allocates far less than one
//! workspace holds (what is left is tokenization and the results). Counted with a global
//! allocator.
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::pipelines::fill_mask::FillMask;
use bert_std::{LoadOptions, Pipeline};
use common::*;

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is only
// incremented.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        BYTES.fetch_add(layout.size(), Ordering::SeqCst);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is passed on as is.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        BYTES.fetch_add(new_size, Ordering::SeqCst);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn bytes_during(f: impl FnOnce()) -> usize {
    let before = BYTES.load(Ordering::SeqCst);
    f();
    BYTES.load(Ordering::SeqCst) - before
}

#[test]
fn pipelines_reuse_their_workspaces() {
    let options = LoadOptions {
        threads: 1,
        ..LoadOptions::default()
    };
    let st = SentenceEmbeddings::load(minilm(), options).unwrap();
    let texts: Vec<String> = (0..16)
        .map(|i| format!("sentence {i} of a batch that is long enough to matter here"))
        .collect();
    let first = bytes_during(|| drop(st.embed(&texts).unwrap()));
    assert_eq!(st.bert.workspaces_built(), 1);
    let second = bytes_during(|| drop(st.embed(&texts).unwrap()));
    assert_eq!(
        st.bert.workspaces_built(),
        1,
        "a shape seen before builds nothing"
    );
    // A smaller call fits the same workspace.
    st.embed(&["short"]).unwrap();
    assert_eq!(st.bert.workspaces_built(), 1);
    eprintln!("embed 16 texts: first call {first} bytes, second {second} bytes");
    assert!(
        second * 4 < first,
        "second call {second} B vs first {first} B"
    );

    let fm = FillMask::load(splade(), options).unwrap();
    let masked = ["a [MASK] b", "the [MASK] of [MASK]"];
    fm.run(&masked, &Default::default()).unwrap();
    let built = fm.bert.workspaces_built();
    fm.run(&masked, &Default::default()).unwrap();
    fm.run(&masked[..1], &Default::default()).unwrap();
    assert_eq!(fm.bert.workspaces_built(), built);
}
