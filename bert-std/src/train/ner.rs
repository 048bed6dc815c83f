//! Fine-tuning a token classifier (NER) on CoNLL-style data: one `word … TAG` line per token,
//! blank lines between sentences, `-DOCSTART-` lines skipped, IOB1 tags read as IOB2
//! ([`to_iob2`]), any other tag a clear error naming its line. Labels go to the first word piece
//! of each word (`-100` on the others and on special tokens, as HF aligns them); the score is
//! entity-level F1 (seqeval's definition: a predicted entity counts when its type, first and
//! last word all match).

use std::path::{Path, PathBuf};

use bert_core::pretraining::IGNORE_INDEX;
use bert_core::rng::Rng;
use bert_core::train::tokcls::TokClsTrainer;
use bert_core::train::workspace::TrainWorkspace;
use bert_core::train::Grads;
use bert_core::{BertConfig, BertForTokenClassification, Weights};
use tokenizers::Encoding;

use super::fine_tune::{fine_tune, Batch, FineTune, HeadInit};
use super::options::{Step, TrainOptions};
use crate::batching::{Padded, RayonJoin};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// One sentence: its words and their tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence {
    /// The words.
    pub words: Vec<String>,
    /// One tag per word (`O`, `B-PER`, `I-LOC`, ...).
    pub tags: Vec<String>,
}

/// Read CoNLL-style data: the first column is the word, the last the tag.
pub fn read_conll(path: &Path) -> Result<Vec<Sentence>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_conll(&bytes, path)
}

/// Parse CoNLL-style data (see [`read_conll`]); `path` names the file in errors.
pub fn parse_conll(bytes: &[u8], path: &Path) -> Result<Vec<Sentence>> {
    let text = super::data::utf8(bytes, path)?;
    let mut out = Vec::new();
    let mut current = Sentence {
        words: Vec::new(),
        tags: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.is_empty() || cols[0] == "-DOCSTART-" {
            if !current.words.is_empty() {
                out.push(std::mem::replace(
                    &mut current,
                    Sentence {
                        words: Vec::new(),
                        tags: Vec::new(),
                    },
                ));
            }
            continue;
        }
        if cols.len() < 2 {
            return Err(Error::file(
                path,
                format!("line {}: expected `word ... TAG`, found {line:?}", i + 1),
            ));
        }
        let tag = cols[cols.len() - 1];
        let typed = tag
            .split_once('-')
            .is_some_and(|(p, t)| matches!(p, "B" | "I" | "E" | "S") && !t.is_empty());
        if tag != "O" && !typed {
            return Err(Error::file(
                path,
                format!(
                    "line {}: the tag {tag:?} is not O, B-TYPE or I-TYPE (IOB1/IOB2; E-/S- of \
                     BIOES too)",
                    i + 1
                ),
            ));
        }
        current.words.push(cols[0].to_string());
        current.tags.push(tag.to_string());
    }
    if !current.words.is_empty() {
        out.push(current);
    }
    for sentence in &mut out {
        to_iob2(&mut sentence.tags);
    }
    if out.is_empty() {
        return Err(Error::file(path, "no sentence"));
    }
    Ok(out)
}

/// IOB1 (the original CoNLL-2003 files: an entity starts with `I-`, and `B-` only separates two
/// adjacent entities of one type) to IOB2 (every entity starts with `B-`, as HF's datasets and
/// models have it): an `I-X` that does not continue an `X` becomes `B-X`. IOB2 tags are left as
/// they are, so a file of either scheme reads the same.
pub fn to_iob2(tags: &mut [String]) {
    for k in 0..tags.len() {
        let Some(kind) = tags[k].strip_prefix("I-") else {
            continue;
        };
        let continues = k > 0
            && tags[k - 1]
                .split_once('-')
                .is_some_and(|(p, t)| matches!(p, "B" | "I") && t == kind);
        if !continues {
            tags[k] = format!("B-{kind}");
        }
    }
}

/// The entities of a tag sequence (IOB2, read as seqeval does by default): (type, first word,
/// last word).
pub fn entities(tags: &[String]) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut open: Option<(String, usize)> = None;
    for (i, tag) in tags
        .iter()
        .chain(std::iter::once(&"O".to_string()))
        .enumerate()
    {
        let (prefix, kind) = match tag.split_once('-') {
            Some((p, k)) => (p, k),
            None => (tag.as_str(), ""),
        };
        let continues = prefix == "I" && open.as_ref().is_some_and(|(k, _)| k == kind);
        if !continues {
            if let Some((k, s)) = open.take() {
                out.push((k, s, i - 1));
            }
            if prefix == "B" || prefix == "I" {
                open = Some((kind.to_string(), i));
            }
        }
    }
    out
}

/// Entity-level F1 of predicted against gold tag sequences.
pub fn entity_f1(gold: &[Vec<String>], pred: &[Vec<String>]) -> f32 {
    let (mut tp, mut n_pred, mut n_gold) = (0usize, 0usize, 0usize);
    for (g, p) in gold.iter().zip(pred) {
        let (ge, pe) = (entities(g), entities(p));
        tp += pe.iter().filter(|e| ge.contains(e)).count();
        n_pred += pe.len();
        n_gold += ge.len();
    }
    if tp == 0 {
        return 0.0;
    }
    let (precision, recall) = (tp as f32 / n_pred as f32, tp as f32 / n_gold as f32);
    2.0 * precision * recall / (precision + recall)
}

/// What a NER training run gives.
#[derive(Debug, Clone)]
pub struct NerReport {
    /// The tags, by class id.
    pub labels: Vec<String>,
    /// Every step's loss.
    pub losses: Vec<f32>,
    /// Held-out entity-level F1.
    pub f1: f32,
    /// Sentences skipped for being longer than `max_seq_len` tokens.
    pub too_long: usize,
    /// Where the model was written.
    pub out: PathBuf,
}

/// Encode a sentence's words (pre-tokenized) and align `tags` to the first word piece.
fn encode(
    tok: &Tokenizer,
    s: &Sentence,
    class: &dyn Fn(&str) -> i64,
) -> Result<(Encoding, Vec<i64>)> {
    let words: Vec<&str> = s.words.iter().map(String::as_str).collect();
    let input = tokenizers::EncodeInput::Single(words.as_slice().into());
    let enc = tok
        .inner()
        .encode(input, true)
        .map_err(|e| Error::Tokenizer(e.to_string()))?;
    let mut last = None;
    let labels = enc
        .get_word_ids()
        .iter()
        .map(|w| match w {
            Some(w) if Some(*w) != last => {
                last = Some(*w);
                class(&s.tags[*w as usize])
            }
            _ => IGNORE_INDEX,
        })
        .collect();
    Ok((enc, labels))
}

/// Fine-tune `base` for NER on `train`, score entity F1 on `eval`, write the model to `out`.
pub fn train_ner(
    base: &Path,
    train: &[Sentence],
    eval: &[Sentence],
    o: &TrainOptions,
    out: &Path,
    mut progress: impl FnMut(&Step) + Send,
) -> Result<NerReport> {
    let labels: Vec<String> = train
        .iter()
        .chain(eval)
        .flat_map(|s| s.tags.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut task = Tagger {
        train,
        eval,
        labels,
        items: Vec::new(),
        held: Vec::new(),
        too_long: 0,
        pad: 0,
        max_seq_len: o.max_seq_len,
        f1: 0.0,
    };
    let losses = fine_tune(&mut task, base, o, out, &mut progress)?;
    Ok(NerReport {
        labels: task.labels,
        losses,
        f1: task.f1,
        too_long: task.too_long,
        out: out.to_path_buf(),
    })
}

/// Token classification on the shared loop: a new `classifier` head; each word's tag on its
/// first word piece; entity F1 on the held-out sentences with the inference path.
struct Tagger<'d> {
    train: &'d [Sentence],
    eval: &'d [Sentence],
    labels: Vec<String>,
    /// Training sentences that fit: encoding and per-token class.
    items: Vec<(Encoding, Vec<i64>)>,
    /// Held-out sentences that fit, with their index in `eval`.
    held: Vec<(usize, Encoding)>,
    too_long: usize,
    pad: u32,
    max_seq_len: usize,
    f1: f32,
}

impl FineTune for Tagger<'_> {
    type Model<'w> = BertForTokenClassification<'w>;
    type Workspace = TrainWorkspace;
    const HEAD: &'static str = "TokenClassification";

    fn labels(&self) -> Vec<String> {
        self.labels.clone()
    }

    fn new_heads(
        &mut self,
        _base: &Weights<'_>,
        init: &HeadInit<'_>,
        rng: &mut Rng,
    ) -> Result<Vec<Vec<u8>>> {
        Ok(vec![init.token_head(
            rng,
            "classifier",
            self.labels.len(),
        )?])
    }

    fn load<'w>(config: &BertConfig, weights: &Weights<'w>) -> Result<Self::Model<'w>> {
        Ok(BertForTokenClassification::load(config, weights)?)
    }

    fn prepare(&mut self, tok: &Tokenizer, _: &BertConfig, o: &TrainOptions) -> Result<usize> {
        let labels = &self.labels;
        let class = |t: &str| {
            labels
                .iter()
                .position(|l| l == t)
                .map_or(IGNORE_INDEX, |i| i as i64)
        };
        let all = self
            .train
            .iter()
            .map(|s| encode(tok, s, &class))
            .collect::<Result<Vec<_>>>()?;
        let fits = |e: &Encoding| e.len() <= o.max_seq_len;
        self.too_long = all.iter().filter(|e| !fits(&e.0)).count();
        self.items = all.into_iter().filter(|e| fits(&e.0)).collect();
        if self.items.is_empty() {
            return Err(Error::Input(
                "no training sentence fits --max-seq-len".into(),
            ));
        }
        for (i, s) in self.eval.iter().enumerate() {
            let (enc, _) = encode(tok, s, &class)?;
            if fits(&enc) {
                self.held.push((i, enc));
            }
        }
        self.pad = tok.special.pad;
        Ok(self.items.len())
    }

    fn trainer(
        &self,
        model: &Self::Model<'_>,
        o: &TrainOptions,
    ) -> Result<(Grads, TrainWorkspace)> {
        let trainer = TokClsTrainer::new(model)?;
        let mut ws = trainer.workspace(o.batch_size, o.max_seq_len)?;
        ws.set_threads(rayon::current_num_threads(), &RayonJoin);
        Ok((trainer.grads(), ws))
    }

    fn step(
        &mut self,
        model: &Self::Model<'_>,
        ws: &mut TrainWorkspace,
        batch: Batch<'_>,
        grads: &mut Grads,
    ) -> Result<f32> {
        ws.set_dropout(batch.dropout);
        let encs: Vec<&Encoding> = batch.chunk.iter().map(|&i| &self.items[i].0).collect();
        let padded = Padded::new(&encs, self.pad);
        let mut y = vec![IGNORE_INDEX; padded.rows * padded.seq];
        for (r, &i) in batch.chunk.iter().enumerate() {
            let l = &self.items[i].1;
            y[r * padded.seq..r * padded.seq + l.len()].copy_from_slice(l);
        }
        Ok(TokClsTrainer::new(model)?.loss_and_grads(&padded.core_batch(), &y, ws, grads)?)
    }

    /// Entity F1 on the held-out sentences (the first word piece decides each word's tag).
    fn after(&mut self, model: &Self::Model<'_>, _: &mut TrainWorkspace) -> Result<()> {
        let n = self.labels.len();
        let mut ws = model.workspace(1, self.max_seq_len.max(8))?;
        let (mut gold, mut pred) = (Vec::new(), Vec::new());
        for (i, enc) in &self.held {
            let s = &self.eval[*i];
            let padded = Padded::new(&[enc], self.pad);
            let logits = model.forward(&padded.core_batch(), &mut ws)?;
            let mut tags = vec!["O".to_string(); s.words.len()];
            let mut last = None;
            for (t, w) in enc.get_word_ids().iter().enumerate() {
                if let Some(w) = w {
                    if Some(*w) != last {
                        last = Some(*w);
                        let row = logits.row(t);
                        let best = (0..n)
                            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                            .unwrap_or(0);
                        tags[*w as usize] = self.labels[best].clone();
                    }
                }
            }
            gold.push(s.tags.clone());
            pred.push(tags);
        }
        self.f1 = entity_f1(&gold, &pred);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn entities_and_f1_as_seqeval() {
        assert_eq!(
            entities(&tags("B-PER I-PER O B-LOC I-ORG")),
            vec![
                ("PER".to_string(), 0, 1),
                ("LOC".to_string(), 3, 3),
                ("ORG".to_string(), 4, 4)
            ]
        );
        let gold = vec![tags("B-PER I-PER O B-LOC")];
        assert_eq!(entity_f1(&gold, &gold), 1.0);
        let half = vec![tags("B-PER I-PER O O")];
        assert!((entity_f1(&gold, &half) - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(entity_f1(&gold, &[tags("O O O O")]), 0.0);
    }
}
