//! A vocabulary compiled for a microcontroller: its tokens sorted for binary search and the
//! basic tokenizer's character tables reduced to what that vocabulary can tell apart, in one
//! blob read in place from flash. For the 8,192-token student: about 110 KB of flash in place
//! of the Unicode crates' 170 KB of tables plus `vocab.txt`, and no RAM (the host's map of the
//! vocabulary would take over 250 KB of it).
//!
//! # Why the ids are the same
//! The basic tokenizer's normalisation (clean-up, CJK spacing, NFD without non-spacing marks,
//! lower-casing) works character by character, except that NFD puts runs of combining
//! characters in canonical order. So [`compile`] runs the host's normalisation on every code
//! point once (`super::compile`) and stores the result per character, as a run of equal results or a string:
//! - a character that normalises to itself is kept, with its punctuation flag;
//! - one that vanishes, turns into a space or is a CJK ideograph is one of three classes;
//! - any other keeps its normalisation, except that a letter no token holds (WordPiece can
//!   only answer `[UNK]` for a word that holds it) is written as one `U+FFFF` ("poison"), a
//!   letter no token holds either. This folds the 11,172 Hangul syllables, for instance, into
//!   one run. Hangul syllables split into jamo by Unicode's formula, in code.
//!
//! Canonical reordering moves only combining characters (class ≠ 0) within a word; `compile`
//! refuses a vocabulary whose tokens hold a combining character that survives normalisation, so
//! reordering only moves letters that make their word `[UNK]` either way. The tests compare the
//! two lexicons on every code point in context, on a corpus, and in the differential fuzz
//! target.
//!
//! # Layout (little-endian; sections 4-byte aligned)
//! | bytes | what |
//! |---|---|
//! | 0..8 | [`DEVICE_VOCAB_MAGIC`] |
//! | 8..32 | u32 × 6: tokens, id width (2 or 3 bytes), token area bytes, ranges, strings, string bytes |
//! | blocks | u32 per 32 tokens: where the block's first entry starts in the token area |
//! | token area | per token in byte order: bytes shared with the previous token of its block (u8, 0 for a block's first), length of the rest (u8), id (id width), the rest |
//! | ranges | u32 per run of code points: first code point << 11, class |
//! | string offsets | u16 × (strings + 1) |
//! | strings | UTF-8 |

use alloc::format;
use alloc::string::String;
use core::cmp::Ordering;

pub use super::compile::compile;
use super::Lexicon;
use crate::error::{Error, Result};

/// The first eight bytes of a device vocabulary.
pub const DEVICE_VOCAB_MAGIC: &[u8; 8] = b"BERTWPD1";
pub(super) const HEADER: usize = 32;
/// Tokens per block of the binary search's index (front-coded within a block).
pub(super) const BLOCK: usize = 32;
/// The longest token, in bytes.
pub(super) const MAX_TOKEN: usize = 255;
/// Bits of a range entry that hold its class.
pub(super) const CLASS_BITS: u32 = 11;
pub(super) const CLASS_MASK: u32 = (1 << CLASS_BITS) - 1;
/// Classes of a run of code points.
pub(super) const KEEP: u32 = 0;
pub(super) const KEEP_PUNCT: u32 = 1;
pub(super) const REMOVE: u32 = 2;
pub(super) const SPACE: u32 = 3;
pub(super) const ISOLATE: u32 = 4;
/// A Hangul syllable that NFD splits into its jamo (computed, not stored: 11,172 of them).
pub(super) const HANGUL: u32 = 5;
/// Classes from here on are strings: class − `FIRST_STRING` indexes them.
pub(super) const FIRST_STRING: u32 = 6;
/// A letter that no token holds, standing for every other such letter.
pub(super) const POISON: char = '\u{ffff}';

/// A compiled vocabulary, borrowed from its blob (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct DeviceLexicon<'a> {
    tokens: usize,
    id_width: usize,
    blocks: &'a [u8],
    token_area: &'a [u8],
    ranges: &'a [u8],
    string_offsets: &'a [u8],
    strings: &'a str,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

pub(super) fn invalid(what: &str) -> Error {
    Error::InvalidInput(format!("device vocabulary: {what}"))
}

/// Cuts `len` bytes at `*at` (then aligned to 4) off `bytes`.
fn take<'a>(bytes: &'a [u8], at: &mut usize, len: usize, what: &str) -> Result<&'a [u8]> {
    let end = at
        .checked_add(len)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| invalid(&format!("{what} runs past the end")))?;
    let part = &bytes[*at..end];
    *at = end.next_multiple_of(4);
    Ok(part)
}

/// One token entry: the bytes it shares with the previous token, the rest, its id, and where
/// the next entry starts.
struct Entry<'a> {
    shared: usize,
    rest: &'a [u8],
    id: u32,
    next: usize,
}

/// A token rebuilt from front-coded entries.
struct Rebuilt {
    bytes: [u8; MAX_TOKEN],
    len: usize,
}

impl Rebuilt {
    const fn new() -> Self {
        Rebuilt {
            bytes: [0; MAX_TOKEN],
            len: 0,
        }
    }

    /// Applies an entry; `None` when it shares more than there is or runs over the limit.
    fn apply(&mut self, e: &Entry<'_>) -> Option<&[u8]> {
        let len = e.shared.checked_add(e.rest.len())?;
        if e.shared > self.len || len > MAX_TOKEN {
            return None;
        }
        self.bytes[e.shared..len].copy_from_slice(e.rest);
        self.len = len;
        Some(&self.bytes[..len])
    }
}

impl<'a> DeviceLexicon<'a> {
    /// Reads and checks a compiled vocabulary (made by [`compile`]) without copying it.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < HEADER || &bytes[..8] != DEVICE_VOCAB_MAGIC {
            return Err(invalid("no BERTWPD1 header"));
        }
        let field = |i: usize| u32_at(bytes, 8 + 4 * i) as usize;
        let (tokens, id_width, area_len) = (field(0), field(1), field(2));
        let (ranges, strings, strings_len) = (field(3), field(4), field(5));
        if !(2..=3).contains(&id_width) {
            return Err(invalid("id width is not 2 or 3 bytes"));
        }
        let mut at = HEADER;
        let lex = DeviceLexicon {
            tokens,
            id_width,
            blocks: take(bytes, &mut at, tokens.div_ceil(BLOCK) * 4, "block index")?,
            token_area: take(bytes, &mut at, area_len, "token area")?,
            ranges: take(bytes, &mut at, ranges.saturating_mul(4), "ranges")?,
            string_offsets: take(bytes, &mut at, (strings + 1).saturating_mul(2), "offsets")?,
            strings: core::str::from_utf8(take(bytes, &mut at, strings_len, "strings")?)
                .map_err(|_| invalid("strings are not UTF-8"))?,
        };
        lex.check_tokens()?;
        lex.check_tables(strings)?;
        Ok(lex)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens
    }

    /// Whether it has no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens == 0
    }

    /// The entry at `at` in the token area, if whole.
    fn entry(&self, at: usize) -> Option<Entry<'a>> {
        let shared = usize::from(*self.token_area.get(at)?);
        let len = usize::from(*self.token_area.get(at + 1)?);
        let id_bytes = self.token_area.get(at + 2..at + 2 + self.id_width)?;
        let id = id_bytes
            .iter()
            .rev()
            .fold(0u32, |id, &b| (id << 8) | u32::from(b));
        let start = at + 2 + self.id_width;
        let rest = self.token_area.get(start..start + len)?;
        Some(Entry {
            shared,
            rest,
            id,
            next: start + len,
        })
    }

    /// Every entry whole, in strictly increasing byte order, each block starting where its
    /// index says: what the binary search relies on.
    fn check_tokens(&self) -> Result<()> {
        let mut at = 0;
        let (mut current, mut previous) = (Rebuilt::new(), Rebuilt::new());
        for i in 0..self.tokens {
            let e = self
                .entry(at)
                .ok_or_else(|| invalid("a token runs past its area"))?;
            let block_start = i % BLOCK == 0;
            if block_start && (u32_at(self.blocks, i / BLOCK * 4) as usize != at || e.shared != 0) {
                return Err(invalid("the block index does not match the tokens"));
            }
            if current.apply(&e).is_none() {
                return Err(invalid("a token shares more than its predecessor has"));
            }
            if i > 0 && previous.bytes[..previous.len] >= current.bytes[..current.len] {
                return Err(invalid("tokens are not in strictly increasing byte order"));
            }
            previous.bytes[..current.len].copy_from_slice(&current.bytes[..current.len]);
            previous.len = current.len;
            at = e.next;
        }
        Ok(())
    }

    /// Runs start at 0 and rise; classes name strings that exist; string offsets rise and
    /// fall on character boundaries.
    fn check_tables(&self, strings: usize) -> Result<()> {
        let mut previous = None;
        for i in 0..self.ranges.len() / 4 {
            let entry = u32_at(self.ranges, 4 * i);
            let start = entry >> CLASS_BITS;
            if previous.map_or(start != 0, |p| start <= p) {
                return Err(invalid("ranges do not start at 0 and rise"));
            }
            if (entry & CLASS_MASK) >= FIRST_STRING + strings as u32 {
                return Err(invalid("a range names a string that does not exist"));
            }
            previous = Some(start);
        }
        if previous.is_none() {
            return Err(invalid("no ranges"));
        }
        let offset = |i: usize| {
            usize::from(u16::from_le_bytes([
                self.string_offsets[2 * i],
                self.string_offsets[2 * i + 1],
            ]))
        };
        for i in 0..=strings {
            let ok = self.strings.is_char_boundary(offset(i))
                && (i == 0 || offset(i - 1) <= offset(i))
                && (i < strings || offset(i) == self.strings.len());
            if !ok {
                return Err(invalid(
                    "string offsets do not rise on character boundaries",
                ));
            }
        }
        Ok(())
    }

    /// The class of a code point: the last run starting at or before it.
    fn class(&self, c: char) -> u32 {
        let runs = self.ranges.len() / 4;
        let (mut lo, mut hi) = (0, runs);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if u32_at(self.ranges, 4 * mid) >> CLASS_BITS <= c as u32 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        u32_at(self.ranges, 4 * lo) & CLASS_MASK
    }

    fn string(&self, i: usize) -> &'a str {
        let offset = |i: usize| {
            usize::from(u16::from_le_bytes([
                self.string_offsets[2 * i],
                self.string_offsets[2 * i + 1],
            ]))
        };
        &self.strings[offset(i)..offset(i + 1)]
    }
}

impl Lexicon for DeviceLexicon<'_> {
    fn id(&self, token: &str) -> Option<u32> {
        let token = token.as_bytes();
        let blocks = self.tokens.div_ceil(BLOCK);
        // A block's first entry shares nothing: its rest is the whole token.
        let first = |b: usize| self.entry(u32_at(self.blocks, 4 * b) as usize);
        // The last block whose first token is ≤ the token.
        let (mut lo, mut hi) = (0, blocks);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if first(mid)?.rest <= token {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let mut at = u32_at(self.blocks, 4 * lo) as usize;
        let mut current = Rebuilt::new();
        for _ in 0..BLOCK.min(self.tokens - lo * BLOCK) {
            let e = self.entry(at)?;
            match current.apply(&e)?.cmp(token) {
                Ordering::Equal => return Some(e.id),
                Ordering::Greater => return None,
                Ordering::Less => at = e.next,
            }
        }
        None
    }

    fn normalize(&self, text: &str, out: &mut String) {
        for c in text.chars() {
            match self.class(c) {
                KEEP | KEEP_PUNCT => out.push(c),
                REMOVE => {}
                SPACE => out.push(' '),
                ISOLATE => {
                    out.push(' ');
                    out.push(c);
                    out.push(' ');
                }
                HANGUL => push_jamo(c, out),
                s => out.push_str(self.string((s - FIRST_STRING) as usize)),
            }
        }
    }

    fn is_punctuation(&self, c: char) -> bool {
        self.class(c) == KEEP_PUNCT
    }
}

/// Unicode's algorithmic decomposition of a Hangul syllable (U+AC00..=U+D7A3) into two or
/// three jamo; other characters are pushed unchanged.
pub(super) fn push_jamo(c: char, out: &mut String) {
    const S_BASE: u32 = 0xAC00;
    const T_COUNT: u32 = 28;
    const N_COUNT: u32 = 21 * T_COUNT;
    let Some(s) = (c as u32).checked_sub(S_BASE).filter(|&s| s < 19 * N_COUNT) else {
        out.push(c);
        return;
    };
    let jamo = [
        0x1100 + s / N_COUNT,
        0x1161 + s % N_COUNT / T_COUNT,
        0x11A7 + s % T_COUNT,
    ];
    let parts = if s % T_COUNT == 0 { 2 } else { 3 };
    out.extend(jamo[..parts].iter().filter_map(|&j| char::from_u32(j)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wordpiece::compile::compile_through;
    use crate::wordpiece::{BasicOptions, UnicodeLexicon, WordPieceTokenizer};
    use alloc::vec;
    use alloc::vec::Vec;

    const VOCAB: &str =
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nun\n##aff\n##able\n,\n!\ncafe\n北\n\
                         hello\nεν\n##ς\n";

    /// The whole tables, or under Miri (slow) those through U+00FF with Latin-1 texts only.
    fn blob() -> Vec<u8> {
        let last = if cfg!(miri) { '\u{ff}' } else { char::MAX };
        compile_through(VOCAB.as_bytes(), BasicOptions::default(), last).unwrap()
    }

    #[test]
    fn same_ids_as_the_host_on_mixed_text() {
        let blob = blob();
        let host =
            WordPieceTokenizer::from_vocab(VOCAB.as_bytes(), BasicOptions::default()).unwrap();
        let device = WordPieceTokenizer::from_device_vocab(&blob).unwrap();
        let mut texts = vec![
            "The UNaffable, Café! [MASK] xyz",
            "",
            "\u{0}\u{b}\u{ad}caFÉ",
        ];
        if !cfg!(miri) {
            texts.extend([
                "北 ΕΝΣ hello\u{200b}the\u{0301}un 한국어 ｈｅｌｌｏ！ \u{37e}cafe\u{fb01}",
                "\u{fffd}\u{ffff}\u{1d15e}\u{1d165}",
            ]);
        }
        for text in texts {
            assert_eq!(
                device.encode(text, Some(text)),
                host.encode(text, Some(text)),
                "{text:?}"
            );
        }
        assert_eq!(device.vocab_size(), host.vocab_size());
        for (t, id) in UnicodeLexicon::new(VOCAB.as_bytes(), BasicOptions::default())
            .unwrap()
            .tokens()
        {
            assert_eq!(device.token_to_id(t), Some(id));
        }
        assert_eq!(device.token_to_id("zz"), None);
        assert_eq!(device.token_to_id(""), None);
    }

    #[test]
    fn damaged_blobs_are_errors() {
        let blob = blob();
        let lex = DeviceLexicon::parse(&blob).unwrap();
        let strings_end =
            lex.strings.as_ptr() as usize - blob.as_ptr() as usize + lex.strings.len();
        for cut in [0, 7, 31, blob.len() / 2, strings_end - 1] {
            assert!(DeviceLexicon::parse(&blob[..cut]).is_err(), "cut at {cut}");
        }
        // The second token claims to share more than the first has.
        let mut bad = blob.clone();
        let area = HEADER + 4;
        let second = area + 4 + usize::from(blob[area + 1]);
        bad[second] = 200;
        assert!(WordPieceTokenizer::from_device_vocab(&bad).is_err());
        // The first token made larger than the second: out of order.
        let mut bad = blob.clone();
        bad[area + 4] = 0xff;
        assert!(WordPieceTokenizer::from_device_vocab(&bad).is_err());
        // A range naming a string that does not exist.
        let mut bad = blob.clone();
        let offset = lex.ranges.as_ptr() as usize - blob.as_ptr() as usize;
        bad[offset..offset + 4].copy_from_slice(&CLASS_MASK.to_le_bytes());
        assert!(DeviceLexicon::parse(&bad).is_err());
    }
}
