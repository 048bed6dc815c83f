//! A smaller WordPiece vocabulary for a given kind of text: which tokens to keep, and the
//! embedding rows that go with them.
//!
//! A BERT vocabulary has 30,522 tokens, and its word-embedding table is half of a small model's
//! weights (all-MiniLM-L6-v2: 11.7 M of 22.7 M parameters). Text of one domain uses a few
//! thousand of them. [`keep`] chooses the tokens of a pruned vocabulary from how often a corpus
//! used each one: always the special tokens and every single character (`c` and `##c`), so any
//! text still tokenizes (a word the pruned vocabulary lacks is spelled in smaller pieces, down
//! to characters, instead of becoming `[UNK]`), then the most used tokens, up to a size.
//!
//! Kept tokens keep their relative order. Greedy longest-match WordPiece then gives every text
//! of the corpus the same pieces as before whenever every token it used is kept (a longer match
//! than the one chosen was never in the vocabulary), so the model's output on that text is
//! unchanged, bit for bit; [`gather_rows`] builds the embedding tables of the pruned model.
//!
//! ```
//! use bert_core::vocab_prune::{keep, gather_rows};
//!
//! let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "##b", "the", "unused", "cat"];
//! let counts = [0, 0, 5, 5, 0, 3, 1, 9, 0, 0];
//! let kept = keep(&tokens, &counts, 9).unwrap();
//! // the specials, the single characters (a, ##b), then "the": the only other token used.
//! assert_eq!(kept, [0, 1, 2, 3, 4, 5, 6, 7]);
//! // Rows of a 10 x 2 table of u8 (row bytes 2), in the kept order.
//! let table: Vec<u8> = (0..20).collect();
//! assert_eq!(gather_rows(&table, 2, &kept[5..]).unwrap(), [10, 11, 12, 13, 14, 15]);
//! # Ok::<(), bert_core::Error>(())
//! ```

use alloc::format;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::wordpiece::SPECIAL_TOKENS;

/// Whether a token must stay in every pruned vocabulary: a special token ([`SPECIAL_TOKENS`],
/// kept whatever their counts), or one character
/// alone or after `##`.
pub fn always_kept(token: &str) -> bool {
    let piece = token.strip_prefix("##").unwrap_or(token);
    SPECIAL_TOKENS.contains(&token) || piece.chars().count() == 1
}

/// The ids (ascending, into `tokens`) of a vocabulary of at most `max_size` tokens: those
/// [`always_kept`], then the used ones (`counts[id] > 0`), most used first (ties: lower id
/// first). An error if `counts` does not have one count per token, or if the tokens that
/// must stay already exceed `max_size` (the message gives how many that is).
pub fn keep(tokens: &[&str], counts: &[u64], max_size: usize) -> Result<Vec<u32>> {
    if counts.len() != tokens.len() {
        return Err(Error::InvalidInput(format!(
            "{} counts for a vocabulary of {} tokens",
            counts.len(),
            tokens.len()
        )));
    }
    if u32::try_from(tokens.len()).is_err() {
        return Err(Error::InvalidInput(
            "the vocabulary has over 2^32 tokens".into(),
        ));
    }
    let mut kept: Vec<u32> = (0..tokens.len() as u32)
        .filter(|&i| always_kept(tokens[i as usize]))
        .collect();
    if kept.len() > max_size {
        return Err(Error::InvalidInput(format!(
            "a pruned vocabulary needs at least {} tokens (the special tokens and every single \
             character of this vocabulary); {max_size} were asked for",
            kept.len()
        )));
    }
    let mut used: Vec<u32> = (0..tokens.len() as u32)
        .filter(|&i| counts[i as usize] > 0 && !always_kept(tokens[i as usize]))
        .collect();
    used.sort_by_key(|&i| (core::cmp::Reverse(counts[i as usize]), i));
    used.truncate(max_size - kept.len());
    kept.extend(used);
    kept.sort_unstable();
    Ok(kept)
}

/// The rows `rows` (in that order) of a row-major table whose rows are `row_bytes` long: the
/// embedding table, or an output bias, of a pruned model. An error if the table is not a whole
/// number of rows or a row is past its end.
pub fn gather_rows(table: &[u8], row_bytes: usize, rows: &[u32]) -> Result<Vec<u8>> {
    if row_bytes == 0 || !table.len().is_multiple_of(row_bytes) {
        return Err(Error::InvalidInput(format!(
            "a table of {} bytes is not made of rows of {row_bytes} bytes",
            table.len()
        )));
    }
    let n = table.len() / row_bytes;
    let mut out = Vec::with_capacity(rows.len() * row_bytes);
    for &r in rows {
        let r = r as usize;
        if r >= n {
            return Err(Error::InvalidInput(format!(
                "row {r} of a table of {n} rows"
            )));
        }
        out.extend_from_slice(&table[r * row_bytes..(r + 1) * row_bytes]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wordpiece::{BasicOptions, WordPieceTokenizer};
    use alloc::string::String;
    use alloc::vec;

    const VOCAB: [&str; 16] = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "t", "h", "e", "##h", "##e", "the", "then",
        "##n", "n", "##en", "cat",
    ];

    fn vocab_txt(tokens: &[&str]) -> Vec<u8> {
        tokens
            .iter()
            .flat_map(|t| [*t, "\n"])
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn keeps_specials_characters_then_the_most_used() {
        let mut counts = vec![0u64; VOCAB.len()];
        counts[10] = 7; // the
        counts[11] = 2; // then
        counts[14] = 2; // ##en; "cat" (15) unused
                        // Twelve must stay (the specials; t, h, e, n, ##h, ##e, ##n); with room for two more:
                        // "the", then "then" (the lower id of its tie with "##en").
        assert_eq!(
            keep(&VOCAB, &counts, 14).unwrap(),
            (0..14).collect::<Vec<u32>>()
        );
        // Exactly the must-keep tokens.
        let only = keep(&VOCAB, &counts, 12).unwrap();
        assert!(only.iter().all(|&i| always_kept(VOCAB[i as usize])));
        assert_eq!(only.len(), 12);
        // Too small: a clear error naming the minimum.
        let e = keep(&VOCAB, &counts, 11).unwrap_err();
        assert!(format!("{e}").contains("at least 12"), "{e}");
        assert!(keep(&VOCAB, &counts[1..], 14).is_err());
    }

    #[test]
    fn kept_vocabulary_tokenizes_the_corpus_as_before() {
        let full = vocab_txt(&VOCAB);
        let full = WordPieceTokenizer::from_vocab(&full, BasicOptions::default()).unwrap();
        let corpus = ["The then THE", "then the"];
        let mut counts = vec![0u64; VOCAB.len()];
        for text in corpus {
            for id in full.encode(text, None).ids {
                counts[id as usize] += 1;
            }
        }
        let kept = keep(&VOCAB, &counts, 100).unwrap();
        assert!(!kept.contains(&15), "cat was not used");
        let pruned_tokens: Vec<&str> = kept.iter().map(|&i| VOCAB[i as usize]).collect();
        let pruned = vocab_txt(&pruned_tokens);
        let pruned = WordPieceTokenizer::from_vocab(&pruned, BasicOptions::default()).unwrap();
        for text in corpus {
            let old = full.encode(text, None).ids;
            let new: Vec<u32> = pruned
                .encode(text, None)
                .ids
                .iter()
                .map(|&i| kept[i as usize])
                .collect();
            assert_eq!(new, old, "{text}");
        }
        // A word whose pieces were dropped ("##en" was not used) is spelled in smaller ones.
        assert!(!kept.contains(&14));
        let hen = pruned.encode("hen", None).ids;
        let names: Vec<&str> = hen.iter().map(|&i| pruned_tokens[i as usize]).collect();
        assert_eq!(names, ["[CLS]", "h", "##e", "##n", "[SEP]"]);
    }

    #[test]
    fn gathers_rows_and_refuses_bad_tables() {
        let table: Vec<u8> = (0..12).collect();
        assert_eq!(
            gather_rows(&table, 4, &[2, 0]).unwrap(),
            [8, 9, 10, 11, 0, 1, 2, 3]
        );
        assert!(gather_rows(&table, 5, &[0]).is_err());
        assert!(gather_rows(&table, 0, &[0]).is_err());
        assert!(gather_rows(&table, 4, &[3]).is_err());
        assert!(gather_rows(&table, 4, &[]).unwrap().is_empty());
    }
}
