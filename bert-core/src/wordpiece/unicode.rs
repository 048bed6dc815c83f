//! The basic tokenizer's character classes and normalisation from the full Unicode tables
//! (`unicode-normalization`, `unicode-general-category`): what the host's tokenizer uses, and
//! what [`super::device`] compiles a vocabulary's compact tables from.

use alloc::string::String;

use unicode_general_category::{get_general_category, GeneralCategory as Gc};
use unicode_normalization::UnicodeNormalization;

use super::BasicOptions;

/// Whitespace as the reference sees it: `\t`, `\n`, `\r` and Unicode's white space.
pub(crate) fn is_whitespace(c: char) -> bool {
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

/// ASCII punctuation or any character of a Unicode punctuation category (P*).
pub(crate) fn is_punctuation(c: char) -> bool {
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

/// The CJK ideograph blocks that `tokenize_chinese_chars` puts spaces around.
pub(crate) fn is_chinese_char(c: char) -> bool {
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

/// Canonical combining class (0 for starters).
pub(crate) fn combining_class(c: char) -> u8 {
    unicode_normalization::char::canonical_combining_class(c)
}

/// The basic tokenizer's normalisation of a piece of text (no special tokens in it), appended
/// to `out`: clean-up, whitespace to `' '`, CJK spacing, then NFD without non-spacing marks and
/// lower-casing as the options say.
pub(crate) fn normalize(options: &BasicOptions, text: &str, out: &mut String) {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\0' || c == '\u{fffd}' || is_control(c) {
            continue;
        }
        let c = if is_whitespace(c) { ' ' } else { c };
        if options.tokenize_chinese_chars && is_chinese_char(c) {
            s.push(' ');
            s.push(c);
            s.push(' ');
        } else {
            s.push(c);
        }
    }
    if options.strip_accents.unwrap_or(options.lowercase) {
        s = s
            .nfd()
            .filter(|&c| get_general_category(c) != Gc::NonspacingMark)
            .collect();
    }
    if options.lowercase {
        out.extend(s.chars().flat_map(char::to_lowercase));
    } else {
        out.push_str(&s);
    }
}
