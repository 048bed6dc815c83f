//! Question-answering data as SQuAD and HF `datasets` write it: SQuAD v1.1/v2.0 JSON (nested
//! `data` → `paragraphs` → `qas`) and the `answers: {"text": [...], "answer_start": [...]}` of
//! a `datasets` JSON Lines export. The span is where `answer_start` (a character index, as in
//! Python) says, checked against the answer's text, not the first verbatim match; SQuAD v2's
//! unanswerable questions (`is_impossible`, or no answer at all) become examples whose span is
//! empty ([`QaExample::is_impossible`]), trained on `[CLS]` and scored as HF scores them with
//! `handle_impossible_answer` (the reference answer is "").

use std::path::Path;

use serde_json::Value;

use super::qa_example::{QaExample, QaLoaded};
use crate::error::{Error, Result};

/// Whether `v` is a SQuAD file (an object with a `data` list).
pub fn is_squad(v: &Value) -> bool {
    v.get("data").is_some_and(Value::is_array)
}

/// The span of `answer` at character `start` of `passage`, if the text there is the answer.
pub fn span_at(passage: &str, answer: &str, start: usize) -> Option<(usize, usize)> {
    let n = answer.chars().count();
    let there = passage.chars().skip(start).take(n);
    (n > 0 && there.eq(answer.chars())).then_some((start, start + n))
}

/// A question's answers as SQuAD or `datasets` give them: (texts, first answer's start).
/// `None`: the question has no answer (SQuAD v2).
fn squad_answers(v: &Value) -> std::result::Result<Option<(Vec<String>, usize)>, String> {
    let (texts, starts): (Vec<&Value>, Vec<&Value>) = match v {
        // SQuAD: a list of {"text", "answer_start"}.
        Value::Array(list) => list
            .iter()
            .map(|a| (&a["text"], &a["answer_start"]))
            .unzip(),
        // `datasets`: {"text": [...], "answer_start": [...]}.
        Value::Object(o) => {
            let texts = o.get("text").and_then(Value::as_array);
            let starts = o.get("answer_start").and_then(Value::as_array);
            match (texts, starts) {
                (Some(t), Some(s)) if t.len() == s.len() => {
                    (t.iter().collect(), s.iter().collect())
                }
                _ => {
                    return Err(
                        "\"answers\" needs \"text\" and \"answer_start\" lists of one length"
                            .into(),
                    )
                }
            }
        }
        _ => return Err("\"answers\" must be a list or {\"text\", \"answer_start\"}".into()),
    };
    if texts.is_empty() {
        return Ok(None);
    }
    let texts: Option<Vec<String>> = texts
        .iter()
        .map(|t| t.as_str().map(str::to_string))
        .collect();
    let texts = texts.ok_or("every answer \"text\" must be a string")?;
    let start = starts[0]
        .as_u64()
        .ok_or("\"answer_start\" must be a whole number")?;
    Ok(Some((texts, start as usize)))
}

/// One question of either format; `Err` is why it was skipped.
fn example(
    question: &str,
    passage: &str,
    answers: Option<&Value>,
    impossible: bool,
) -> std::result::Result<QaExample, String> {
    if question.trim().is_empty() || passage.trim().is_empty() {
        return Err("an empty question or context".into());
    }
    let answers = match answers {
        Some(a) => squad_answers(a)?,
        None => None,
    };
    let (answers, start, end) = match (answers, impossible) {
        (Some((texts, start)), false) => {
            let (s, e) = span_at(passage, &texts[0], start).ok_or_else(|| {
                format!(
                    "answer_start {start} does not point at the answer {:?}",
                    texts[0]
                )
            })?;
            (texts, s, e)
        }
        // Unanswerable: the reference answer is "" (HF's squad_v2 metric).
        _ => (vec![String::new()], 0, 0),
    };
    Ok(QaExample {
        question: question.to_string(),
        passage: passage.to_string(),
        answers,
        start,
        end,
    })
}

/// Read a SQuAD v1.1/v2.0 file. A question is numbered by its order in the file (1-based,
/// reported where `skipped` has a line) and named by its `id`.
pub fn parse_squad(v: &Value, path: &Path) -> Result<QaLoaded> {
    let mut out = QaLoaded::default();
    let mut n = 0usize;
    let list = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for article in list(v, "data") {
        for paragraph in list(&article, "paragraphs") {
            let context = paragraph.get("context").and_then(Value::as_str);
            for qa in list(&paragraph, "qas") {
                n += 1;
                let id = qa.get("id").and_then(Value::as_str).unwrap_or("?");
                let question = qa.get("question").and_then(Value::as_str);
                let impossible = qa
                    .get("is_impossible")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let made = match (question, context) {
                    (Some(q), Some(c)) => example(q, c, qa.get("answers"), impossible),
                    _ => Err("needs \"question\" and its paragraph's \"context\"".into()),
                };
                match made {
                    Ok(e) => {
                        out.questions += 1;
                        out.examples.push(e);
                    }
                    Err(why) => out
                        .skipped
                        .push((n, format!("question {n} (id {id}): {why}"))),
                }
            }
        }
    }
    if out.examples.is_empty() {
        return Err(Error::file(
            path,
            format!(
                "a SQuAD file with no usable question ({} skipped)",
                out.skipped.len()
            ),
        ));
    }
    Ok(out)
}

/// One line of a `datasets` JSON Lines export (`"answers": {"text", "answer_start"}`), or
/// `None` when the line is not one (it is read as the project's own QA lines then).
pub fn datasets_line(v: &Value) -> Option<std::result::Result<QaExample, String>> {
    let answers = v.get("answers")?;
    answers.get("answer_start")?;
    let s = |k: &str| v.get(k).and_then(Value::as_str);
    Some(
        match (s("question"), s("context").or_else(|| s("passage"))) {
            (Some(q), Some(c)) => example(q, c, Some(answers), false),
            _ => Err("needs \"question\", \"context\" and \"answers\"".into()),
        },
    )
}
