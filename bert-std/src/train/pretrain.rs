//! Continued pre-training (MLM + NSP), as the seed's pre-training chapter describes it: documents
//! cut into sentences, NSP pairs drawn by the core ([`create_nsp_examples_across_documents`]:
//! the true next sentence, or a sentence of another document), fresh dynamic masking at every
//! step ([`mask_tokens`]: 15%, then 80/10/10), and the summed MLM + NSP loss through the core's
//! [`PreTrainer`]. Heads the base model lacks (MiniLM has neither) start as HF initializes them.
//! The checkpoint is an HF `BertForPreTraining` directory: the fill-mask and NSP pipelines load
//! it. Scored on held-out documents: NSP accuracy through the NSP pipeline, and the MLM loss
//! before and after training on the same masks.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use bert_core::pretraining::{
    create_nsp_examples_across_documents, mask_tokens, MaskingConfig, Rng, IGNORE_INDEX,
};
use bert_core::safetensors::serialize;
use bert_core::train::pretrain::{PreTrainWorkspace, PreTrainer};
use bert_core::{BertForPreTraining, Dtype, Weights};
use tokenizers::Encoding;

use super::classify::{Step, TrainOptions};
use crate::batching::Padded;
use crate::error::{Error, Result};
use crate::model_dir::ModelDir;
use crate::pipelines::nsp::NextSentencePrediction;
use crate::runtime::LoadOptions;
use crate::tokenizer::Tokenizer;
use crate::Pipeline;

/// Documents, each a list of sentences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Corpus {
    /// The sentences of every document.
    pub documents: Vec<Vec<String>>,
}

impl Corpus {
    /// Sentences in all.
    pub fn sentences(&self) -> usize {
        self.documents.iter().map(Vec::len).sum()
    }

    /// A seeded split by document into (train, held-out).
    pub fn split(&self, eval_share: f32, seed: u64) -> (Corpus, Corpus) {
        let mut order: Vec<usize> = (0..self.documents.len()).collect();
        let mut rng = Rng::new(seed ^ 0x5eed);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let k = ((order.len() as f32) * eval_share).round() as usize;
        let pick = |ix: &[usize]| Corpus {
            documents: ix.iter().map(|&i| self.documents[i].clone()).collect(),
        };
        (
            pick(&order[k.min(order.len())..]),
            pick(&order[..k.min(order.len())]),
        )
    }
}

/// Sentences of a text: cut after `.`, `!` or `?` followed by a space, and at line breaks.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut start = 0;
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        for (k, &(i, c)) in chars.iter().enumerate() {
            let next_is_space = chars.get(k + 1).is_some_and(|&(_, n)| n.is_whitespace());
            if matches!(c, '.' | '!' | '?') && next_is_space {
                out.push(line[start..i + c.len_utf8()].trim().to_string());
                start = i + c.len_utf8();
            }
        }
        out.push(line[start..].trim().to_string());
    }
    out.retain(|s| s.chars().filter(|c| c.is_alphanumeric()).count() >= 2);
    out
}

/// Read documents: JSON Lines (each line's `"passage"`, `"text"`, `"context"` or
/// `"document"`; repeated documents, as in QA files, are read once) or plain text (documents
/// separated by blank lines). Returns the corpus and (line, why) of each line not used.
pub fn read_corpus(path: &Path) -> Result<(Corpus, Vec<(usize, String)>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let jsonl = path
        .extension()
        .is_some_and(|e| e == "jsonl" || e == "json");
    parse_corpus(&bytes, jsonl, path)
}

/// Parse documents (see [`read_corpus`]): JSON Lines when `jsonl`, else plain text; `path`
/// names the file in errors.
pub fn parse_corpus(
    bytes: &[u8],
    jsonl: bool,
    path: &Path,
) -> Result<(Corpus, Vec<(usize, String)>)> {
    let text = super::data::utf8(bytes, path)?;
    let mut corpus = Corpus::default();
    let mut skipped = Vec::new();
    if jsonl {
        let mut seen = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let v: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => {
                    skipped.push((i + 1, format!("invalid JSON ({e})")));
                    continue;
                }
            };
            let doc = ["passage", "text", "context", "document"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|x| x.as_str()));
            match doc {
                Some(d) if seen.insert(d.to_string()) => {
                    corpus.documents.push(split_sentences(d));
                }
                Some(_) => {}
                None => skipped.push((
                    i + 1,
                    "needs a \"passage\", \"text\", \"context\" or \"document\" string".into(),
                )),
            }
        }
    } else {
        for block in text.split("\n\n") {
            let sentences = split_sentences(block);
            if !sentences.is_empty() {
                corpus.documents.push(sentences);
            }
        }
    }
    corpus.documents.retain(|d| !d.is_empty());
    if corpus.documents.len() < 2 || corpus.sentences() < 3 {
        return Err(Error::file(
            path,
            format!(
                "sentence pairs (pre-training, NSP) need at least 2 documents and 3 sentences; \
                 found {} and {} ({} lines skipped)",
                corpus.documents.len(),
                corpus.sentences(),
                skipped.len()
            ),
        ));
    }
    Ok((corpus, skipped))
}

/// What a pre-training run gives.
#[derive(Debug, Clone)]
pub struct PretrainReport {
    /// Every step's total loss (MLM + NSP).
    pub losses: Vec<f32>,
    /// Every step's (MLM, NSP) parts.
    pub parts: Vec<(f32, f32)>,
    /// Training pairs.
    pub pairs: usize,
    /// Held-out pairs.
    pub eval_pairs: usize,
    /// Held-out NSP accuracy of the saved model, through the NSP pipeline.
    pub nsp_accuracy: f32,
    /// The held-out share of the more frequent NSP label (the baseline).
    pub nsp_majority: f32,
    /// Held-out MLM loss (same masks) before and after training.
    pub eval_mlm: (f32, f32),
    /// Where the model was written.
    pub out: PathBuf,
}

/// One NSP pair: A and B, encoded together, and the label (0: B follows A).
pub(super) struct Pair {
    pub(super) enc: Encoding,
    pub(super) label: i64,
    a: String,
    b: String,
}

/// (A, B) pairs of a corpus with their NSP labels, encoded.
fn pairs(tok: &Tokenizer, corpus: &Corpus, max_seq_len: usize, rng: &mut Rng) -> Result<Vec<Pair>> {
    let lengths: Vec<usize> = corpus.documents.iter().map(Vec::len).collect();
    let flat: Vec<&String> = corpus.documents.iter().flatten().collect();
    create_nsp_examples_across_documents(&lengths, rng)?
        .into_iter()
        .map(|p| {
            let (a, b) = (flat[p.a].clone(), flat[p.b].clone());
            let enc = tok.encode_truncated(&a, Some(&b), max_seq_len)?;
            Ok(Pair {
                enc,
                label: i64::from(p.label),
                a,
                b,
            })
        })
        .collect()
}

/// The NSP pairs of the training and the held-out documents, drawn in that order from `rng`;
/// an error names which set could not make any.
pub(super) fn train_and_held_pairs(
    tok: &Tokenizer,
    (train, eval): (&Corpus, &Corpus),
    max_seq_len: usize,
    rng: &mut Rng,
) -> Result<(Vec<Pair>, Vec<Pair>)> {
    let named = |what: &str, e: Error| match e {
        Error::Core(bert_core::Error::InvalidInput(m)) => Error::Input(format!(
            "the {what} documents cannot make NSP pairs ({m}); give more documents or --eval"
        )),
        other => other,
    };
    let data = pairs(tok, train, max_seq_len, rng).map_err(|e| named("training", e))?;
    let held = pairs(tok, eval, max_seq_len, rng).map_err(|e| named("held-out", e))?;
    Ok((data, held))
}

/// The pre-training heads `weights` lacks, as HF initializes them (dense and NSP weights
/// N(0, 0.02), biases 0, LayerNorm 1 and 0), as safetensors bytes.
fn missing_heads(weights: &Weights<'_>, h: usize, vocab: usize, rng: &mut Rng) -> Result<Vec<u8>> {
    let mut normal = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|_| {
                let (u1, u2) = (rng.next_f64().max(1e-12), rng.next_f64());
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                ((z * 0.02) as f32).to_le_bytes()
            })
            .collect()
    };
    let ones: Vec<u8> = (0..h).flat_map(|_| 1f32.to_le_bytes()).collect();
    let p = weights.encoder_prefix();
    let candidates: Vec<(String, Vec<usize>, Vec<u8>)> = vec![
        (format!("{p}pooler.dense.weight"), vec![h, h], normal(h * h)),
        (format!("{p}pooler.dense.bias"), vec![h], vec![0; h * 4]),
        (
            "cls.predictions.transform.dense.weight".into(),
            vec![h, h],
            normal(h * h),
        ),
        (
            "cls.predictions.transform.dense.bias".into(),
            vec![h],
            vec![0; h * 4],
        ),
        (
            "cls.predictions.transform.LayerNorm.weight".into(),
            vec![h],
            ones,
        ),
        (
            "cls.predictions.transform.LayerNorm.bias".into(),
            vec![h],
            vec![0; h * 4],
        ),
        (
            "cls.predictions.bias".into(),
            vec![vocab],
            vec![0; vocab * 4],
        ),
        (
            "cls.seq_relationship.weight".into(),
            vec![2, h],
            normal(2 * h),
        ),
        ("cls.seq_relationship.bias".into(), vec![2], vec![0; 8]),
    ];
    let missing: Vec<_> = candidates
        .iter()
        .filter(|(n, _, _)| !weights.contains(n))
        .map(|(n, s, b)| (n.as_str(), Dtype::F32, s.as_slice(), b.as_slice()))
        .collect();
    Ok(serialize(&missing, &[])?)
}

/// Pre-train `base` (MLM + NSP) on `train`, score on `eval`, write the model to `out`.
pub fn pretrain(
    base: &Path,
    train: &Corpus,
    eval: &Corpus,
    o: &TrainOptions,
    mlm_probability: f64,
    out: &Path,
    mut progress: impl FnMut(&Step) + Send,
) -> Result<PretrainReport> {
    if o.batch_size == 0 || o.epochs == 0 || !(0.01..=0.5).contains(&mlm_probability) {
        return Err(Error::Input(
            "pre-training needs batches, epochs and an MLM probability in [0.01, 0.5]".into(),
        ));
    }
    let dir = ModelDir::open(base)?;
    let tok = Tokenizer::from_dir(&dir.root)?;
    let mask_id = tok
        .special
        .mask
        .ok_or_else(|| Error::Input("the tokenizer has no [MASK] token".into()))?;
    let labels = ["LABEL_0".to_string(), "LABEL_1".to_string()];
    let (mut raw, config) = super::head_config(&dir, "BertForPreTraining", &labels)?;
    raw.insert("tie_word_embeddings".into(), serde_json::json!(true));
    let (h, vocab) = (config.hidden_size, config.vocab_size);
    let mut rng = Rng::new(o.seed);
    let files = super::open_weights(&dir)?;
    let mut buffers: Vec<&[u8]> = files.iter().map(|f| &**f).collect();
    let heads = missing_heads(&Weights::from_buffers(&buffers)?, h, vocab, &mut rng)?;
    buffers.push(&heads);
    let weights = Weights::from_buffers(&buffers)?;
    let mut model = BertForPreTraining::load(&config, &weights)?;

    let mut pair_rng = Rng::new(o.seed ^ 0x9a1);
    let (data, held) = train_and_held_pairs(&tok, (train, eval), o.max_seq_len, &mut pair_rng)?;
    let specials = [tok.special.cls, tok.special.sep, tok.special.pad];
    let masking = MaskingConfig {
        mlm_probability,
        mask_token_id: mask_id,
        vocab_size: vocab as u32,
        special_token_ids: &specials,
    };
    let max_masked = ((o.batch_size * o.max_seq_len) as f64 * mlm_probability * 1.5) as usize + 64;
    let (mut grads, mut ws) = {
        let t = PreTrainer::pretraining(&model)?;
        (
            t.grads(),
            t.workspace(o.batch_size, o.max_seq_len, max_masked)?,
        )
    };
    ws.set_threads(rayon::current_num_threads(), &crate::batching::RayonJoin);
    let pad = tok.special.pad;
    // A masked batch: fresh masks from `rng` (at least one token, at most `max_masked`).
    let batch = |chunk: &[&Pair], rng: &mut Rng| -> Result<_> {
        let encs: Vec<&Encoding> = chunk.iter().map(|d| &d.enc).collect();
        let mut padded = Padded::new(&encs, pad);
        let mut y = vec![IGNORE_INDEX; padded.rows * padded.seq];
        for (r, e) in encs.iter().enumerate() {
            let span = r * padded.seq..r * padded.seq + e.len();
            let l = mask_tokens(&mut padded.ids[span.clone()], &masking, rng)?;
            y[span].copy_from_slice(&l);
        }
        let masked: Vec<usize> = (0..y.len()).filter(|&i| y[i] != IGNORE_INDEX).collect();
        if masked.is_empty() {
            // Mask the first ordinary token so that the MLM loss is defined.
            if let Some(i) =
                (0..y.len()).find(|&i| padded.mask[i] == 1 && !specials.contains(&padded.ids[i]))
            {
                y[i] = i64::from(padded.ids[i]);
                padded.ids[i] = mask_id;
            }
        }
        for &i in masked.iter().skip(max_masked) {
            padded.ids[i] = y[i] as u32;
            y[i] = IGNORE_INDEX;
        }
        let nsp: Vec<i64> = chunk.iter().map(|d| d.label).collect();
        Ok((padded, y, nsp))
    };
    // Held-out MLM loss on fixed masks (up to 256 pairs).
    let eval_mlm = |model: &BertForPreTraining<'_>, ws: &mut PreTrainWorkspace| -> Result<f32> {
        let mut mask_rng = Rng::new(o.seed ^ 0xe7a1);
        let (mut sum, mut n) = (0.0f64, 0usize);
        let refs: Vec<_> = held.iter().take(256).collect();
        for chunk in refs.chunks(o.batch_size) {
            let (padded, y, nsp) = batch(chunk, &mut mask_rng)?;
            let loss =
                PreTrainer::pretraining(model)?.loss(&padded.core_batch(), &y, Some(&nsp), ws)?;
            let count = y.iter().filter(|&&l| l != IGNORE_INDEX).count();
            sum += f64::from(loss.mlm) * count as f64;
            n += count;
        }
        Ok((sum / n.max(1) as f64) as f32)
    };
    let before = eval_mlm(&model, &mut ws)?;
    let mut parts = Vec::new();
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
            let rows: Vec<_> = chunk.iter().map(|&i| &data[i]).collect();
            // Each step's masks come from its own seed, so a resumed run draws them alike.
            let mut mask_rng =
                Rng::new(o.seed ^ (step as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let (padded, y, nsp) = batch(&rows, &mut mask_rng)?;
            ws.set_dropout(super::dropout_at(&raw, o, step));
            let loss = PreTrainer::pretraining(model)?.loss_and_grads(
                &padded.core_batch(),
                &y,
                Some(&nsp),
                &mut ws,
                grads,
            )?;
            parts.push((loss.mlm, loss.nsp));
            Ok(loss.total)
        },
        &mut progress,
    )?;
    ws.set_dropout(None);
    let after = eval_mlm(&model, &mut ws)?;
    drop(model);

    let (nsp_accuracy, nsp_majority) = held_out_nsp(out, &held)?;
    Ok(PretrainReport {
        losses,
        parts,
        pairs: data.len(),
        eval_pairs: held.len(),
        nsp_accuracy,
        nsp_majority,
        eval_mlm: (before, after),
        out: out.to_path_buf(),
    })
}

/// NSP accuracy on `held` of the checkpoint in `dir` as written, through the NSP pipeline, and
/// the share of the more frequent label (the baseline).
pub(super) fn held_out_nsp(dir: &Path, held: &[Pair]) -> Result<(f32, f32)> {
    let nsp = NextSentencePrediction::load(dir, LoadOptions::default())?;
    let inputs: Vec<(&str, &str)> = held.iter().map(|d| (d.a.as_str(), d.b.as_str())).collect();
    let predicted = nsp.run(&inputs, &())?;
    let correct = predicted
        .iter()
        .zip(held)
        .filter(|(p, d)| i64::from(p.is_next < 0.5) == d.label)
        .count();
    let positives = held.iter().filter(|d| d.label == 0).count();
    let n = held.len().max(1) as f32;
    Ok((
        correct as f32 / n,
        positives.max(held.len() - positives) as f32 / n,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_and_documents() {
        assert_eq!(
            split_sentences("Ann came. He left!\nThen? ok x"),
            ["Ann came.", "He left!", "Then?", "ok x"]
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl");
        std::fs::write(
            &p,
            "{\"passage\": \"A b. C d.\"}\n{\"passage\": \"A b. C d.\"}\nbad\n{\"text\": \"E f.\"}\n",
        )
        .unwrap();
        let (c, skipped) = read_corpus(&p).unwrap();
        assert_eq!(c.documents, [vec!["A b.", "C d."], vec!["E f."]]);
        assert_eq!(skipped.len(), 1);
        let t = dir.path().join("c.txt");
        std::fs::write(&t, "One two. Three four.\n\nFive six.\n").unwrap();
        assert_eq!(read_corpus(&t).unwrap().0.sentences(), 3);
        std::fs::write(&t, "Only one document. Here.\n").unwrap();
        assert!(read_corpus(&t).is_err());
    }
}
