//! Extractive-QA data: questions over passages with free-form answers (DisflQA, NarrativeQA,
//! SQuAD-style files) turned into SQuAD-style spans by exact match; a split by passage; the
//! SQuAD metrics (exact match and token F1) and a word-overlap baseline to compare against.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use bert_core::rng::Rng;
use serde_json::Value;

pub use super::qa_example::{QaExample, QaLoaded};
use super::squad;
use crate::error::{Error, Result};

/// Why a line whose answer is not in its passage was skipped.
pub const NO_SPAN: &str = "no answer occurs verbatim in the passage";

/// An answer as matched: surrounding spaces and trailing full stops removed (NarrativeQA writes
/// answers as sentences, "They set up a school.").
fn trimmed(answer: &str) -> &str {
    answer.trim().trim_end_matches('.').trim_end()
}

/// The character span of the first answer (in order) that occurs in `passage`, compared
/// case-insensitively; the first occurrence wins.
pub fn find_span(passage: &str, answers: &[String]) -> Option<(usize, usize)> {
    let hay: Vec<char> = passage.chars().collect();
    let same = |a: char, b: char| a == b || a.to_lowercase().eq(b.to_lowercase());
    answers.iter().find_map(|a| {
        let needle: Vec<char> = trimmed(a).chars().collect();
        if needle.is_empty() || needle.len() > hay.len() {
            return None;
        }
        (0..=hay.len() - needle.len())
            .find(|&i| needle.iter().zip(&hay[i..]).all(|(&x, &y)| same(x, y)))
            .map(|i| (i, i + needle.len()))
    })
}

/// The answers of a line: a string, a list of strings, or SQuAD's `{"text": [...]}`.
fn answers_of(v: &Value) -> Option<Vec<String>> {
    let list = |a: &Vec<Value>| -> Vec<String> {
        a.iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    let out = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => list(a),
        Value::Object(o) => o.get("text").and_then(Value::as_array).map(list)?,
        _ => return None,
    };
    (!out.iter().all(|a| trimmed(a).is_empty())).then_some(out)
}

/// Read QA data: a SQuAD v1.1/v2.0 JSON file, or JSON Lines. A line has `"question"`, the
/// passage as `"passage"` or `"context"`, and `"answer"` or `"answers"`: a string or a list
/// (spans found by matching; questions whose answer does not occur in the passage are skipped
/// and counted, [`NO_SPAN`]), or a `datasets` export's `{"text": [...], "answer_start":
/// [...]}` (the span where `answer_start` says; see [`super::squad`]).
pub fn read_qa(path: &Path) -> Result<QaLoaded> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse_qa(&bytes, path)
}

/// Parse QA JSON Lines (see [`read_qa`]); `path` names the file in errors.
pub fn parse_qa(bytes: &[u8], path: &Path) -> Result<QaLoaded> {
    let text = super::data::utf8(bytes, path)?;
    if text.trim_start().starts_with('{') {
        if let Ok(v) = serde_json::from_str::<Value>(text) {
            if squad::is_squad(&v) {
                return squad::parse_squad(&v, path);
            }
        }
    }
    let mut out = QaLoaded::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            out.skipped.push((n, "blank line".into()));
            continue;
        }
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => {
                out.skipped.push((n, format!("invalid JSON ({e})")));
                continue;
            }
        };
        if let Some(made) = squad::datasets_line(&v) {
            match made {
                Ok(e) => {
                    out.questions += 1;
                    out.examples.push(e);
                }
                Err(why) => out.skipped.push((n, why)),
            }
            continue;
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let answers = v.get("answer").or_else(|| v.get("answers"));
        let (Some(question), Some(passage), Some(answers)) = (
            s("question").filter(|q| !q.trim().is_empty()),
            s("passage")
                .or_else(|| s("context"))
                .filter(|p| !p.trim().is_empty()),
            answers.and_then(answers_of),
        ) else {
            out.skipped.push((
                n,
                "needs \"question\", \"passage\" (or \"context\") and a non-empty \"answer\""
                    .into(),
            ));
            continue;
        };
        out.questions += 1;
        match find_span(&passage, &answers) {
            Some((start, end)) => out.examples.push(QaExample {
                question,
                passage,
                answers,
                start,
                end,
            }),
            None => out.skipped.push((n, NO_SPAN.into())),
        }
    }
    if out.examples.is_empty() {
        return Err(Error::file(
            path,
            format!(
                "no question with an answer in its passage ({} lines skipped)",
                out.skipped.len()
            ),
        ));
    }
    Ok(out)
}

/// A seeded split into (train, held-out) by passage: about `eval_share` of the passages, with
/// all their questions, are held out, so no passage is in both.
pub fn split_by_passage(
    examples: &[QaExample],
    eval_share: f32,
    seed: u64,
) -> (Vec<QaExample>, Vec<QaExample>) {
    let mut passages: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for e in examples {
        if seen.insert(e.passage.as_str()) {
            passages.push(&e.passage);
        }
    }
    let mut rng = Rng::new(seed ^ 0x5eed);
    rng.shuffle(&mut passages);
    let k = ((passages.len() as f32) * eval_share).round() as usize;
    let held: HashSet<&str> = passages[..k.min(passages.len())].iter().copied().collect();
    examples
        .iter()
        .cloned()
        .partition(|e| !held.contains(e.passage.as_str()))
}

/// SQuAD's answer normalization: lower case, no punctuation, no articles, single spaces.
pub fn normalize_answer(s: &str) -> String {
    let lower: String = s
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    lower
        .split_whitespace()
        .filter(|w| !matches!(*w, "a" | "an" | "the"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// SQuAD exact match against the best of the reference answers.
pub fn exact_match(prediction: &str, answers: &[String]) -> bool {
    let p = normalize_answer(prediction);
    answers.iter().any(|a| normalize_answer(a) == p)
}

/// SQuAD token F1 against the best of the reference answers.
pub fn token_f1(prediction: &str, answers: &[String]) -> f32 {
    let p = normalize_answer(prediction);
    let pred: Vec<&str> = p.split_whitespace().collect();
    answers
        .iter()
        .map(|a| {
            let g = normalize_answer(a);
            let gold: Vec<&str> = g.split_whitespace().collect();
            if pred.is_empty() || gold.is_empty() {
                return f32::from(u8::from(pred.is_empty() && gold.is_empty()));
            }
            let mut counts: BTreeMap<&str, i32> = BTreeMap::new();
            for w in &gold {
                *counts.entry(w).or_default() += 1;
            }
            let mut same = 0;
            for w in &pred {
                if let Some(c) = counts.get_mut(w).filter(|c| **c > 0) {
                    *c -= 1;
                    same += 1;
                }
            }
            if same == 0 {
                return 0.0;
            }
            let (precision, recall) = (
                same as f32 / pred.len() as f32,
                same as f32 / gold.len() as f32,
            );
            2.0 * precision * recall / (precision + recall)
        })
        .fold(0.0, f32::max)
}

/// The baseline: the passage sentence sharing the most (normalized) words with the question;
/// the first such sentence on ties.
pub fn overlap_baseline(question: &str, passage: &str) -> String {
    let q = normalize_answer(question);
    let words: HashSet<&str> = q.split_whitespace().collect();
    let mut best = ("", 0usize);
    for sentence in passage.split_inclusive(['.', '?', '!', '\n']) {
        let s = normalize_answer(sentence);
        let shared = s
            .split_whitespace()
            .collect::<HashSet<_>>()
            .intersection(&words)
            .count();
        if shared > best.1 || best.0.is_empty() {
            best = (sentence, shared);
        }
    }
    best.0.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn spans_are_case_insensitive_first_occurrences_in_characters() {
        let p = "Émile met Bob. BOB left.";
        assert_eq!(find_span(p, &s(&["bob."])), Some((10, 13)));
        assert_eq!(find_span(p, &s(&["nobody", "émile"])), Some((0, 5)));
        assert_eq!(find_span(p, &s(&["carol", " . "])), None);
    }

    #[test]
    fn squad_metrics() {
        assert_eq!(normalize_answer("The  Cat, sat!"), "cat sat");
        assert!(exact_match("the cat", &s(&["a dog", "Cat."])));
        assert!(!exact_match("cat sat", &s(&["cat"])));
        assert!((token_f1("cat sat down", &s(&["the cat sat"])) - 0.8).abs() < 1e-6);
        assert_eq!(token_f1("", &s(&["x"])), 0.0);
        assert_eq!(
            overlap_baseline(
                "Where did Bob go?",
                "Alice stayed. Bob went to Paris. Then home."
            ),
            "Bob went to Paris."
        );
    }

    #[test]
    fn bad_lines_counted_and_split_keeps_passages_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qa.jsonl");
        let mut lines = vec![
            "not json".to_string(),
            "{\"question\": \"q\", \"passage\": \"p\"}".to_string(),
            "{\"question\": \"Who?\", \"passage\": \"Ann ran.\", \"answer\": \"Bea\"}".to_string(),
            String::new(),
        ];
        for i in 0..20 {
            lines.push(format!(
                "{{\"question\": \"Who {i}?\", \"context\": \"Passage {} says Ann.\", \"answers\": {{\"text\": [\"ann\"]}}}}",
                i % 5
            ));
        }
        std::fs::write(&path, lines.join("\n")).unwrap();
        let l = read_qa(&path).unwrap();
        assert_eq!((l.examples.len(), l.questions), (20, 21));
        let why: Vec<usize> = l.skipped.iter().map(|s| s.0).collect();
        assert_eq!(why, [1, 2, 3, 4]);
        assert_eq!(l.skipped[2].1, NO_SPAN);
        assert_eq!(
            &l.examples[0].passage[l.examples[0].start..l.examples[0].end],
            "Ann"
        );
        let (train, eval) = split_by_passage(&l.examples, 0.4, 1);
        assert_eq!((train.len(), eval.len()), (12, 8));
        assert!(train
            .iter()
            .all(|t| eval.iter().all(|e| e.passage != t.passage)));
        std::fs::write(
            &path,
            "{\"question\": \"q\", \"passage\": \"p\", \"answer\": \"z\"}",
        )
        .unwrap();
        assert!(read_qa(&path).is_err());
    }
}
