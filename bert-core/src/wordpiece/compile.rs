//! Compiling a vocabulary for the device ([`super::device`]), on the host: the sorted,
//! front-coded token area and the character tables, made from the host tokenizer's own
//! normalisation of every code point (the full Unicode tables).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::device::{
    invalid, push_jamo, BLOCK, CLASS_BITS, CLASS_MASK, DEVICE_VOCAB_MAGIC, FIRST_STRING, HANGUL,
    ISOLATE, KEEP, KEEP_PUNCT, MAX_TOKEN, POISON, REMOVE, SPACE,
};
use super::{unicode, BasicOptions, UnicodeLexicon};
use crate::error::Result;

/// The host's normalisation of one character.
fn normalize_char(options: &BasicOptions, c: char) -> String {
    let mut buf = [0u8; 4];
    let mut out = String::new();
    unicode::normalize(options, c.encode_utf8(&mut buf), &mut out);
    out
}

/// Compiles `vocab.txt` and the basic tokenizer's options into a device vocabulary (see the
/// module documentation). Runs on the host: it reads the full Unicode tables.
///
/// ```
/// use bert_core::wordpiece::{device, BasicOptions, WordPieceTokenizer};
/// let vocab = b"[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n,\ncafe\n";
/// let blob = device::compile(vocab, BasicOptions::default()).unwrap();
/// let host = WordPieceTokenizer::from_vocab(vocab, BasicOptions::default()).unwrap();
/// let device = WordPieceTokenizer::from_device_vocab(&blob).unwrap();
/// assert_eq!(device.encode("Hello, Café!", None), host.encode("Hello, Café!", None));
/// ```
pub fn compile(vocab_txt: &[u8], options: BasicOptions) -> Result<Vec<u8>> {
    compile_through(vocab_txt, options, char::MAX)
}

/// [`compile`] with tables that are exact through `last` only (code points after it take its
/// class): the unit tests' short version under Miri.
pub(super) fn compile_through(
    vocab_txt: &[u8],
    options: BasicOptions,
    last: char,
) -> Result<Vec<u8>> {
    let lexicon = UnicodeLexicon::new(vocab_txt, options)?;
    let charset: BTreeSet<char> = lexicon
        .tokens()
        .flat_map(|(t, _)| t.strip_prefix("##").unwrap_or(t).chars())
        .collect();
    if charset.contains(&POISON) {
        return Err(invalid("a token holds U+FFFF, the tables' stand-in letter"));
    }
    let (ranges, strings) = char_tables(&options, &charset, last)?;
    let (blocks, area, id_width) = token_area(&lexicon)?;

    let mut offsets = Vec::with_capacity(strings.len() + 1);
    let mut text = String::new();
    offsets.push(0u16);
    for s in &strings {
        text.push_str(s);
        let end = u16::try_from(text.len()).map_err(|_| invalid("strings over 64 KiB"))?;
        offsets.push(end);
    }
    let mut out = Vec::new();
    out.extend_from_slice(DEVICE_VOCAB_MAGIC);
    let fields = [
        lexicon.tokens().count(),
        id_width,
        area.len(),
        ranges.len(),
        strings.len(),
        text.len(),
    ];
    for f in fields {
        out.extend_from_slice(&(f as u32).to_le_bytes());
    }
    let section = |out: &mut Vec<u8>, bytes: &[u8]| {
        out.extend_from_slice(bytes);
        out.resize(out.len().next_multiple_of(4), 0);
    };
    section(&mut out, &le_u32s(&blocks));
    section(&mut out, &area);
    section(&mut out, &le_u32s(&ranges));
    let offsets: Vec<u8> = offsets.iter().flat_map(|o| o.to_le_bytes()).collect();
    section(&mut out, &offsets);
    section(&mut out, text.as_bytes());
    Ok(out)
}

fn le_u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The class of every code point, as runs, and the strings that classes past `FIRST_STRING`
/// name.
fn char_tables(
    options: &BasicOptions,
    charset: &BTreeSet<char>,
    last: char,
) -> Result<(Vec<u32>, Vec<String>)> {
    let mut strings: Vec<String> = Vec::new();
    let mut string_ids: BTreeMap<String, u32> = BTreeMap::new();
    let mut ranges: Vec<u32> = Vec::new();
    let mut previous = u32::MAX;
    for cp in 0..=last as u32 {
        // Surrogates never occur in a `str`: they join the run before them.
        let Some(c) = char::from_u32(cp) else {
            continue;
        };
        let class = char_class(options, charset, c, &mut |s| {
            let next = FIRST_STRING + strings.len() as u32;
            let id = *string_ids.entry(s.clone()).or_insert(next);
            if id == next {
                strings.push(s);
            }
            id
        })?;
        if class > CLASS_MASK {
            return Err(invalid(&format!(
                "more distinct normalisations than the class field holds (at U+{cp:04X})"
            )));
        }
        if class != previous {
            ranges.push((cp << CLASS_BITS) | class);
            previous = class;
        }
    }
    Ok((ranges, strings))
}

/// One code point's class; `intern` numbers a string result.
fn char_class(
    options: &BasicOptions,
    charset: &BTreeSet<char>,
    c: char,
    intern: &mut dyn FnMut(String) -> u32,
) -> Result<u32> {
    let out = normalize_char(options, c);
    let mut chars = out.chars();
    let single = |d: char| {
        if unicode::is_punctuation(d) {
            KEEP_PUNCT
        } else {
            KEEP
        }
    };
    match (chars.next(), chars.next(), chars.next(), chars.next()) {
        (None, ..) => return Ok(REMOVE),
        (Some(' '), None, ..) => return Ok(SPACE),
        (Some(d), None, ..) if d == c => return Ok(single(c)),
        (Some(' '), Some(d), Some(' '), None) if d == c => return Ok(ISOLATE),
        _ => {}
    }
    let mut jamo = String::new();
    push_jamo(c, &mut jamo);
    if jamo.chars().count() > 1 && jamo == out {
        return Ok(HANGUL);
    }
    let mut mapped = String::new();
    for d in out.chars() {
        let known = d == ' ' || charset.contains(&d) || unicode::is_punctuation(d);
        if known && unicode::combining_class(d) != 0 {
            return Err(invalid(&format!(
                "U+{:04X} normalises to the combining U+{:04X}, which a token holds: NFD \
                 reordering would matter",
                c as u32, d as u32
            )));
        }
        if !known {
            if !mapped.ends_with(POISON) {
                mapped.push(POISON);
            }
        } else if !unicode::is_punctuation(d) || normalize_char(options, d).chars().eq([d]) {
            // Normalised text is asked only whether a character is punctuation, and the
            // tables answer that for characters that normalise to themselves.
            mapped.push(d);
        } else {
            return Err(invalid(&format!(
                "U+{:04X} normalises to the punctuation U+{:04X}, which normalises further",
                c as u32, d as u32
            )));
        }
    }
    Ok(intern(mapped))
}

/// The block index, the token area, and the id width.
fn token_area(lexicon: &UnicodeLexicon<'_>) -> Result<(Vec<u32>, Vec<u8>, usize)> {
    let max_id = lexicon.tokens().map(|(_, id)| id).max().unwrap_or(0);
    let id_width = if max_id < 1 << 16 { 2 } else { 3 };
    if max_id >= 1 << 24 {
        return Err(invalid("ids over 2^24"));
    }
    let (mut blocks, mut area) = (Vec::new(), Vec::new());
    let mut previous: &[u8] = &[];
    for (i, (token, id)) in lexicon.tokens().enumerate() {
        let token = token.as_bytes();
        if token.len() > MAX_TOKEN {
            return Err(invalid(&format!("a token is over {MAX_TOKEN} bytes")));
        }
        let shared = if i % BLOCK == 0 {
            blocks.push(area.len() as u32);
            0
        } else {
            previous
                .iter()
                .zip(token)
                .take_while(|(a, b)| a == b)
                .count()
        };
        area.push(shared as u8);
        area.push((token.len() - shared) as u8);
        area.extend_from_slice(&id.to_le_bytes()[..id_width]);
        area.extend_from_slice(&token[shared..]);
        previous = token;
    }
    Ok((blocks, area, id_width))
}
