//! Arbitrary UTF-8 (and pairs: a \x01 splits them) through bert-std's tokenizer, plain or
//! truncated (the first byte picks which, and the length): no panic, offsets inside the text,
//! truncation keeps its length. The tokenizer is built once; each input is one encoding.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

static TOKENIZER: OnceLock<bert_std::Tokenizer> = OnceLock::new();

fn tokenizer() -> &'static bert_std::Tokenizer {
    TOKENIZER.get_or_init(|| {
        let dir = bert_std::fetch::ensure_model(bert_std::fetch::MINILM).expect("MiniLM available");
        bert_std::Tokenizer::from_dir(&dir).expect("tokenizer loads")
    })
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the call: plain encoding, or truncation to a length it gives.
    let Some((&how, data)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = match text.split_once('\u{1}') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let tok = tokenizer();
    let enc = if how & 1 == 0 {
        tok.encode(a, b)
    } else {
        // A few lengths (the tokenizer keeps a truncating copy per length, as a program would).
        let max_len = [0, 1, 2, 3, 5, 8, 16, 64][usize::from(how >> 1) & 7];
        tok.encode_truncated(a, b, max_len).inspect(|enc| assert!(enc.len() <= max_len))
    };
    if let Ok(enc) = enc {
        let chars = a.chars().count().max(b.map_or(0, |b| b.chars().count()));
        for &(s, e) in enc.get_offsets() {
            assert!(s <= e && e <= chars, "offset ({s}, {e}) outside the text");
        }
    }
});
