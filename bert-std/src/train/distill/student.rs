//! The student's shape, its `config.json`, and its first weights: drawn as transformers draws a
//! new BERT's, or taken from the teacher where shapes allow — evenly spaced layers, the
//! strongest heads and FFN neurons, and every width cut to the teacher's principal directions
//! (the top principal components of its word-embedding rows), the same basis for the whole
//! residual stream so that the residual sums still line up.

use bert_core::rng::Rng;
use serde_json::{Map, Value};

use super::linalg::Mat;
use crate::error::{Error, Result};
use crate::train::fine_tune::normal_bytes;

/// The student's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StudentShape {
    /// Encoder layers.
    pub layers: usize,
    /// Hidden width.
    pub hidden: usize,
    /// Attention heads (the hidden width must divide by them).
    pub heads: usize,
    /// FFN width.
    pub intermediate: usize,
    /// Longest input in tokens (rows of the position table).
    pub max_positions: usize,
    /// Tokens in the pruned vocabulary (at most; the special tokens and single characters
    /// always stay).
    pub vocab_size: usize,
    /// Width of the embedding tables: narrower than `hidden` factorizes them (ALBERT's and
    /// ELECTRA's way: tables of this width and `embeddings_project` up to the hidden width,
    /// written as an ELECTRA model); 0 or `hidden`: as wide as the hidden states (BERT).
    pub embedding: usize,
}

impl StudentShape {
    /// The default student (see the README's table for why it won).
    pub const DEFAULT: StudentShape = StudentShape {
        layers: 4,
        hidden: 64,
        heads: 2,
        intermediate: 256,
        max_positions: 128,
        vocab_size: 8192,
        embedding: 0,
    };

    /// The embedding tables' width.
    pub fn embedding_width(&self) -> usize {
        if self.embedding == 0 {
            self.hidden
        } else {
            self.embedding
        }
    }

    /// Whether the tables are narrower than the hidden states.
    pub fn factorized(&self) -> bool {
        self.embedding_width() < self.hidden
    }

    /// Refuse shapes that cannot be built (or that no device would hold).
    pub fn check(&self) -> Result<()> {
        let ok = (1..=48).contains(&self.layers)
            && (8..=4096).contains(&self.hidden)
            && (1..=64).contains(&self.heads)
            && self.hidden.is_multiple_of(self.heads)
            && (8..=16384).contains(&self.intermediate)
            && (8..=8192).contains(&self.max_positions)
            && (8..=1 << 20).contains(&self.vocab_size)
            && (self.embedding == 0 || (4..=self.hidden).contains(&self.embedding));
        if !ok {
            return Err(Error::Input(format!(
                "student shape {self:?}: layers must be in 1..=48, hidden in 8..=4096 and a \
                 multiple of heads (1..=64), intermediate in 8..=16384, max positions in \
                 8..=8192, vocabulary in 8..=1048576, the embedding width 0 or in 4..=hidden"
            )));
        }
        Ok(())
    }

    /// Parameters of the encoder with a vocabulary of `vocab` tokens (and a projection to
    /// `projection` dimensions, 0 for none).
    pub fn parameters(&self, vocab: usize, projection: usize) -> usize {
        let (h, i, e) = (self.hidden, self.intermediate, self.embedding_width());
        let layer = 4 * (h * h + h) + 2 * h * i + i + h + 4 * h;
        let project = if self.factorized() { e * h + h } else { 0 };
        let embeddings = (vocab + self.max_positions + 2) * e + 2 * e + project;
        let dense = if projection > 0 {
            projection * h + projection
        } else {
            0
        };
        embeddings + self.layers * layer + dense
    }

    /// The student's `config.json`: the teacher's, with this shape and `vocab` tokens.
    pub fn config(&self, teacher: &Map<String, Value>, vocab: usize) -> Map<String, Value> {
        let mut c = teacher.clone();
        for key in [
            "architectures",
            "_name_or_path",
            "id2label",
            "label2id",
            "num_labels",
        ] {
            c.remove(key);
        }
        if self.factorized() {
            c.insert("architectures".into(), serde_json::json!(["ElectraModel"]));
            c.insert("model_type".into(), "electra".into());
            c.insert("embedding_size".into(), self.embedding_width().into());
        } else {
            c.insert("architectures".into(), serde_json::json!(["BertModel"]));
            c.insert("model_type".into(), "bert".into());
        }
        for (k, v) in [
            ("num_hidden_layers", self.layers),
            ("hidden_size", self.hidden),
            ("num_attention_heads", self.heads),
            ("intermediate_size", self.intermediate),
            ("max_position_embeddings", self.max_positions),
            ("vocab_size", vocab),
        ] {
            c.insert(k.into(), v.into());
        }
        c
    }
}

/// How the student's weights start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// From the teacher (see the module docs).
    Teacher,
    /// As transformers initializes a new BERT: N(0, 0.02), biases 0, LayerNorms 1 and 0.
    Random,
    /// [`Random`](Init::Random) layers over static token vectors (Model2Vec's idea): each
    /// token's row is the teacher's embedding of that token alone, in the teacher's top
    /// principal directions; the layers start close to the identity, so the untrained student
    /// is already a bag of the teacher's token meanings, and a learned projection starts as
    /// the way back to the teacher's space.
    Static,
}

/// What [`Init::Static`] starts from.
#[derive(Debug, Clone)]
pub struct StaticStart {
    /// `[vocab, hidden]`: each token's vector.
    pub rows: Mat,
    /// `[teacher width, hidden]`: the first weights of a learned projection.
    pub projection: Mat,
}

/// One named f32 tensor.
pub type Tensor = (String, Vec<usize>, Vec<f32>);

/// The tensors' names and shapes in order, for `vocab` tokens.
fn layout(s: &StudentShape, vocab: usize, projection: usize) -> Vec<(String, Vec<usize>, Kind)> {
    let (h, i, e) = (s.hidden, s.intermediate, s.embedding_width());
    let mut out = vec![
        (
            "embeddings.word_embeddings.weight".into(),
            vec![vocab, e],
            Kind::Weight,
        ),
        (
            "embeddings.position_embeddings.weight".into(),
            vec![s.max_positions, e],
            Kind::Weight,
        ),
        (
            "embeddings.token_type_embeddings.weight".into(),
            vec![2, e],
            Kind::Weight,
        ),
        ("embeddings.LayerNorm.weight".into(), vec![e], Kind::One),
        ("embeddings.LayerNorm.bias".into(), vec![e], Kind::Zero),
    ];
    if s.factorized() {
        out.push(("embeddings_project.weight".into(), vec![h, e], Kind::Weight));
        out.push(("embeddings_project.bias".into(), vec![h], Kind::Zero));
    }
    for l in 0..s.layers {
        let p = format!("encoder.layer.{l}");
        for (name, n, k) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            out.push((format!("{p}.{name}.weight"), vec![n, k], Kind::Weight));
            out.push((format!("{p}.{name}.bias"), vec![n], Kind::Zero));
            if name == "attention.output.dense" || name == "output.dense" {
                let norm = name.trim_end_matches("dense");
                out.push((format!("{p}.{norm}LayerNorm.weight"), vec![h], Kind::One));
                out.push((format!("{p}.{norm}LayerNorm.bias"), vec![h], Kind::Zero));
            }
        }
    }
    if projection > 0 {
        out.push((
            "projection.weight".into(),
            vec![projection, h],
            Kind::Weight,
        ));
        out.push(("projection.bias".into(), vec![projection], Kind::Zero));
    }
    out
}

#[derive(Clone, Copy)]
enum Kind {
    Weight,
    One,
    Zero,
}

pub(super) fn random(
    s: &StudentShape,
    vocab: usize,
    projection: usize,
    rng: &mut Rng,
) -> Vec<Tensor> {
    layout(s, vocab, projection)
        .into_iter()
        .map(|(name, shape, kind)| {
            let n = shape.iter().product();
            let values = match kind {
                Kind::Weight => normal_bytes(rng, n)
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                Kind::One => vec![1.0; n],
                Kind::Zero => vec![0.0; n],
            };
            (name, shape, values)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_count_matches_the_layout() {
        let s = StudentShape::DEFAULT;
        let counted: usize = layout(&s, 1000, 384)
            .iter()
            .map(|(_, shape, _)| shape.iter().product::<usize>())
            .sum();
        assert_eq!(counted, s.parameters(1000, 384));
    }
}
