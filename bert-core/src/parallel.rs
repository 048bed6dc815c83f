//! Intra-op parallelism without a thread pool in the core: [`Parallel::join`] runs two
//! closures, possibly at the same time. The model splits its work into halves by rows (each
//! half owns its rows of every buffer and its own [`ThreadScratch`](crate::model::ThreadScratch)),
//! so the split needs no locks and no `unsafe`.
//!
//! The core ships [`Sequential`]; `bert-std` provides a rayon implementation.

/// Something that runs two closures and returns when both are done.
pub trait Parallel: Sync {
    /// Run `a` and `b`, possibly in parallel.
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send));
}

/// Runs `a`, then `b`, on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sequential;

impl Parallel for Sequential {
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        a();
        b();
    }
}
