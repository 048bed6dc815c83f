//! Fine-tuning a token classifier (NER) on CoNLL-style data: one `word … TAG` line per token,
//! blank lines between sentences, `-DOCSTART-` lines skipped. Labels go to the first word piece
//! of each word (`-100` on the others and on special tokens, as HF aligns them); the score is
//! entity-level F1 (seqeval's definition: a predicted entity counts when its type, first and
//! last word all match).

use std::path::{Path, PathBuf};

use bert_core::pretraining::{Rng, IGNORE_INDEX};
use bert_core::train::tokcls::TokClsTrainer;
use bert_core::{BertForTokenClassification, Weights};
use tokenizers::Encoding;

use super::classify::{Step, TrainOptions};
use crate::batching::Padded;
use crate::error::{Error, Result};
use crate::model_dir::ModelDir;
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
        current.words.push(cols[0].to_string());
        current.tags.push(cols[cols.len() - 1].to_string());
    }
    if !current.words.is_empty() {
        out.push(current);
    }
    if out.is_empty() {
        return Err(Error::file(path, "no sentence"));
    }
    Ok(out)
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
    let dir = ModelDir::open(base)?;
    let tok = Tokenizer::from_dir(&dir.root)?;
    let labels: Vec<String> = train
        .iter()
        .chain(eval)
        .flat_map(|s| s.tags.iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let class = |t: &str| {
        labels
            .iter()
            .position(|l| l == t)
            .map_or(IGNORE_INDEX, |i| i as i64)
    };
    let (raw, config) = super::head_config(&dir, "BertForTokenClassification", &labels)?;
    let (h, n) = (config.hidden_size, labels.len());
    let mut rng = Rng::new(o.seed);
    let head = super::new_classifier(&mut rng, n, h)?;
    let files = super::open_weights(&dir)?;
    let mut buffers: Vec<&[u8]> = files.iter().map(|f| &**f).collect();
    buffers.push(&head);
    let weights = Weights::from_buffers(&buffers)?;
    let mut model = BertForTokenClassification::load(&config, &weights)?;
    let keep = |e: &(Encoding, Vec<i64>)| e.0.len() <= o.max_seq_len;
    let all = train
        .iter()
        .map(|s| encode(&tok, s, &class))
        .collect::<Result<Vec<_>>>()?;
    let too_long = all.iter().filter(|e| !keep(e)).count();
    let data: Vec<_> = all.into_iter().filter(keep).collect();
    if data.is_empty() {
        return Err(Error::Input(
            "no training sentence fits --max-seq-len".into(),
        ));
    }
    let (mut grads, mut ws) = {
        let t = TokClsTrainer::new(&model)?;
        (t.grads(), t.workspace(o.batch_size, o.max_seq_len)?)
    };
    ws.set_threads(rayon::current_num_threads(), &crate::batching::RayonJoin);
    let pad = tok.special.pad;
    let run = super::Run {
        options: o,
        examples: data.len(),
        base: &dir,
        config: &raw,
        out,
    };
    let losses = run.epochs(
        &mut model,
        &mut rng,
        &mut grads,
        |model, step, chunk, grads| {
            ws.set_dropout(super::dropout_at(&raw, o, step));
            let encs: Vec<&Encoding> = chunk.iter().map(|&i| &data[i].0).collect();
            let padded = Padded::new(&encs, pad);
            let mut y = vec![IGNORE_INDEX; padded.rows * padded.seq];
            for (r, &i) in chunk.iter().enumerate() {
                let l = &data[i].1;
                y[r * padded.seq..r * padded.seq + l.len()].copy_from_slice(l);
            }
            Ok(TokClsTrainer::new(model)?.loss_and_grads(
                &padded.core_batch(),
                &y,
                &mut ws,
                grads,
            )?)
        },
        &mut progress,
    )?;
    // Entity F1 on the held-out sentences (first word piece decides each word's tag).
    let mut ws = model.workspace(1, o.max_seq_len.max(8))?;
    let (mut gold, mut pred) = (Vec::new(), Vec::new());
    for s in eval {
        let (enc, _) = encode(&tok, s, &class)?;
        if enc.len() > o.max_seq_len {
            continue;
        }
        let padded = Padded::new(&[&enc], pad);
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
                    tags[*w as usize] = labels[best].clone();
                }
            }
        }
        gold.push(s.tags.clone());
        pred.push(tags);
    }
    Ok(NerReport {
        labels,
        losses,
        f1: entity_f1(&gold, &pred),
        too_long,
        out: out.to_path_buf(),
    })
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
