//! The documents pre-training reads: JSON Lines or plain text, each document cut into
//! sentences; lines that cannot be used are counted, never dropped silently.

use std::collections::HashSet;
use std::path::Path;

use bert_core::rng::Rng;

use crate::error::{Error, Result};

/// Documents, each a list of sentences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Corpus {
    /// The sentences of every document.
    pub documents: Vec<Vec<String>>,
}

impl Corpus {
    /// Sentences in all.
    pub fn sentences(&self) -> usize {
        self.documents.iter().map(Vec::len).sum()
    }

    /// A seeded split by document into (train, held-out).
    pub fn split(&self, eval_share: f32, seed: u64) -> (Corpus, Corpus) {
        let mut order: Vec<usize> = (0..self.documents.len()).collect();
        let mut rng = Rng::new(seed ^ 0x5eed);
        rng.shuffle(&mut order);
        let k = ((order.len() as f32) * eval_share).round() as usize;
        let pick = |ix: &[usize]| Corpus {
            documents: ix.iter().map(|&i| self.documents[i].clone()).collect(),
        };
        (
            pick(&order[k.min(order.len())..]),
            pick(&order[..k.min(order.len())]),
        )
    }
}

/// Sentences of a text: cut after `.`, `!` or `?` followed by a space, and at line breaks.
pub fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut start = 0;
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        for (k, &(i, c)) in chars.iter().enumerate() {
            let next_is_space = chars.get(k + 1).is_some_and(|&(_, n)| n.is_whitespace());
            if matches!(c, '.' | '!' | '?') && next_is_space {
                out.push(line[start..i + c.len_utf8()].trim().to_string());
                start = i + c.len_utf8();
            }
        }
        out.push(line[start..].trim().to_string());
    }
    out.retain(|s| s.chars().filter(|c| c.is_alphanumeric()).count() >= 2);
    out
}

/// Read documents: JSON Lines (each line's `"passage"`, `"text"`, `"context"` or
/// `"document"`; repeated documents, as in QA files, are read once) or plain text (documents
/// separated by blank lines). Returns the corpus and (line, why) of each line not used.
pub fn read_corpus(path: &Path) -> Result<(Corpus, Vec<(usize, String)>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let jsonl = path
        .extension()
        .is_some_and(|e| e == "jsonl" || e == "json");
    parse_corpus(&bytes, jsonl, path)
}

/// Parse documents (see [`read_corpus`]): JSON Lines when `jsonl`, else plain text; `path`
/// names the file in errors.
pub fn parse_corpus(
    bytes: &[u8],
    jsonl: bool,
    path: &Path,
) -> Result<(Corpus, Vec<(usize, String)>)> {
    let text = super::data::utf8(bytes, path)?;
    let mut corpus = Corpus::default();
    let mut skipped = Vec::new();
    if jsonl {
        let mut seen = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let v: serde_json::Value = match serde_json::from_str(line) {
                Ok(v) => v,
                Err(e) => {
                    skipped.push((i + 1, format!("invalid JSON ({e})")));
                    continue;
                }
            };
            let doc = ["passage", "text", "context", "document"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|x| x.as_str()));
            match doc {
                Some(d) if seen.insert(d.to_string()) => {
                    corpus.documents.push(split_sentences(d));
                }
                Some(_) => {}
                None => skipped.push((
                    i + 1,
                    "needs a \"passage\", \"text\", \"context\" or \"document\" string".into(),
                )),
            }
        }
    } else {
        for block in text.split("\n\n") {
            let sentences = split_sentences(block);
            if !sentences.is_empty() {
                corpus.documents.push(sentences);
            }
        }
    }
    corpus.documents.retain(|d| !d.is_empty());
    if corpus.documents.len() < 2 || corpus.sentences() < 3 {
        return Err(Error::file(
            path,
            format!(
                "sentence pairs (pre-training, NSP) need at least 2 documents and 3 sentences; \
                 found {} and {} ({} lines skipped)",
                corpus.documents.len(),
                corpus.sentences(),
                skipped.len()
            ),
        ));
    }
    Ok((corpus, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_and_documents() {
        assert_eq!(
            split_sentences("Ann came. He left!\nThen? ok x"),
            ["Ann came.", "He left!", "Then?", "ok x"]
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.jsonl");
        std::fs::write(
            &p,
            "{\"passage\": \"A b. C d.\"}\n{\"passage\": \"A b. C d.\"}\nbad\n{\"text\": \"E f.\"}\n",
        )
        .unwrap();
        let (c, skipped) = read_corpus(&p).unwrap();
        assert_eq!(c.documents, [vec!["A b.", "C d."], vec!["E f."]]);
        assert_eq!(skipped.len(), 1);
        let t = dir.path().join("c.txt");
        std::fs::write(&t, "One two. Three four.\n\nFive six.\n").unwrap();
        assert_eq!(read_corpus(&t).unwrap().0.sentences(), 3);
        std::fs::write(&t, "Only one document. Here.\n").unwrap();
        assert!(read_corpus(&t).is_err());
    }
}
