//! Arbitrary bytes as a `tokenizer.json` through bert-std's loader (the `tokenizers` crate
//! underneath; seeds: WordPiece, BPE and Unigram files of the families' goldens): a tokenizer
//! or an error, never a panic; a tokenizer that loads encodes a fixed text and a pair.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

/// The `tokenizers` crate panics on some malformed files (`{"decoder":` is enough, 0.22.2);
/// bert-std catches those panics and returns an error (tested in
/// bert-std/tests/fuzz_regressions.rs). libFuzzer's panic hook would abort on them before
/// they are caught, so they are let through here; a panic anywhere else still aborts.
fn let_tokenizers_panics_be_caught() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let in_tokenizers = info.location().is_some_and(|l| l.file().contains("/tokenizers-"));
            if std::env::var_os("BERT_FUZZ_SHOW_PANICS").is_some() {
                eprintln!("{info}");
            }
            if !in_tokenizers {
                eprintln!("{info}");
                std::process::abort();
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    let_tokenizers_panics_be_caught();
    let Ok(tok) = bert_std::Tokenizer::from_bytes(data, Path::new("tokenizer.json")) else {
        return;
    };
    if let Ok(enc) = tok.encode("Hello world, the [MASK] is blue.", Some("A second text.")) {
        let _ = tok.decode(enc.get_ids(), true);
    }
    let _ = tok.encode_truncated("a b c d e f g h", None, 4);
});
