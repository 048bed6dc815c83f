//! Differential: bert-core's no_std WordPiece tokenizer against the `tokenizers` crate on
//! arbitrary UTF-8 (a \x01 splits a pair): identical ids and type ids; and the device
//! vocabulary (compact tables read in place) against the core's host tokenizer on every input. Inputs holding a
//! character assigned after Unicode 9.0 (the reference's tables) are skipped: there the two
//! Unicode versions legitimately disagree (documented in bert_core::wordpiece).
#![no_main]
use std::sync::OnceLock;

use bert_core::wordpiece::{device, BasicOptions, DeviceLexicon, WordPieceTokenizer};
use libfuzzer_sys::fuzz_target;

struct Both {
    core: WordPieceTokenizer<'static>,
    device: WordPieceTokenizer<'static, DeviceLexicon<'static>>,
    reference: bert_std::Tokenizer,
}

static BOTH: OnceLock<Both> = OnceLock::new();

fn both() -> &'static Both {
    BOTH.get_or_init(|| {
        let dir = bert_std::fetch::ensure_model(bert_std::fetch::MINILM).expect("MiniLM available");
        let vocab: &'static [u8] = Box::leak(std::fs::read(dir.join("vocab.txt")).expect("vocab").into_boxed_slice());
        let compiled = device::compile(vocab, BasicOptions::default()).expect("vocab compiles");
        let compiled: &'static [u8] = Box::leak(compiled.into_boxed_slice());
        Both {
            device: WordPieceTokenizer::from_device_vocab(compiled).expect("device vocab parses"),
            core: WordPieceTokenizer::from_vocab(vocab, BasicOptions::default()).expect("vocab parses"),
            reference: bert_std::Tokenizer::from_vocab(&dir.join("vocab.txt"), true, None, true).expect("tokenizer"),
        }
    })
}

/// Unassigned in Unicode 9.0 (no category in the reference's tables) but assigned today.
fn assigned_after_unicode_9(c: char) -> bool {
    use unicode_categories::UnicodeCategories;
    let known_in_9 = c.is_letter()
        || c.is_mark()
        || c.is_number()
        || c.is_punctuation()
        || c.is_symbol()
        || c.is_separator()
        || c.is_other();
    !known_in_9 && unicode_general_category::get_general_category(c) != unicode_general_category::GeneralCategory::Unassigned
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = match text.split_once('\u{1}') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let t = both();
    let got = t.core.encode(a, b);
    assert_eq!(t.device.encode(a, b), got, "device vocabulary on {a:?} / {b:?}");
    if text.chars().any(assigned_after_unicode_9) {
        return;
    }
    let want = t.reference.encode(a, b).expect("the reference encodes any UTF-8");
    assert_eq!(got.ids, want.get_ids(), "ids of {a:?} / {b:?}");
    assert_eq!(got.type_ids, want.get_type_ids());
});
