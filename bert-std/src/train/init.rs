//! New task heads drawn as transformers initializes them, per family: `N(0, initializer_range)`
//! weights and zero biases for BERT, RoBERTa, XLM-RoBERTa, ELECTRA and DistilBERT; for
//! ModernBERT, normals truncated at `initializer_cutoff_factor` standard deviations, with
//! `initializer_range / √(2 · layers)` for the prediction head's dense layer and
//! `hidden_size^-½` for the classifier, norms at one (transformers' `_init_weights`).

use bert_core::arch::Family;
use bert_core::rng::Rng;
use bert_core::safetensors::serialize;
use bert_core::{BertConfig, Dtype, Weights};
use serde_json::{Map, Value};

use crate::error::Result;

/// How one new tensor is drawn.
#[derive(Debug, Clone, Copy)]
enum Init {
    /// `N(0, σ²)`.
    Normal(f64),
    /// `N(0, σ²)` cut at `±cutoff · σ` (redrawn outside).
    Truncated(f64, f64),
    Zeros,
    Ones,
}

/// What a base model's config says about drawing new heads, and the family's head layout.
#[derive(Debug, Clone)]
pub(crate) struct HeadInit<'c> {
    /// The task model's config.
    pub(crate) config: &'c BertConfig,
    /// `initializer_range` (0.02 when absent). The post-norm families' heads are drawn at
    /// 0.02 whatever their config says, as they always were here (every real checkpoint's
    /// range is 0.02; the tiny test bases' 0.2 would change the committed goldens).
    range: f64,
    /// `initializer_cutoff_factor` (ModernBERT's truncation; 2 when absent, 3 when `null`, as
    /// transformers reads it).
    cutoff: f64,
}

/// The tensors of one new head, in draw order.
struct Tensors(Vec<(String, Vec<usize>, Init)>);

impl<'c> HeadInit<'c> {
    /// From the checkpoint's config.json and its parsed config.
    pub(crate) fn new(raw: &Map<String, Value>, config: &'c BertConfig) -> Self {
        let number = |k: &str, default: f64| raw.get(k).and_then(Value::as_f64).unwrap_or(default);
        let modern = config.arch.family == Family::ModernBert;
        HeadInit {
            config,
            range: if modern {
                number("initializer_range", 0.02)
            } else {
                0.02
            },
            cutoff: match raw.get("initializer_cutoff_factor") {
                Some(Value::Null) => 3.0,
                _ => number("initializer_cutoff_factor", 2.0),
            },
        }
    }

    fn modern(&self) -> bool {
        self.config.arch.family == Family::ModernBert
    }

    /// A linear layer `{name}` `[n, k]`: a weight drawn at `std` (truncated for ModernBERT)
    /// and, with `bias`, a zero bias.
    fn linear(&self, t: &mut Tensors, name: &str, (n, k): (usize, usize), std: f64, bias: bool) {
        let init = if self.modern() {
            Init::Truncated(std, self.cutoff)
        } else {
            Init::Normal(std)
        };
        t.0.push((format!("{name}.weight"), vec![n, k], init));
        if bias {
            t.0.push((format!("{name}.bias"), vec![n], Init::Zeros));
        }
    }

    /// ModernBERT's prediction head (`head.dense`, its activation, `head.norm`), which comes
    /// before every classifier of the family.
    fn prediction_head(&self, t: &mut Tensors, dense: &str, norm: &str) {
        let c = self.config;
        let h = c.hidden_size;
        let std = self.range / (2.0 * c.num_hidden_layers as f64).sqrt();
        self.linear(t, dense, (h, h), std, c.arch.heads.dense_bias);
        t.0.push((format!("{norm}.weight"), vec![h], Init::Ones));
        if c.arch.heads.norm_bias {
            t.0.push((format!("{norm}.bias"), vec![h], Init::Zeros));
        }
    }

    /// The head of a sequence classifier of `labels` classes: the family's dense layer
    /// (RoBERTa's `classifier.dense`, DistilBERT's `pre_classifier`, ModernBERT's prediction
    /// head; BERT's pooler comes with the base) and its output layer.
    pub(crate) fn sentence_head(&self, rng: &mut Rng, labels: usize) -> Result<Vec<u8>> {
        let names = &bert_core::families::names(self.config.arch.family).classifier;
        let h = self.config.hidden_size;
        let mut t = Tensors(Vec::new());
        match (names.dense, names.norm) {
            (Some(dense), Some(norm)) if self.modern() => self.prediction_head(&mut t, dense, norm),
            (Some(dense), _) => self.linear(&mut t, dense, (h, h), self.range, true),
            (None, _) => {}
        }
        self.output(&mut t, names.out, labels);
        self.draw(rng, t, None)
    }

    /// The head of a token-level classifier of `labels` outputs (`out`: `classifier`, or
    /// `qa_outputs`), after ModernBERT's prediction head where the family has one (its span
    /// classifier is then `classifier` too).
    pub(crate) fn token_head(&self, rng: &mut Rng, out: &str, labels: usize) -> Result<Vec<u8>> {
        let names = &bert_core::families::names(self.config.arch.family).classifier;
        let mut t = Tensors(Vec::new());
        let out = match (names.dense, names.norm) {
            (Some(dense), Some(norm)) if self.modern() => {
                self.prediction_head(&mut t, dense, norm);
                "classifier"
            }
            _ => out,
        };
        self.output(&mut t, out, labels);
        self.draw(rng, t, None)
    }

    /// The masked-LM head's tensors the base does not store: the transform's dense layer
    /// and norm, the output bias (where the family's head has these biases).
    pub(crate) fn masked_lm_head(&self, rng: &mut Rng, base: &Weights<'_>) -> Result<Vec<u8>> {
        let c = self.config;
        let n = &bert_core::families::names(c.arch.family).masked_lm;
        let (h, v) = (c.hidden_size, c.vocab_size);
        let e = c.arch.embedding_size.unwrap_or(h);
        let style = &c.arch.heads;
        let mut t = Tensors(Vec::new());
        if self.modern() {
            self.prediction_head(&mut t, n.dense, n.norm);
        } else {
            self.linear(&mut t, n.dense, (e, h), self.range, true);
            t.0.push((format!("{}.weight", n.norm), vec![e], Init::Ones));
            t.0.push((format!("{}.bias", n.norm), vec![e], Init::Zeros));
        }
        if style.decoder_bias {
            t.0.push((n.bias[0].to_string(), vec![v], Init::Zeros));
        }
        self.draw(rng, t, Some(base))
    }

    /// A classifier's output layer: `N(0, range)`, or ModernBERT's `hidden^-½` truncated.
    fn output(&self, t: &mut Tensors, name: &str, labels: usize) {
        let h = self.config.hidden_size;
        let std = if self.modern() {
            1.0 / (h as f64).sqrt()
        } else {
            self.range
        };
        self.linear(t, name, (labels, h), std, true);
    }

    /// The tensors as safetensors bytes, drawn in order from `rng` (those `present` already
    /// stores are skipped, and drawn for nothing).
    fn draw(&self, rng: &mut Rng, t: Tensors, present: Option<&Weights<'_>>) -> Result<Vec<u8>> {
        let drawn: Vec<(String, Vec<usize>, Vec<u8>)> =
            t.0.into_iter()
                .map(|(name, shape, init)| {
                    let bytes = values(rng, shape.iter().product(), init);
                    (name, shape, bytes)
                })
                .filter(|(name, _, _)| present.is_none_or(|w| !w.contains(name)))
                .collect();
        let views: Vec<_> = drawn
            .iter()
            .map(|(n, s, b)| (n.as_str(), Dtype::F32, s.as_slice(), b.as_slice()))
            .collect();
        Ok(serialize(&views, &[])?)
    }
}

/// `n` values drawn from N(0, 0.02) (HF's usual `initializer_range`), as little-endian f32
/// bytes: Box-Muller, two draws of `rng` per value.
pub(crate) fn normal_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    values(rng, n, Init::Normal(0.02))
}

/// `n` values of `init` as little-endian f32 bytes; normals by Box-Muller, two draws of `rng`
/// per value (a truncated one draws again until it falls inside the cut).
fn values(rng: &mut Rng, n: usize, init: Init) -> Vec<u8> {
    let mut normal = |std: f64| {
        let (u1, u2) = (rng.next_f64().max(1e-12), rng.next_f64());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() * std
    };
    (0..n)
        .flat_map(|_| {
            let x = match init {
                Init::Normal(std) => normal(std),
                Init::Truncated(std, cutoff) => loop {
                    let z = normal(std);
                    if z.abs() <= cutoff * std {
                        break z;
                    }
                },
                Init::Zeros => 0.0,
                Init::Ones => 1.0,
            };
            (x as f32).to_le_bytes()
        })
        .collect()
}
