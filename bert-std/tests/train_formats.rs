//! Training data in the formats users already have (committed samples in
//! `tests/data/formats/`): SQuAD v1.1/v2.0 JSON with `answer_start` respected and v2's
//! unanswerable questions trained on `[CLS]` and scored with "" as the reference, HF `datasets`
//! QA exports, GLUE TSV (SST-2, MRPC, QNLI), CoNLL with `-DOCSTART-` in IOB1 and IOB2; and a
//! clear error naming the line for anything else.
mod common;

use std::path::{Path, PathBuf};

use bert_std::tokenizer::Tokenizer;
use bert_std::train::data::read_classification;
use bert_std::train::ner::read_conll;
use bert_std::train::qa::{labelled_windows, train_qa, QaWindows};
use bert_std::train::qa_data::{exact_match, read_qa, token_f1, QaExample};
use bert_std::train::TrainOptions;
use common::*;

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/formats")
        .join(name)
}

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/roundtrip/base")
}

fn span(e: &QaExample) -> String {
    e.passage
        .chars()
        .skip(e.start)
        .take(e.end - e.start)
        .collect()
}

#[test]
fn squad_v2_spans_follow_answer_start_and_unanswerable_questions_are_kept() {
    let data = read_qa(&sample("squad_v2.json")).unwrap();
    assert_eq!((data.questions, data.examples.len()), (4, 4));
    let [q1, q2, q3, q4] = &data.examples[..] else {
        unreachable!()
    };
    assert_eq!((q1.start, span(q1).as_str()), (31, "Normandy"));
    assert_eq!(q1.answers.len(), 2);
    // The second "Normandy", where answer_start points, not the first match (31).
    assert_eq!((q2.start, span(q2).as_str()), (108, "Normandy"));
    assert!(q3.is_impossible() && q3.answers == [String::new()]);
    assert_eq!(span(q4), "Norse");
    assert!(!q1.is_impossible() && !q4.is_impossible());

    // Unanswerable: every window is labelled [CLS]; an answer's window labels its tokens.
    let tok = Tokenizer::from_dir(&tiny()).unwrap();
    let windows = labelled_windows(&tok, q3, 64, 16).unwrap();
    assert!(!windows.is_empty() && windows.iter().all(|w| (w.1, w.2) == (0, 0)));
    let windows = labelled_windows(&tok, q2, 128, 32).unwrap();
    let (enc, s, _) = windows.iter().find(|w| w.1 > 0).unwrap();
    assert!(
        enc.get_offsets()[*s].0 >= 100,
        "labelled the first Normandy"
    );

    // Scored as HF's squad_v2 does: "" is right for an unanswerable question.
    assert!(exact_match("", &q3.answers) && token_f1("", &q3.answers) == 1.0);
    assert!(!exact_match("Normans", &q3.answers));
}

#[test]
fn squad_v2_trains_and_scores_with_unanswerable_questions() {
    let data = read_qa(&sample("squad_v2.json")).unwrap();
    let out = Scratch::new("squad-v2");
    let o = TrainOptions {
        epochs: 1,
        batch_size: 4,
        max_seq_len: 64,
        ..TrainOptions::default()
    };
    let w = QaWindows {
        doc_stride: 16,
        negative_share: 0.0,
        ..QaWindows::default()
    };
    let report = train_qa(&tiny(), &data.examples, &data.examples, &o, &w, &out, |s| {
        assert!(s.loss.is_finite());
    })
    .unwrap();
    // The unanswerable question's windows were trained (on [CLS]) beside the answers'.
    let (windows, holding) = report.windows;
    assert!(
        windows > holding && holding >= 3,
        "{windows} windows, {holding} holding"
    );
    assert_eq!(report.predictions.len(), 4);
    // Scoring counts "" (no answer) as a prediction the unanswerable question accepts.
    for (p, e) in report.predictions.iter().zip(&data.examples) {
        if e.is_impossible() {
            assert_eq!(exact_match(p, &e.answers), p.is_empty());
        }
    }
}

#[test]
fn squad_v1_and_datasets_exports() {
    let v1 = read_qa(&sample("squad_v1.json")).unwrap();
    assert_eq!(v1.examples.len(), 2);
    assert_eq!(span(&v1.examples[0]), "about two million");
    assert_eq!(
        (v1.examples[1].start, span(&v1.examples[1]).as_str()),
        (32, "Paris")
    );

    let ds = read_qa(&sample("datasets_squad.jsonl")).unwrap();
    assert_eq!(ds.examples.len(), 2);
    assert_eq!(
        (ds.examples[0].start, span(&ds.examples[0]).as_str()),
        (32, "Paris")
    );
    assert!(ds.examples[1].is_impossible());
    assert_eq!(ds.skipped.len(), 1);
    let (line, why) = &ds.skipped[0];
    assert_eq!(*line, 3);
    assert!(why.contains("answer_start 2"), "{why}");
}

#[test]
fn glue_tsv_single_texts_and_pairs() {
    let sst2 = read_classification(&sample("sst2.tsv")).unwrap();
    let got: Vec<(&str, &str)> = sst2
        .examples
        .iter()
        .map(|e| (e.text.as_str(), e.label.as_str()))
        .collect();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], ("hide new secretions from the parental units", "0"));
    assert_eq!(got[2].1, "1");
    assert!(sst2.examples.iter().all(|e| e.pair.is_none()));
    assert!(
        sst2.skipped.iter().any(|(l, _)| *l == 5),
        "{:?}",
        sst2.skipped
    );

    let mrpc = read_classification(&sample("mrpc.tsv")).unwrap();
    assert_eq!(mrpc.examples.len(), 2);
    assert_eq!(mrpc.examples[0].label, "1");
    assert!(mrpc.examples[0].text.starts_with("Amrozi accused"));
    assert!(mrpc.examples[0]
        .pair
        .as_deref()
        .unwrap()
        .starts_with("Referring to him"));

    let qnli = read_classification(&sample("qnli.tsv")).unwrap();
    assert_eq!(qnli.examples[0].label, "entailment");
    assert!(qnli.examples[0].text.starts_with("What came into force"));
    assert!(qnli.examples[0]
        .pair
        .as_deref()
        .unwrap()
        .starts_with("As of that day"));

    let e = read_classification(&sample("qnli_test.tsv")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("line 1") && msg.contains("test split"),
        "{msg}"
    );
}

#[test]
fn conll_iob1_reads_as_iob2_and_bad_tags_name_their_line() {
    let iob1 = read_conll(&sample("conll_iob1.txt")).unwrap();
    let iob2 = read_conll(&sample("conll_iob2.txt")).unwrap();
    assert_eq!(iob1.len(), 3, "-DOCSTART- is not a sentence");
    assert_eq!(iob1, iob2);
    assert_eq!(iob1[2].tags, ["O", "B-MISC", "B-MISC", "O"]);
    let e = read_conll(&sample("conll_bad.txt"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("PERSON"), "{e}");
}
