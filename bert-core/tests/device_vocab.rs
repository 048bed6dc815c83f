//! The device vocabulary (`wordpiece::device`, compact tables read in place) against the host's
//! tokenizer (full Unicode tables, which `bert-std/tests/wordpiece_parity.rs` checks against the
//! `tokenizers` crate): every code point of Unicode in context, with the real vocabularies of
//! all-MiniLM-L6-v2 (30,522 tokens) and the distilled student's golden (2,048 tokens).
mod common;

use bert_core::wordpiece::{device, BasicOptions, WordPieceTokenizer};
use common::*;

/// Every code point, alone, inside a word, doubled and next to punctuation, through both.
fn every_code_point(vocab: &[u8], options: BasicOptions) {
    let blob = device::compile(vocab, options).unwrap();
    let host = WordPieceTokenizer::from_vocab(vocab, options).unwrap();
    let device = WordPieceTokenizer::from_device_vocab(&blob).unwrap();
    let mut text = String::new();
    let mut mismatches = Vec::new();
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        text.clear();
        // Combining marks after a letter, and two of them (NFD reorders runs of marks).
        for piece in [
            "un",
            &c.to_string(),
            "able ",
            &c.to_string(),
            &c.to_string(),
            "\u{301}!",
        ] {
            text.push_str(piece);
        }
        if device.encode(&text, None) != host.encode(&text, None) {
            mismatches.push(c as u32);
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} code points differ, first {:x?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
}

#[test]
fn minilm_vocabulary_on_every_code_point() {
    let vocab = std::fs::read(model_dir("all-minilm-l6-v2").join("vocab.txt")).unwrap();
    every_code_point(&vocab, BasicOptions::default());
}

#[test]
fn student_vocabulary_on_every_code_point_cased_and_uncased() {
    let vocab = std::fs::read(repo_root().join("bert-std/tests/goldens/distill/student/vocab.txt"))
        .unwrap();
    every_code_point(&vocab, BasicOptions::default());
    let cased = BasicOptions {
        lowercase: false,
        strip_accents: None,
        tokenize_chinese_chars: false,
    };
    every_code_point(&vocab, cased);
}

#[test]
fn sizes_of_the_device_vocabulary() {
    let vocab = std::fs::read(model_dir("all-minilm-l6-v2").join("vocab.txt")).unwrap();
    let blob = device::compile(&vocab, BasicOptions::default()).unwrap();
    // The tokens (5 bytes of overhead each) and the tables; a regression to per-code-point
    // tables would be megabytes.
    assert!(
        blob.len() < vocab.len() + 30_522 * 3 + 64 * 1024,
        "{} bytes",
        blob.len()
    );
    eprintln!(
        "MiniLM: vocab.txt {} bytes, device vocabulary {} bytes",
        vocab.len(),
        blob.len()
    );
}
