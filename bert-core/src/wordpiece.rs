//! A `no_std` BERT tokenizer: the basic tokenizer (clean-up, CJK split, optional lower-casing
//! with accent stripping, whitespace and punctuation split) followed by greedy longest-match
//! WordPiece with `##` continuations, reading `vocab.txt` from a borrowed `&[u8]`. It produces the
//! ids of HF's `BertTokenizerFast` (the `tokenizers` crate), special tokens included, so a device
//! can tokenize on its own.
//!
//! Unicode version: the `tokenizers` crate classifies characters with Unicode 9.0 tables; this
//! module uses the current Unicode's. The two agree on every character assigned in Unicode 9.0;
//! for characters assigned since (rare in text), a category that changed from "unassigned" may
//! make the ids differ. The differential fuzz target skips inputs holding such characters.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use unicode_general_category::{get_general_category, GeneralCategory as Gc};
use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// Words longer than this many characters become `[UNK]` (HF's `max_input_chars_per_word`).
pub const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// The special tokens of BERT's WordPiece, matched whole in the input (as the fast tokenizer's
/// added tokens).
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Options of the basic tokenizer (from `tokenizer_config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BasicOptions {
    /// Lower-case the text (`do_lower_case`).
    pub lowercase: bool,
    /// Strip accents; `None` follows `lowercase` (HF's default).
    pub strip_accents: Option<bool>,
    /// Put spaces around CJK ideographs (`tokenize_chinese_chars`).
    pub tokenize_chinese_chars: bool,
}

impl Default for BasicOptions {
    /// Uncased BERT: lower-case, strip accents, split CJK.
    fn default() -> Self {
        BasicOptions {
            lowercase: true,
            strip_accents: None,
            tokenize_chinese_chars: true,
        }
    }
}

/// Token ids and segment ids of one encoded input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids, `[CLS] a [SEP] (b [SEP])`.
    pub ids: Vec<u32>,
    /// 0 for the first segment (with `[CLS]` and its `[SEP]`), 1 for the second.
    pub type_ids: Vec<u32>,
}

/// A WordPiece tokenizer over a borrowed `vocab.txt`.
#[derive(Debug, Clone)]
pub struct WordPieceTokenizer<'a> {
    vocab: BTreeMap<&'a str, u32>,
    options: BasicOptions,
    unk: u32,
    cls: u32,
    sep: u32,
}

fn is_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || c.is_whitespace()
}

/// Removed by the clean-up: control, format and private-use characters (Cc, Cf, Co) — not
/// unassigned ones, which the reference keeps (and WordPiece then maps to `[UNK]`).
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r')
        && matches!(
            get_general_category(c),
            Gc::Control | Gc::Format | Gc::PrivateUse
        )
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            get_general_category(c),
            Gc::ConnectorPunctuation
                | Gc::DashPunctuation
                | Gc::OpenPunctuation
                | Gc::ClosePunctuation
                | Gc::InitialPunctuation
                | Gc::FinalPunctuation
                | Gc::OtherPunctuation
        )
}

fn is_chinese_char(c: char) -> bool {
    matches!(
        c as u32,
        0x4E00..=0x9FFF
            | 0x3400..=0x4DBF
            | 0x20000..=0x2A6DF
            | 0x2A700..=0x2B73F
            | 0x2B740..=0x2B81F
            | 0x2B920..=0x2CEAF
            | 0xF900..=0xFAFF
            | 0x2F800..=0x2FA1F
    )
}

impl<'a> WordPieceTokenizer<'a> {
    /// Read `vocab.txt` (one token per line; the line number is the id).
    pub fn from_vocab(vocab_txt: &'a [u8], options: BasicOptions) -> Result<Self> {
        let text = core::str::from_utf8(vocab_txt)
            .map_err(|e| Error::InvalidInput(format!("vocab.txt is not UTF-8: {e}")))?;
        let mut vocab = BTreeMap::new();
        for (id, line) in text.lines().enumerate() {
            let id = u32::try_from(id)
                .map_err(|_| Error::InvalidInput("vocab.txt is too long".into()))?;
            vocab.entry(line.trim_end_matches('\r')).or_insert(id);
        }
        let need = |t: &str| {
            vocab
                .get(t)
                .copied()
                .ok_or_else(|| Error::InvalidInput(format!("vocab.txt has no {t} token")))
        };
        Ok(WordPieceTokenizer {
            unk: need("[UNK]")?,
            cls: need("[CLS]")?,
            sep: need("[SEP]")?,
            vocab,
            options,
        })
    }

    /// The id of a token, if in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }

    /// Number of entries in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The basic tokenizer's normalisation of a piece of text (no special tokens in it).
    fn normalize(&self, text: &str) -> String {
        let o = &self.options;
        let mut s = String::with_capacity(text.len());
        for c in text.chars() {
            if c == '\0' || c == '\u{fffd}' || is_control(c) {
                continue;
            }
            let c = if is_whitespace(c) { ' ' } else { c };
            if o.tokenize_chinese_chars && is_chinese_char(c) {
                s.push(' ');
                s.push(c);
                s.push(' ');
            } else {
                s.push(c);
            }
        }
        if o.strip_accents.unwrap_or(o.lowercase) {
            s = s
                .nfd()
                .filter(|&c| get_general_category(c) != Gc::NonspacingMark)
                .collect();
        }
        if o.lowercase {
            s = s.chars().flat_map(char::to_lowercase).collect();
        }
        s
    }

    /// Greedy longest-match WordPiece of one word, appended to `out`.
    fn word_pieces(&self, word: &str, out: &mut Vec<u32>) {
        if word.chars().count() > MAX_INPUT_CHARS_PER_WORD {
            out.push(self.unk);
            return;
        }
        let start_len = out.len();
        let mut start = 0;
        let mut piece = String::new();
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                piece.clear();
                if start > 0 {
                    piece.push_str("##");
                }
                piece.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(piece.as_str()) {
                    found = Some(id);
                    break;
                }
                // Step back one character.
                end = word[..end]
                    .char_indices()
                    .next_back()
                    .map_or(start, |(i, _)| i);
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(start_len);
                    out.push(self.unk);
                    return;
                }
            }
        }
    }

    /// Tokens of one segment, without `[CLS]`/`[SEP]`, appended to `out`.
    fn segment(&self, text: &str, out: &mut Vec<u32>) {
        let mut rest = text;
        while !rest.is_empty() {
            // The earliest special token in the rest, matched whole (as added tokens are).
            let next = SPECIAL_TOKENS
                .iter()
                .filter_map(|t| rest.find(t).map(|i| (i, *t)))
                .min_by_key(|&(i, t)| (i, core::cmp::Reverse(t.len())));
            let (plain, special) = match next {
                Some((i, t)) => (&rest[..i], Some(t)),
                None => (rest, None),
            };
            let normalized = self.normalize(plain);
            for chunk in normalized.split(is_whitespace).filter(|w| !w.is_empty()) {
                let mut word_start = 0;
                for (i, c) in chunk.char_indices() {
                    if is_punctuation(c) {
                        if word_start < i {
                            self.word_pieces(&chunk[word_start..i], out);
                        }
                        self.word_pieces(&chunk[i..i + c.len_utf8()], out);
                        word_start = i + c.len_utf8();
                    }
                }
                if word_start < chunk.len() {
                    self.word_pieces(&chunk[word_start..], out);
                }
            }
            match special {
                Some(t) => {
                    out.push(self.vocab.get(t).copied().unwrap_or(self.unk));
                    rest = &rest[plain.len() + t.len()..];
                }
                None => break,
            }
        }
    }

    /// `[CLS] text [SEP]`, or `[CLS] text [SEP] pair [SEP]`, without truncation.
    pub fn encode(&self, text: &str, pair: Option<&str>) -> Encoded {
        let mut ids = Vec::new();
        ids.push(self.cls);
        self.segment(text, &mut ids);
        ids.push(self.sep);
        let first = ids.len();
        if let Some(p) = pair {
            self.segment(p, &mut ids);
            ids.push(self.sep);
        }
        let type_ids = (0..ids.len()).map(|i| u32::from(i >= first)).collect();
        Encoded { ids, type_ids }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const VOCAB: &str =
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nun\n##aff\n##able\n,\n!\ncafe\n北\nhello\n";

    #[test]
    fn basic_and_wordpiece_steps() {
        let t = WordPieceTokenizer::from_vocab(VOCAB.as_bytes(), BasicOptions::default()).unwrap();
        let e = t.encode("The UNaffable, Café北! [MASK] xyz", None);
        // [CLS] the un ##aff ##able , cafe 北 ! [MASK] [UNK] [SEP]
        assert_eq!(e.ids, [2, 5, 6, 7, 8, 9, 11, 12, 10, 4, 1, 3]);
        assert!(e.type_ids.iter().all(|&t| t == 0));
        let p = t.encode("hello", Some("the"));
        assert_eq!(
            (p.ids, p.type_ids),
            (vec![2, 13, 3, 5, 3], vec![0, 0, 0, 1, 1])
        );
        let long = "a".repeat(MAX_INPUT_CHARS_PER_WORD + 1);
        assert_eq!(t.encode(&long, None).ids, [2, 1, 3]);
        assert_eq!(t.encode("", None).ids, [2, 3]);
        assert_eq!(t.encode("\u{0}\u{fffd}\u{200b}", None).ids, [2, 3]);
    }

    #[test]
    fn vocab_without_specials_is_an_error() {
        assert!(WordPieceTokenizer::from_vocab(b"a\nb\n", BasicOptions::default()).is_err());
        assert!(WordPieceTokenizer::from_vocab(&[0xff, 0xfe], BasicOptions::default()).is_err());
    }
}
