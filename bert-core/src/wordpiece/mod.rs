//! A `no_std` BERT tokenizer: the basic tokenizer (clean-up, CJK split, optional lower-casing
//! with accent stripping, whitespace and punctuation split) followed by greedy longest-match
//! WordPiece with `##` continuations, reading `vocab.txt` from a borrowed `&[u8]`. It produces the
//! ids of HF's `BertTokenizerFast` (the `tokenizers` crate), special tokens included, so a device
//! can tokenize on its own.
//!
//! Two lexicons feed the same steps: [`UnicodeLexicon`] (the host's: `vocab.txt` in a map, the
//! full Unicode tables) and [`DeviceLexicon`] (a microcontroller's: one vocabulary's tokens and
//! character tables compiled on the host into one blob that is read in place, about a tenth of
//! the flash and none of the RAM; [`device`] says why it gives the same ids).
//!
//! Unicode version: the `tokenizers` crate classifies characters with Unicode 9.0 tables; this
//! module uses the current Unicode's. The two agree on every character assigned in Unicode 9.0;
//! for characters assigned since (rare in text), a category that changed from "unassigned" may
//! make the ids differ. The differential fuzz target skips inputs holding such characters.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::{Error, Result};

mod compile;
pub mod device;
mod unicode;

pub use device::{DeviceLexicon, DEVICE_VOCAB_MAGIC};

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

/// What the tokenizer's steps ask of a vocabulary and its character tables. Two kinds: the
/// host's [`UnicodeLexicon`] (full Unicode tables, the vocabulary in a map) and the device's
/// [`DeviceLexicon`] (compact tables compiled for one vocabulary, read in place from flash).
pub trait Lexicon {
    /// The id of a token (a word piece, `##` included, or a special token).
    fn id(&self, token: &str) -> Option<u32>;
    /// Appends the basic tokenizer's normalisation of `text` (no special tokens in it) to
    /// `out`; the only white space it leaves is `' '`.
    fn normalize(&self, text: &str, out: &mut String);
    /// Whether a character of normalised text is punctuation (a word of its own).
    fn is_punctuation(&self, c: char) -> bool;
}

/// The host's lexicon: `vocab.txt` in a map and the full Unicode tables.
#[derive(Debug, Clone)]
pub struct UnicodeLexicon<'a> {
    vocab: BTreeMap<&'a str, u32>,
    options: BasicOptions,
}

impl<'a> UnicodeLexicon<'a> {
    /// Reads `vocab.txt` (one token per line; the line number is the id; the first of two
    /// equal lines wins).
    pub fn new(vocab_txt: &'a [u8], options: BasicOptions) -> Result<Self> {
        let text = core::str::from_utf8(vocab_txt)
            .map_err(|e| Error::InvalidInput(format!("vocab.txt is not UTF-8: {e}")))?;
        let mut vocab = BTreeMap::new();
        for (id, line) in text.lines().enumerate() {
            let id = u32::try_from(id)
                .map_err(|_| Error::InvalidInput("vocab.txt is too long".into()))?;
            vocab.entry(line.trim_end_matches('\r')).or_insert(id);
        }
        Ok(UnicodeLexicon { vocab, options })
    }

    /// The tokens and their ids, in byte order.
    pub fn tokens(&self) -> impl Iterator<Item = (&'a str, u32)> + '_ {
        self.vocab.iter().map(|(t, id)| (*t, *id))
    }

    /// The basic tokenizer's options.
    pub fn options(&self) -> BasicOptions {
        self.options
    }
}

impl Lexicon for UnicodeLexicon<'_> {
    fn id(&self, token: &str) -> Option<u32> {
        self.vocab.get(token).copied()
    }
    fn normalize(&self, text: &str, out: &mut String) {
        unicode::normalize(&self.options, text, out);
    }
    fn is_punctuation(&self, c: char) -> bool {
        unicode::is_punctuation(c)
    }
}

/// A WordPiece tokenizer: the basic tokenizer, then greedy longest-match word pieces, over a
/// [`Lexicon`] (by default the host's, from a borrowed `vocab.txt`).
#[derive(Debug, Clone)]
pub struct WordPieceTokenizer<'a, L = UnicodeLexicon<'a>> {
    lexicon: L,
    vocab_size: usize,
    unk: u32,
    cls: u32,
    sep: u32,
    _vocab: core::marker::PhantomData<&'a [u8]>,
}

impl<'a> WordPieceTokenizer<'a> {
    /// Read `vocab.txt` (one token per line; the line number is the id).
    pub fn from_vocab(vocab_txt: &'a [u8], options: BasicOptions) -> Result<Self> {
        let lexicon = UnicodeLexicon::new(vocab_txt, options)?;
        let size = lexicon.vocab.len();
        Self::with_lexicon(lexicon, size)
    }
}

impl<'a> WordPieceTokenizer<'a, DeviceLexicon<'a>> {
    /// A tokenizer over a device vocabulary (made on the host by [`device::compile`]), read in
    /// place: nothing of the vocabulary is copied into RAM.
    pub fn from_device_vocab(bytes: &'a [u8]) -> Result<Self> {
        let lexicon = DeviceLexicon::parse(bytes)?;
        let size = lexicon.len();
        Self::with_lexicon(lexicon, size)
    }
}

impl<'a, L: Lexicon> WordPieceTokenizer<'a, L> {
    /// A tokenizer over any lexicon that has `[UNK]`, `[CLS]` and `[SEP]`.
    pub fn with_lexicon(lexicon: L, vocab_size: usize) -> Result<Self> {
        let need = |t: &str| {
            lexicon
                .id(t)
                .ok_or_else(|| Error::InvalidInput(format!("vocab.txt has no {t} token")))
        };
        Ok(WordPieceTokenizer {
            unk: need("[UNK]")?,
            cls: need("[CLS]")?,
            sep: need("[SEP]")?,
            vocab_size,
            lexicon,
            _vocab: core::marker::PhantomData,
        })
    }

    /// The id of a token, if in the vocabulary.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.lexicon.id(token)
    }

    /// Number of entries in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Greedy longest-match WordPiece of one word, appended to `out`.
    fn word_pieces(&self, word: &str, piece: &mut String, out: &mut Vec<u32>) {
        if word.chars().count() > MAX_INPUT_CHARS_PER_WORD {
            out.push(self.unk);
            return;
        }
        let start_len = out.len();
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                piece.clear();
                if start > 0 {
                    piece.push_str("##");
                }
                piece.push_str(&word[start..end]);
                if let Some(id) = self.lexicon.id(piece) {
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
        let mut normalized = String::new();
        let mut piece = String::new();
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
            normalized.clear();
            self.lexicon.normalize(plain, &mut normalized);
            for chunk in normalized.split(' ').filter(|w| !w.is_empty()) {
                let mut word_start = 0;
                for (i, c) in chunk.char_indices() {
                    if self.lexicon.is_punctuation(c) {
                        if word_start < i {
                            self.word_pieces(&chunk[word_start..i], &mut piece, out);
                        }
                        self.word_pieces(&chunk[i..i + c.len_utf8()], &mut piece, out);
                        word_start = i + c.len_utf8();
                    }
                }
                if word_start < chunk.len() {
                    self.word_pieces(&chunk[word_start..], &mut piece, out);
                }
            }
            match special {
                Some(t) => {
                    out.push(self.lexicon.id(t).unwrap_or(self.unk));
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

    /// `[CLS] text [SEP]` cut to at most `max_tokens` ids (at least 2) by dropping word
    /// pieces from the end, as HF's truncation does for one sequence.
    pub fn encode_truncated(&self, text: &str, max_tokens: usize) -> Vec<u32> {
        let mut ids = self.encode(text, None).ids;
        if ids.len() > max_tokens.max(2) {
            ids.truncate(max_tokens.max(2) - 1);
            ids.push(self.sep);
        }
        ids
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
        assert_eq!(t.encode_truncated("the un the", 3), [2, 5, 3]);
        assert_eq!(t.encode_truncated("the un the", 0), [2, 3]);
        assert_eq!(t.encode_truncated("the", 64), [2, 5, 3]);
    }

    #[test]
    fn vocab_without_specials_is_an_error() {
        assert!(WordPieceTokenizer::from_vocab(b"a\nb\n", BasicOptions::default()).is_err());
        assert!(WordPieceTokenizer::from_vocab(&[0xff, 0xfe], BasicOptions::default()).is_err());
    }
}
