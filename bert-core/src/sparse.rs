//! SPLADE sparse embeddings over a masked-LM head: for each sequence, `max over its tokens of
//! log(1 + ReLU(logits))`, one weight per vocabulary term (most of them zero). The vocabulary
//! logits are computed a few token rows at a time, so the `[tokens, vocab]` tensor is never
//! built: the workspace holds [`SPARSE_ROWS`] rows of logits whatever the batch.

use crate::error::{Error, Result};
use crate::heads::BertForMaskedLM;
use crate::model::{Batch, HeadParts, Workspace};

/// Token rows whose vocabulary logits are computed at once.
pub const SPARSE_ROWS: usize = 32;

impl BertForMaskedLM<'_> {
    /// A workspace for [`forward_sparse`](Self::forward_sparse).
    pub fn workspace_sparse(&self, max_batch: usize, max_seq: usize) -> Result<Workspace> {
        self.workspace_at(max_batch, max_seq, SPARSE_ROWS)
    }

    /// `out[b, v] = max over the real tokens t of sequence b of log(1 + max(0, logits[t, v]))`
    /// (`out` is `[batch, vocab]`), as SPLADE's max pooling with the attention mask.
    pub fn forward_sparse(
        &self,
        batch: &Batch<'_>,
        ws: &mut Workspace,
        out: &mut [f32],
    ) -> Result<()> {
        let (h, v) = (self.bert.config.hidden_size, self.bert.config.vocab_size);
        if out.len() != batch.batch_size * v {
            return Err(Error::LengthMismatch {
                what: "sparse output",
                len: out.len(),
                expected: batch.batch_size * v,
            });
        }
        if ws.head_output.len() < SPARSE_ROWS * v || ws.head_work.len() < 2 * SPARSE_ROWS * h {
            return Err(Error::ResourceLimit {
                what: "sparse rows (use workspace_sparse)".into(),
                limit: ws.head_output.len() / v.max(1),
            });
        }
        self.bert.forward_for_head(batch, ws)?;
        let HeadParts {
            hidden,
            output: logits,
            work,
            scratch,
            ..
        } = ws.head_parts();
        let (gathered, transformed) = work.split_at_mut(SPARSE_ROWS * h);
        let we = &self.bert.embeddings.word_embeddings.weight;
        let s = batch.seq_len;
        for (b, acc) in out.chunks_exact_mut(v).enumerate() {
            acc.fill(0.0); // log(1 + relu(x)) >= 0
            let real =
                (b * s..(b + 1) * s).filter(|&t| batch.attention_mask.is_none_or(|m| m[t] != 0));
            let mut rows = [0usize; SPARSE_ROWS];
            let mut n = 0;
            let mut flush = |rows: &[usize], gathered: &mut [f32], logits: &mut [f32]| {
                let p = rows.len();
                for (dst, &i) in gathered.chunks_exact_mut(h).zip(rows) {
                    dst.copy_from_slice(&hidden[i * h..(i + 1) * h]);
                }
                self.predictions
                    .forward(we, gathered, p, logits, transformed, scratch);
                for row in logits[..p * v].chunks_exact(v) {
                    for (a, &x) in acc.iter_mut().zip(row) {
                        let w = libm::log1pf(x.max(0.0));
                        if w > *a {
                            *a = w;
                        }
                    }
                }
            };
            for t in real {
                rows[n] = t;
                n += 1;
                if n == SPARSE_ROWS {
                    flush(&rows, gathered, logits);
                    n = 0;
                }
            }
            if n > 0 {
                flush(&rows[..n], gathered, logits);
            }
        }
        Ok(())
    }
}
