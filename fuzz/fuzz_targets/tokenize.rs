//! Arbitrary UTF-8 (and pairs) through bert-std's tokenizer: no panic, offsets inside the text.
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
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (a, b) = match text.split_once('\u{1}') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let tok = tokenizer();
    if let Ok(enc) = tok.encode(a, b) {
        let chars = a.chars().count().max(b.map_or(0, |b| b.chars().count()));
        for &(s, e) in enc.get_offsets() {
            assert!(s <= e && e <= chars, "offset ({s}, {e}) outside the text");
        }
    }
    let _ = tok.encode_truncated(a, b, 16);
});
