//! Threaded batching: encodings are sorted by length into buckets of `batch_size` (so that a
//! batch pads to its own longest member, not the corpus's), buckets run in parallel on a rayon
//! pool, and results come back in input order. Workspaces are kept between calls by
//! [`crate::Bert`].

use rayon::prelude::*;
use tokenizers::Encoding;

use crate::error::{Error, Result};

/// Run `run` over all `items` at once; if that fails and there is more than one, run each
/// alone, so that a bad item costs only itself (the CLI's chunks of inputs, the server's merged
/// requests). One result per item, in order.
pub fn all_or_each<I, T>(items: &[I], run: impl Fn(&[I]) -> Result<Vec<T>>) -> Vec<Result<T>> {
    match run(items) {
        Ok(all) => all.into_iter().map(Ok).collect(),
        Err(_) if items.len() > 1 => items
            .iter()
            .map(|one| {
                run(std::slice::from_ref(one))?
                    .pop()
                    .ok_or_else(|| Error::Model("internal: no result for an item".into()))
            })
            .collect(),
        Err(e) => vec![Err(e)],
    }
}

/// How to batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Sequences per forward pass.
    pub batch_size: usize,
    /// Sort by length before cutting batches (less padding). Off: batches in input order.
    pub sort_by_length: bool,
}

impl BatchOptions {
    /// The largest batch size accepted: a larger one only grows the workspace.
    pub const MAX_BATCH_SIZE: usize = 4096;

    /// A clear error for a batch size of 0 or over [`Self::MAX_BATCH_SIZE`].
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::Input("batch size must be at least 1".into()));
        }
        if self.batch_size > Self::MAX_BATCH_SIZE {
            return Err(Error::Limit {
                what: "batch size",
                value: self.batch_size,
                max: Self::MAX_BATCH_SIZE,
                hint: String::new(),
            });
        }
        Ok(())
    }
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            batch_size: 32,
            sort_by_length: true,
        }
    }
}

/// A padded `[batch, seq]` batch, ready for the core.
#[derive(Debug, Clone)]
pub struct Padded {
    /// Token ids, padded with the pad id.
    pub ids: Vec<u32>,
    /// Segment ids, padded with 0.
    pub type_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub mask: Vec<u32>,
    /// Sequences (rows).
    pub rows: usize,
    /// Padded length.
    pub seq: usize,
}

impl Padded {
    /// Pad encodings to the longest of them.
    pub fn new(encodings: &[&Encoding], pad_id: u32) -> Self {
        let seq = encodings.iter().map(|e| e.len()).max().unwrap_or(0);
        let rows = encodings.len();
        let mut p = Padded {
            ids: vec![pad_id; rows * seq],
            type_ids: vec![0; rows * seq],
            mask: vec![0; rows * seq],
            rows,
            seq,
        };
        for (i, e) in encodings.iter().enumerate() {
            let n = e.len();
            let row = i * seq..i * seq + n;
            p.ids[row.clone()].copy_from_slice(e.get_ids());
            p.type_ids[row.clone()].copy_from_slice(e.get_type_ids());
            p.mask[row].fill(1);
        }
        p
    }

    /// The core's view of it.
    pub fn core_batch(&self) -> bert_core::Batch<'_> {
        bert_core::Batch::new(&self.ids, self.rows, self.seq)
            .with_token_type_ids(&self.type_ids)
            .with_attention_mask(&self.mask)
    }
}

/// Run `f` over batches of `encodings` on `pool`; `f` gets the padded batch and the input
/// indices of its rows, and returns one result per row. Results come back in input order.
pub fn run_batched<T, F>(
    pool: &rayon::ThreadPool,
    options: BatchOptions,
    encodings: &[Encoding],
    pad_id: u32,
    f: F,
) -> Result<Vec<T>>
where
    T: Send,
    F: Fn(&Padded, &[usize]) -> Result<Vec<T>> + Sync,
{
    options.validate()?;
    let mut order: Vec<usize> = (0..encodings.len()).collect();
    if options.sort_by_length {
        order.sort_by_key(|&i| encodings[i].len());
    }
    let chunks: Vec<&[usize]> = order.chunks(options.batch_size).collect();
    let per_chunk: Vec<Vec<(usize, T)>> = pool.install(|| {
        chunks
            .par_iter()
            .map(|idx| {
                let encs: Vec<&Encoding> = idx.iter().map(|&i| &encodings[i]).collect();
                let padded = Padded::new(&encs, pad_id);
                let out = f(&padded, idx)?;
                if out.len() != idx.len() {
                    return Err(Error::Model(format!(
                        "internal: {} results for {} sequences",
                        out.len(),
                        idx.len()
                    )));
                }
                Ok(idx.iter().copied().zip(out).collect())
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut slots: Vec<Option<T>> = (0..encodings.len()).map(|_| None).collect();
    for (i, v) in per_chunk.into_iter().flatten() {
        slots[i] = Some(v);
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Intra-op parallelism for the core's forward pass on the current rayon pool.
#[derive(Debug, Clone, Copy, Default)]
pub struct RayonJoin;

impl bert_core::Parallel for RayonJoin {
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        rayon::join(a, b);
    }
}
