//! The core's `no_std` WordPiece tokenizer over an arbitrary `vocab.txt` and arbitrary text
//! (layout: `[vocab][\x00][text]`, a `\x01` in the text splits a pair): a tokenizer or a typed
//! error, never a panic; every id is in the vocabulary, `[CLS]` first, `[SEP]` last, type ids
//! 0 then 1.
#![no_main]
use bert_core::wordpiece::{BasicOptions, WordPieceTokenizer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(cut) = data.iter().position(|&b| b == 0) else { return };
    let (vocab, rest) = (&data[..cut], &data[cut + 1..]);
    let options = BasicOptions {
        lowercase: rest.first().is_some_and(|b| b & 1 == 1),
        strip_accents: match rest.first().map(|b| (b >> 1) & 3) {
            Some(1) => Some(true),
            Some(2) => Some(false),
            _ => None,
        },
        tokenize_chinese_chars: rest.first().is_none_or(|b| b & 8 == 0),
    };
    let Ok(tok) = WordPieceTokenizer::from_vocab(vocab, options) else { return };
    let Ok(text) = std::str::from_utf8(rest.get(1..).unwrap_or_default()) else { return };
    let (a, b) = match text.split_once('\u{1}') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let enc = tok.encode(a, b);
    let lines = vocab.split(|&c| c == b'\n').count();
    assert_eq!(enc.ids.len(), enc.type_ids.len());
    assert!(enc.ids.iter().all(|&id| (id as usize) < lines.max(tok.vocab_size())));
    assert_eq!(enc.ids.first(), tok.token_to_id("[CLS]").as_ref());
    assert_eq!(enc.ids.last(), tok.token_to_id("[SEP]").as_ref());
    assert!(enc.type_ids.windows(2).all(|w| w[0] <= w[1]));
    assert!(enc.type_ids.iter().all(|&t| t <= u32::from(b.is_some())));
});
