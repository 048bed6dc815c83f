//! Labelled examples for sequence classification, from CSV (`text,label` with a header, as the
//! IMDB sample), GLUE's TSV (SST-2 `sentence\tlabel`, MRPC, QNLI, RTE, QQP, MNLI pairs: see
//! [`parse_glue_tsv`]) or JSON Lines (`{"text", "label"}`, an optional `"pair"`; BoolQ's
//! `{"question", "passage", "answer"}` too). Bad lines are counted and named, never dropped
//! silently.

use std::path::Path;

use serde_json::Value;

use crate::error::{Error, Result};

/// One example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The text (BoolQ: the question).
    pub text: String,
    /// The second text of a pair (BoolQ: the passage).
    pub pair: Option<String>,
    /// The label, as written in the file.
    pub label: String,
}

/// What reading a data file gave.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// The good examples, in file order.
    pub examples: Vec<Example>,
    /// (line, why) of every line that was not used.
    pub skipped: Vec<(usize, String)>,
}

/// The bytes of a text file as UTF-8, or an error that says where the first bad byte is.
pub(crate) fn utf8<'a>(bytes: &'a [u8], path: &Path) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        Error::file(
            path,
            format!(
                "not UTF-8 text (byte {} is not valid UTF-8)",
                e.valid_up_to()
            ),
        )
    })
}

fn label_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "True" } else { "False" }.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Read a classification data file (`.csv`, GLUE's `.tsv`, or JSON Lines).
pub fn read_classification(path: &Path) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if path.extension().is_some_and(|e| e == "tsv") {
        return parse_glue_tsv(&bytes, path);
    }
    let csv = path.extension().is_some_and(|e| e == "csv");
    parse_classification(&bytes, csv, path)
}

/// GLUE's header names: the text, its pair, the label (first found wins).
const GLUE_TEXT: [&str; 6] = [
    "question",
    "sentence1",
    "question1",
    "#1 String",
    "sentence",
    "text",
];
const GLUE_PAIR: [&str; 5] = ["sentence2", "question2", "#2 String", "sentence", "pair"];
const GLUE_LABEL: [&str; 4] = ["label", "gold_label", "is_duplicate", "Quality"];

/// Read a GLUE task's TSV (a header row, then one example per line, tab-separated, no
/// quoting): SST-2 (`sentence`, `label`), MRPC (`Quality`, `#1 String`, `#2 String`), QNLI
/// (`question`, `sentence`, `label`), RTE/WNLI (`sentence1`, `sentence2`, `label`), QQP
/// (`question1`, `question2`, `is_duplicate`), MNLI (`sentence1`, `sentence2`, `gold_label`).
/// Lines with too few fields or an empty text or label are skipped with their line number.
pub fn parse_glue_tsv(bytes: &[u8], path: &Path) -> Result<Loaded> {
    let text = utf8(bytes, path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split('\t')
        .map(str::trim)
        .collect();
    let col = |names: &[&str], not: Option<usize>| {
        names.iter().find_map(|n| {
            header
                .iter()
                .position(|h| h == n)
                .filter(|&i| Some(i) != not)
        })
    };
    let (Some(t), Some(l)) = (col(&GLUE_TEXT, None), col(&GLUE_LABEL, None)) else {
        return Err(Error::file(
            path,
            format!(
                "line 1: a GLUE TSV header needs a text column ({}) and a label column ({}); \
                 found {header:?} (a GLUE test split has no labels)",
                GLUE_TEXT.join(", "),
                GLUE_LABEL.join(", ")
            ),
        ));
    };
    let p = col(&GLUE_PAIR, Some(t));
    let mut out = Loaded::default();
    for (i, line) in lines.enumerate() {
        let n = i + 2;
        if line.trim().is_empty() {
            out.skipped.push((n, "blank line".into()));
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let field = |c: usize| fields.get(c).map(|f| f.trim().to_string());
        match (field(t), field(l), p.map(field)) {
            (Some(text), Some(label), pair) if !text.is_empty() && !label.is_empty() => {
                match pair {
                    Some(None) => out.skipped.push((n, "no pair field".into())),
                    pair => out.examples.push(Example {
                        text,
                        pair: pair.flatten(),
                        label,
                    }),
                }
            }
            _ => out.skipped.push((
                n,
                format!(
                    "{} tab-separated fields, or an empty text or label",
                    fields.len()
                ),
            )),
        }
    }
    if out.examples.is_empty() {
        return Err(Error::file(
            path,
            format!("no example ({} lines skipped)", out.skipped.len()),
        ));
    }
    Ok(out)
}

/// Parse the bytes of a classification data file: CSV when `csv`, else JSON Lines. `path`
/// names the file in errors.
pub fn parse_classification(bytes: &[u8], csv: bool, path: &Path) -> Result<Loaded> {
    let mut out = Loaded::default();
    if csv {
        let mut reader = csv::Reader::from_reader(bytes);
        let headers = reader
            .headers()
            .map_err(|e| Error::file(path, format!("CSV header: {e}")))?
            .clone();
        let col = |name: &str| headers.iter().position(|h| h == name);
        let (Some(t), Some(l)) = (col("text"), col("label")) else {
            return Err(Error::file(
                path,
                "the CSV needs `text` and `label` columns",
            ));
        };
        let p = col("pair");
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            match record {
                Err(e) => out.skipped.push((line, format!("bad CSV record ({e})"))),
                Ok(r) => {
                    let text = r.get(t).unwrap_or("").trim().to_string();
                    let label = r.get(l).unwrap_or("").trim().to_string();
                    if text.is_empty() || label.is_empty() {
                        out.skipped.push((line, "empty text or label".into()));
                        continue;
                    }
                    let pair = p.and_then(|p| r.get(p)).map(str::to_string);
                    out.examples.push(Example { text, pair, label });
                }
            }
        }
    } else {
        let text = utf8(bytes, path)?;
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
            let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            let example = match (s("text"), s("question")) {
                (Some(text), _) => v.get("label").and_then(label_of).map(|label| Example {
                    text,
                    pair: s("pair"),
                    label,
                }),
                (None, Some(question)) => v.get("answer").and_then(label_of).map(|label| Example {
                    text: question,
                    pair: s("passage"),
                    label,
                }),
                _ => None,
            };
            match example {
                Some(e) if !e.text.trim().is_empty() && !e.label.trim().is_empty() => {
                    out.examples.push(e)
                }
                _ => out.skipped.push((
                    n,
                    "needs \"text\" and \"label\" (or BoolQ's \"question\", \"passage\", \"answer\")"
                        .into(),
                )),
            }
        }
    }
    if out.examples.is_empty() {
        return Err(Error::file(
            path,
            format!("no usable example ({} lines skipped)", out.skipped.len()),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_jsonl_with_bad_lines_counted() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("d.csv");
        std::fs::write(&csv, "text,label\n\"good, quoted\",1\n,0\nfine,0\n").unwrap();
        let l = read_classification(&csv).unwrap();
        assert_eq!(l.examples.len(), 2);
        assert_eq!(l.examples[0].text, "good, quoted");
        assert_eq!(l.skipped, vec![(3, "empty text or label".to_string())]);
        let jsonl = dir.path().join("d.jsonl");
        std::fs::write(
            &jsonl,
            "{\"text\": \"a\", \"label\": \"pos\"}\nnot json\n\n{\"question\": \"q?\", \"passage\": \"p.\", \"answer\": true}\n{\"text\": \"no label\"}\n",
        )
        .unwrap();
        let l = read_classification(&jsonl).unwrap();
        assert_eq!(l.examples.len(), 2);
        assert_eq!(l.examples[1].pair.as_deref(), Some("p."));
        assert_eq!(l.examples[1].label, "True");
        assert_eq!(l.skipped.iter().map(|s| s.0).collect::<Vec<_>>(), [2, 3, 5]);
        std::fs::write(&jsonl, "garbage\n").unwrap();
        assert!(read_classification(&jsonl).is_err());
    }
}
