//! A student's first weights cut from the teacher's ([`Init::Teacher`](super::Init::Teacher)):
//! evenly spaced layers, in each the heads whose query-key and value-output products are
//! largest and the FFN neurons whose in and out weights are, and every width brought down to
//! the top principal directions of the teacher's word-embedding rows — one basis for the
//! whole residual stream, so the residual sums still line up (a weight reading the stream is
//! multiplied by the basis, one writing it by its transpose; a LayerNorm's scale is carried
//! into the basis's coordinates).

use bert_core::Weights;

use super::linalg::{principal_directions, Mat};
use super::student::{StudentShape, Tensor};
use crate::error::{Error, Result};

/// The teacher's weights as f64 matrices, by bare name (the family prefix added here).
pub(super) struct Teacher<'t, 'w> {
    weights: &'t Weights<'w>,
}

impl<'t, 'w> Teacher<'t, 'w> {
    /// Over `weights`.
    pub(super) fn new(weights: &'t Weights<'w>) -> Self {
        Teacher { weights }
    }

    /// Tensor `name` (without the family prefix): a matrix, or a vector as one row.
    pub(super) fn get(&self, name: &str) -> Result<Mat> {
        let name = format!("{}{name}", self.weights.encoder_prefix());
        let (dtype, shape, bytes) = self
            .weights
            .raw_tensor(&name)
            .ok_or_else(|| Error::Input(format!("the teacher has no tensor {name}")))?;
        if dtype != bert_core::Dtype::F32 {
            return Err(Error::Input(format!(
                "the teacher's {name} is {dtype}; distilling from it needs f32 weights"
            )));
        }
        let (rows, cols) = match shape {
            [n] => (1, *n),
            [r, c] => (*r, *c),
            _ => {
                return Err(Error::Input(format!(
                    "the teacher's {name} is not 1-D or 2-D"
                )))
            }
        };
        let data = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect();
        Ok(Mat { rows, cols, data })
    }
}

/// Evenly spaced teacher layers for `student` layers out of `teacher`: the first and the last
/// always (`[0, 2, 3, 5]` for 4 of 6).
pub fn layer_choice(student: usize, teacher: usize) -> Vec<usize> {
    if student == 1 {
        return vec![teacher - 1];
    }
    (0..student)
        .map(|i| ((i * (teacher - 1)) as f64 / (student - 1) as f64).round() as usize)
        .collect()
}

/// The `k` indices of the largest `scores`, ascending.
fn strongest(scores: &[f64], k: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(k);
    order.sort_unstable();
    order
}

/// The cut being made: the teacher, the basis (rows of `p`, `[hidden, teacher hidden]`) and
/// the tensors so far.
struct Cut<'a, 't, 'w> {
    t: &'a Teacher<'t, 'w>,
    p: Mat,
    out: Vec<Tensor>,
}

impl Cut<'_, '_, '_> {
    fn put(&mut self, name: String, shape: Vec<usize>, v: &[f64]) {
        self.out
            .push((name, shape, v.iter().map(|&x| x as f32).collect()));
    }

    /// `m` (`[n, teacher hidden]`, reading the stream) in the basis: `[n, hidden]`.
    fn down(&self, m: &Mat) -> Mat {
        m.matmul_t(&self.p)
    }

    /// A matrix saved as it is.
    fn matrix(&mut self, name: String, m: &Mat) {
        self.put(name, vec![m.rows, m.cols], &m.data);
    }

    /// A linear layer `name` from its weight and bias.
    fn linear(&mut self, name: &str, w: &Mat, b: &[f64]) {
        self.matrix(format!("{name}.weight"), w);
        self.put(format!("{name}.bias"), vec![b.len()], b);
    }

    /// A linear layer writing the stream: `W` and `b` brought into the basis.
    fn writing(&mut self, name: &str, w: &Mat, b: &Mat) {
        let (w, b) = (self.p.matmul(w), self.p.matvec(&b.data));
        self.linear(name, &w, &b);
    }

    /// The teacher's LayerNorm `src` as the student's `dst`.
    fn norm(&mut self, src: &str, dst: &str) -> Result<()> {
        let g = self.t.get(&format!("{src}.weight"))?;
        let b = self.t.get(&format!("{src}.bias"))?;
        let (g, b) = (self.p.diag_conj(&g.data), self.p.matvec(&b.data));
        self.put(format!("{dst}.weight"), vec![g.len()], &g);
        self.put(format!("{dst}.bias"), vec![b.len()], &b);
        Ok(())
    }

    /// Teacher layer `tl` as student layer `l`.
    fn layer(
        &mut self,
        s: &StudentShape,
        tc: &bert_core::BertConfig,
        tl: usize,
        l: usize,
    ) -> Result<()> {
        let (src, dst) = (format!("encoder.layer.{tl}"), format!("encoder.layer.{l}"));
        let lin = |n: &str| -> Result<(Mat, Mat)> {
            Ok((
                self.t.get(&format!("{src}.{n}.weight"))?,
                self.t.get(&format!("{src}.{n}.bias"))?,
            ))
        };
        let (q, k, v) = (
            lin("attention.self.query")?,
            lin("attention.self.key")?,
            lin("attention.self.value")?,
        );
        let o = lin("attention.output.dense")?;
        // The heads whose query-key and value-output products are largest (the first
        // `hidden` rows when the head widths differ).
        let (h, d) = (s.hidden, s.hidden / s.heads);
        let rows: Vec<usize> = if tc.head_dim() == d {
            let score = |hd: usize| {
                let r = hd * d..(hd + 1) * d;
                q.0.rows_norm(r.clone()) * k.0.rows_norm(r.clone())
                    + v.0.rows_norm(r.clone()) * o.0.cols_norm(r)
            };
            let scores: Vec<f64> = (0..tc.num_attention_heads).map(score).collect();
            strongest(&scores, s.heads)
                .into_iter()
                .flat_map(|hd| hd * d..(hd + 1) * d)
                .collect()
        } else {
            (0..h).collect()
        };
        for (name, (w, b)) in [("query", &q), ("key", &k), ("value", &v)] {
            let w = self.down(&w.select_rows(&rows));
            let b = b.select_cols(&rows).data;
            self.linear(&format!("{dst}.attention.self.{name}"), &w, &b);
        }
        self.writing(
            &format!("{dst}.attention.output.dense"),
            &o.0.select_cols(&rows),
            &o.1,
        );
        self.norm(
            &format!("{src}.attention.output.LayerNorm"),
            &format!("{dst}.attention.output.LayerNorm"),
        )?;
        // The FFN neurons whose in and out weights are largest.
        let (w1, b1) = lin("intermediate.dense")?;
        let (w2, b2) = lin("output.dense")?;
        let scores: Vec<f64> = (0..w1.rows)
            .map(|n| w1.rows_norm(n..n + 1) * w2.cols_norm(n..n + 1))
            .collect();
        let neurons = strongest(&scores, s.intermediate);
        let w1 = self.down(&w1.select_rows(&neurons));
        self.linear(
            &format!("{dst}.intermediate.dense"),
            &w1,
            &b1.select_cols(&neurons).data,
        );
        self.writing(
            &format!("{dst}.output.dense"),
            &w2.select_cols(&neurons),
            &b2,
        );
        self.norm(
            &format!("{src}.output.LayerNorm"),
            &format!("{dst}.output.LayerNorm"),
        )
    }
}

/// The student's tensors cut from the teacher `t` (config `tc`), whose word-embedding rows,
/// already cut to the student's vocabulary, are `word`; a projection of `projection` outputs
/// starts as the way back to the teacher's space.
pub(super) fn from_teacher(
    s: &StudentShape,
    t: &Teacher<'_, '_>,
    tc: &bert_core::BertConfig,
    word: Mat,
    projection: usize,
) -> Result<Vec<Tensor>> {
    let (th, h) = (tc.hidden_size, s.hidden);
    if h > th
        || s.intermediate > tc.intermediate_size
        || s.max_positions > tc.max_position_embeddings
    {
        return Err(Error::Input(format!(
            "the student ({h} wide, FFN {}, {} positions) must not be wider or longer than the \
             teacher ({th}, {}, {}) to start from it; use --init random",
            s.intermediate, s.max_positions, tc.intermediate_size, tc.max_position_embeddings
        )));
    }
    let mut cut = Cut {
        t,
        p: principal_directions(&word, h),
        out: Vec::new(),
    };
    let down = cut.down(&word);
    cut.matrix("embeddings.word_embeddings.weight".into(), &down);
    let pos = t
        .get("embeddings.position_embeddings.weight")?
        .top_rows(s.max_positions);
    let down = cut.down(&pos);
    cut.matrix("embeddings.position_embeddings.weight".into(), &down);
    let types = t
        .get("embeddings.token_type_embeddings.weight")?
        .top_rows(2);
    let down = cut.down(&types);
    cut.matrix("embeddings.token_type_embeddings.weight".into(), &down);
    cut.norm("embeddings.LayerNorm", "embeddings.LayerNorm")?;
    for (l, &tl) in layer_choice(s.layers, tc.num_hidden_layers)
        .iter()
        .enumerate()
    {
        cut.layer(s, tc, tl, l)?;
    }
    if projection > 0 {
        // Back to the teacher's space: the basis transposed (projection = teacher width), else
        // its first `projection` coordinates.
        let back = cut.p.transpose().top_rows(projection.min(th));
        let mut w = Mat::zeros(projection, h);
        w.data[..back.data.len()].copy_from_slice(&back.data);
        cut.linear("projection", &w, &vec![0.0; projection]);
    }
    Ok(cut.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_spread_from_first_to_last() {
        assert_eq!(layer_choice(4, 6), [0, 2, 3, 5]);
        assert_eq!(layer_choice(3, 6), [0, 3, 5]);
        assert_eq!(layer_choice(2, 6), [0, 5]);
        assert_eq!(layer_choice(1, 6), [5]);
        assert_eq!(layer_choice(6, 6), [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn strongest_keeps_order() {
        assert_eq!(strongest(&[0.1, 5.0, 0.3, 4.0], 2), [1, 3]);
    }
}
