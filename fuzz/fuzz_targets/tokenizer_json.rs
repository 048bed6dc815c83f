//! Arbitrary bytes as a `tokenizer.json` through bert-std's loader (the `tokenizers` crate
//! underneath; seeds: WordPiece, BPE and Unigram files of the families' goldens): a tokenizer
//! or an error, never a panic; a tokenizer that loads encodes a fixed text and a pair.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(tok) = bert_std::Tokenizer::from_bytes(data, Path::new("tokenizer.json")) else {
        return;
    };
    if let Ok(enc) = tok.encode("Hello world, the [MASK] is blue.", Some("A second text.")) {
        let _ = tok.decode(enc.get_ids(), true);
    }
    let _ = tok.encode_truncated("a b c d e f g h", None, 4);
});
