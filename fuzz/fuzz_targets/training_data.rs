//! Arbitrary bytes as every training-data file `bert train` reads: classification CSV, GLUE TSV
//! and JSON Lines, CoNLL, QA data (JSON Lines, `datasets` exports, SQuAD JSON), and
//! pre-training documents (plain text and JSON Lines). The first byte picks the reader. Each gives examples or a clear error, never a panic; what it
//! gives is well formed (QA spans inside their passage, with answers).
#![no_main]
use std::path::Path;

use bert_std::train::data::{parse_classification, parse_glue_tsv, Loaded};
use bert_std::train::ner::parse_conll;
use bert_std::train::pretrain::parse_corpus;
use bert_std::train::qa_data::parse_qa;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else { return };
    let path = Path::new("data");
    let well_formed = |loaded: Loaded| {
        assert!(!loaded.examples.is_empty());
        assert!(loaded.examples.iter().all(|e| !e.text.trim().is_empty() && !e.label.trim().is_empty()));
    };
    match which % 7 {
        0 | 1 => {
            if let Ok(loaded) = parse_classification(bytes, which % 7 == 0, path) {
                well_formed(loaded);
            }
        }
        6 => {
            if let Ok(loaded) = parse_glue_tsv(bytes, path) {
                well_formed(loaded);
            }
        }
        2 => {
            if let Ok(sentences) = parse_conll(bytes, path) {
                assert!(sentences.iter().all(|s| !s.words.is_empty() && s.words.len() == s.tags.len()));
            }
        }
        3 => {
            if let Ok(loaded) = parse_qa(bytes, path) {
                for e in &loaded.examples {
                    // Spans count characters; an unanswerable question's is empty at 0.
                    let chars = e.passage.chars().count();
                    assert!((e.start < e.end && e.end <= chars) || (e.start, e.end) == (0, 0));
                    assert!(!e.answers.is_empty());
                }
            }
        }
        n => {
            if let Ok((corpus, _)) = parse_corpus(bytes, n == 5, path) {
                assert!(corpus.documents.len() >= 2 && corpus.sentences() >= 3);
                assert!(corpus.documents.iter().all(|d| !d.is_empty()));
            }
        }
    }
});
