//! BERT's pre-training utilities, as in the paper (and the seed): dynamic MLM masking
//! (15% of ordinary tokens; of those 80% `[MASK]`, 10% a random token, 10% unchanged),
//! next-sentence-prediction pair creation (50% the true next sentence, 50% a random one), and
//! the MLM + NSP cross-entropy loss with ignore index -100.
//!
//! Label convention is HF's: NSP label 0 = "B is the next sentence" (IsNext), 1 = random.
//! (The seed's `create_nsp_examples` uses 1 for "continuous"; HF's models and loss use 0.)

use alloc::format;
use alloc::vec::Vec;

use crate::error::{Error, Result};

/// The label value the losses skip (PyTorch's `ignore_index` default).
pub const IGNORE_INDEX: i64 = -100;

use crate::rng::Rng;

/// Settings for [`mask_tokens`].
#[derive(Debug, Clone, Copy)]
pub struct MaskingConfig<'s> {
    /// Chance that an ordinary token is selected (BERT: 0.15).
    pub mlm_probability: f64,
    /// Id of `[MASK]`.
    pub mask_token_id: u32,
    /// Vocabulary size; random replacements are drawn from `0..vocab_size`.
    pub vocab_size: u32,
    /// Ids never selected (`[CLS]`, `[SEP]`, `[PAD]`, ...).
    pub special_token_ids: &'s [u32],
}

/// Dynamic MLM masking, in place: returns the labels (the original id where a token was
/// selected, [`IGNORE_INDEX`] elsewhere). Each call draws a fresh mask, as in RoBERTa-style
/// dynamic masking.
pub fn mask_tokens(
    input_ids: &mut [u32],
    config: &MaskingConfig<'_>,
    rng: &mut Rng,
) -> Result<Vec<i64>> {
    if !(0.0..=1.0).contains(&config.mlm_probability) {
        return Err(Error::InvalidInput(format!(
            "mlm_probability {} is not in [0, 1]",
            config.mlm_probability
        )));
    }
    if config.vocab_size == 0 || config.mask_token_id >= config.vocab_size {
        return Err(Error::InvalidInput(format!(
            "mask_token_id {} must be below vocab_size {}",
            config.mask_token_id, config.vocab_size
        )));
    }
    let mut labels = Vec::with_capacity(input_ids.len());
    for id in input_ids.iter_mut() {
        let special = config.special_token_ids.contains(id);
        if special || rng.next_f64() >= config.mlm_probability {
            labels.push(IGNORE_INDEX);
            continue;
        }
        labels.push(i64::from(*id));
        let r = rng.next_f64();
        if r < 0.8 {
            *id = config.mask_token_id;
        } else if r < 0.9 {
            *id = rng.below(u64::from(config.vocab_size)) as u32;
        } // else: keep the original token
    }
    Ok(labels)
}

/// One NSP training pair: indices into the sentence list and HF's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NspExample {
    /// Index of sentence A.
    pub a: usize,
    /// Index of sentence B.
    pub b: usize,
    /// 0 = B follows A (IsNext), 1 = B is random (NotNext).
    pub label: u8,
}

/// For each sentence `i` (A), pick B: with probability 0.5 (and when `i` has a successor) the
/// true next sentence `i + 1`, label 0; otherwise a random sentence other than `i + 1`, label 1.
/// Needs at least two sentences.
pub fn create_nsp_examples(num_sentences: usize, rng: &mut Rng) -> Result<Vec<NspExample>> {
    if num_sentences < 2 {
        return Err(Error::InvalidInput(format!(
            "NSP needs at least 2 sentences, got {num_sentences}"
        )));
    }
    let n = num_sentences as u64;
    Ok((0..num_sentences)
        .map(|a| {
            let has_next = a + 1 < num_sentences;
            if has_next && rng.next_f64() < 0.5 {
                NspExample {
                    a,
                    b: a + 1,
                    label: 0,
                }
            } else {
                // A random sentence that is not the true successor.
                let mut b = rng.below(n - u64::from(has_next)) as usize;
                if has_next && b > a {
                    b += 1;
                }
                NspExample { a, b, label: 1 }
            }
        })
        .collect())
}

/// NSP pairs over several documents, as BERT's `create_pretraining_data` draws them: for each
/// sentence A that has a successor in its document, with probability 0.5 the successor (label
/// 0), otherwise a random sentence of another document (label 1). `documents[d]` is the number
/// of sentences of document `d`; indices count sentences across documents in order. Needs two
/// documents, one with at least two sentences.
pub fn create_nsp_examples_across_documents(
    documents: &[usize],
    rng: &mut Rng,
) -> Result<Vec<NspExample>> {
    let total: usize = documents.iter().sum();
    if documents.iter().filter(|&&n| n > 0).count() < 2 || !documents.iter().any(|&n| n >= 2) {
        return Err(Error::InvalidInput(format!(
            "NSP across documents needs 2 documents, one with 2 sentences; got {documents:?}"
        )));
    }
    let mut out = Vec::new();
    let mut first = 0;
    for &n in documents {
        for a in first..first + n.saturating_sub(1) {
            if rng.next_f64() < 0.5 {
                out.push(NspExample {
                    a,
                    b: a + 1,
                    label: 0,
                });
            } else {
                // A sentence outside [first, first + n).
                let mut b = rng.below((total - n) as u64) as usize;
                if b >= first {
                    b += n;
                }
                out.push(NspExample { a, b, label: 1 });
            }
        }
        first += n;
    }
    Ok(out)
}

/// Mean cross-entropy of `logits` `[n, classes]` against `labels` `[n]`, skipping
/// [`IGNORE_INDEX`] — `torch.nn.CrossEntropyLoss(ignore_index=-100)`. Like PyTorch, the mean over
/// zero counted labels is NaN.
pub fn cross_entropy(logits: &[f32], classes: usize, labels: &[i64]) -> Result<f32> {
    if classes == 0 || logits.len() != labels.len() * classes {
        return Err(Error::InvalidInput(format!(
            "cross_entropy: {} logits for {} labels of {classes} classes",
            logits.len(),
            labels.len()
        )));
    }
    let mut total = 0.0f64;
    let mut count = 0usize;
    for (row, &label) in logits.chunks_exact(classes).zip(labels) {
        if label == IGNORE_INDEX {
            continue;
        }
        let target = usize::try_from(label)
            .ok()
            .filter(|&l| l < classes)
            .ok_or(Error::LabelOutOfRange { label, classes })?;
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let sum: f64 = row.iter().map(|&x| libm::exp(x as f64 - max)).sum();
        total += max + libm::log(sum) - row[target] as f64;
        count += 1;
    }
    Ok((total / count as f64) as f32)
}

/// The three numbers of the pre-training loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreTrainingLoss {
    /// `mlm + nsp`.
    pub total: f32,
    /// Masked-LM cross-entropy.
    pub mlm: f32,
    /// Next-sentence cross-entropy.
    pub nsp: f32,
}

/// The MLM + NSP loss of `BertForPreTraining`: `mlm_logits` `[tokens, vocab]` with
/// `mlm_labels` `[tokens]` (-100 = not masked), `nsp_logits` `[batch, 2]` with `nsp_labels`.
pub fn pretraining_loss(
    mlm_logits: &[f32],
    vocab_size: usize,
    mlm_labels: &[i64],
    nsp_logits: &[f32],
    nsp_labels: &[i64],
) -> Result<PreTrainingLoss> {
    let mlm = cross_entropy(mlm_logits, vocab_size, mlm_labels)?;
    let nsp = cross_entropy(nsp_logits, 2, nsp_labels)?;
    Ok(PreTrainingLoss {
        total: mlm + nsp,
        mlm,
        nsp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    #[cfg_attr(miri, ignore = "200k draws: too slow under Miri; runs natively")]
    fn masking_statistics_follow_80_10_10() {
        let mut rng = Rng::new(42);
        let (mask, vocab) = (103u32, 30522u32);
        let special = [101u32, 102, 0];
        let cfg = MaskingConfig {
            mlm_probability: 0.15,
            mask_token_id: mask,
            vocab_size: vocab,
            special_token_ids: &special,
        };
        let (mut selected, mut masked, mut random, mut kept, mut ordinary) = (0, 0, 0, 0, 0);
        for _ in 0..2000 {
            // [CLS] t1..t98 [SEP], ordinary ids 1000..1098
            let original: Vec<u32> = core::iter::once(101)
                .chain(1000..1098)
                .chain(core::iter::once(102))
                .collect();
            let mut ids = original.clone();
            let labels = mask_tokens(&mut ids, &cfg, &mut rng).unwrap();
            assert_eq!(labels[0], IGNORE_INDEX);
            assert_eq!(*labels.last().unwrap(), IGNORE_INDEX);
            assert_eq!(ids[0], 101);
            for ((&o, &n), &l) in original.iter().zip(&ids).zip(&labels) {
                if special.contains(&o) {
                    continue;
                }
                ordinary += 1;
                if l == IGNORE_INDEX {
                    assert_eq!(o, n, "unselected tokens are never changed");
                    continue;
                }
                assert_eq!(l, i64::from(o), "label is the original id");
                selected += 1;
                if n == mask {
                    masked += 1;
                } else if n == o {
                    kept += 1;
                } else {
                    random += 1;
                }
            }
        }
        let rate = selected as f64 / ordinary as f64;
        let (fm, fr, fk) = (
            masked as f64 / selected as f64,
            random as f64 / selected as f64,
            kept as f64 / selected as f64,
        );
        // 196_000 ordinary tokens: binomial standard errors are ~0.001 (rate) and ~0.003 (split).
        assert!((rate - 0.15).abs() < 0.005, "selection rate {rate}");
        assert!((fm - 0.8).abs() < 0.015, "[MASK] share {fm}");
        assert!((fr - 0.1).abs() < 0.015, "random share {fr}");
        assert!((fk - 0.1).abs() < 0.015, "kept share {fk}");
    }

    #[test]
    fn masking_is_deterministic_per_seed_and_dynamic_across_calls() {
        let cfg = MaskingConfig {
            mlm_probability: 0.5,
            mask_token_id: 3,
            vocab_size: 100,
            special_token_ids: &[],
        };
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut a: Vec<u32> = (10..60).collect();
            let la = mask_tokens(&mut a, &cfg, &mut rng).unwrap();
            let mut b: Vec<u32> = (10..60).collect();
            let lb = mask_tokens(&mut b, &cfg, &mut rng).unwrap();
            (la, lb)
        };
        let (a1, b1) = run(1);
        let (a2, b2) = run(1);
        assert_eq!((a1.clone(), b1.clone()), (a2, b2));
        assert_ne!(a1, b1, "a second call draws a new mask");
    }

    #[test]
    fn nsp_pairs_across_documents_take_negatives_from_other_documents() {
        let docs = [3usize, 1, 4];
        let mut rng = Rng::new(9);
        let mut seen = [0usize; 2];
        for _ in 0..200 {
            let pairs = create_nsp_examples_across_documents(&docs, &mut rng).unwrap();
            // Sentences with a successor in their document: 2 + 0 + 3.
            assert_eq!(pairs.len(), 5);
            let doc = |i: usize| usize::from(i >= 3) + usize::from(i >= 4);
            for p in pairs {
                seen[p.label as usize] += 1;
                if p.label == 0 {
                    assert_eq!((p.b, doc(p.b)), (p.a + 1, doc(p.a)));
                } else {
                    assert!(p.b < 8 && doc(p.b) != doc(p.a), "{p:?}");
                }
            }
        }
        assert!(seen[0] > 400 && seen[1] > 400, "{seen:?}");
        assert!(create_nsp_examples_across_documents(&[5], &mut rng).is_err());
        assert!(create_nsp_examples_across_documents(&[1, 1], &mut rng).is_err());
        assert!(create_nsp_examples_across_documents(&[2, 0], &mut rng).is_err());
    }

    #[test]
    fn masking_rejects_bad_settings() {
        let mut rng = Rng::new(0);
        let mut ids = vec![5u32, 6];
        let bad = MaskingConfig {
            mlm_probability: 1.5,
            mask_token_id: 3,
            vocab_size: 100,
            special_token_ids: &[],
        };
        assert!(mask_tokens(&mut ids, &bad, &mut rng).is_err());
        let bad = MaskingConfig {
            mlm_probability: 0.1,
            mask_token_id: 100,
            ..bad
        };
        assert!(mask_tokens(&mut ids, &bad, &mut rng).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "10k draws: too slow under Miri; runs natively")]
    fn nsp_pairs_are_half_true_and_never_mislabelled() {
        let mut rng = Rng::new(9);
        let n = 10_001;
        let examples = create_nsp_examples(n, &mut rng).unwrap();
        assert_eq!(examples.len(), n);
        let mut positive = 0;
        for (i, e) in examples.iter().enumerate() {
            assert_eq!(e.a, i);
            assert!(e.b < n);
            if e.label == 0 {
                assert_eq!(e.b, e.a + 1);
                positive += 1;
            } else {
                assert_ne!(e.b, e.a + 1, "a random B is never the true successor");
            }
        }
        let share = positive as f64 / (n - 1) as f64;
        assert!((share - 0.5).abs() < 0.02, "IsNext share {share}");
        assert!(create_nsp_examples(1, &mut rng).is_err());
    }

    #[test]
    fn cross_entropy_basics() {
        // Uniform logits over 4 classes: loss = ln 4.
        let l = cross_entropy(&[0.0; 8], 4, &[1, IGNORE_INDEX]).unwrap();
        assert!((l - 4f32.ln()).abs() < 1e-6);
        assert!(cross_entropy(&[0.0; 4], 4, &[4]).is_err());
        assert!(cross_entropy(&[0.0; 4], 4, &[IGNORE_INDEX])
            .unwrap()
            .is_nan());
    }
}
