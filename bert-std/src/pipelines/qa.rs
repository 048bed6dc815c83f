//! Extractive question answering, as HF's `QuestionAnsweringPipeline` (transformers 4.x; 5.x
//! dropped it): the context is split into windows of `max_seq_len` tokens overlapping by
//! `doc_stride`, every window is scored, spans with start ≤ end ≤ start + max_answer_len - 1
//! over context tokens are ranked by p(start)·p(end), snapped to word boundaries, and the answer
//! text is cut from the original context by character offsets.

use std::path::Path;

use serde::Serialize;
use tokenizers::Encoding;

use bert_core::BertForQuestionAnswering;

use crate::check::finite;
use crate::error::{Error, Result};
use crate::loaded::Task;
use crate::pipelines::Pipeline;
use crate::runtime::{Bert, LoadOptions};

/// Settings, with HF's defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QaOptions {
    /// Answers to return.
    pub top_k: usize,
    /// Longest answer, in tokens.
    pub max_answer_len: usize,
    /// Window length in tokens (question + context + special tokens). `None`: 384, or the
    /// model's position limit if that is smaller (as HF's `min(model_max_length, 384)`).
    pub max_seq_len: Option<usize>,
    /// Overlap between windows, in tokens. `None`: 128, or half the window if that is smaller
    /// (as HF).
    pub doc_stride: Option<usize>,
    /// Also offer the empty answer ("no answer in the context"), scored by the `[CLS]` span.
    pub handle_impossible_answer: bool,
}

impl Default for QaOptions {
    fn default() -> Self {
        QaOptions {
            top_k: 1,
            max_answer_len: 15,
            max_seq_len: None,
            doc_stride: None,
            handle_impossible_answer: false,
        }
    }
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "server", derive(schemars::JsonSchema))]
pub struct Answer {
    /// p(start) · p(end), summed over windows that give the same text.
    pub score: f32,
    /// First character of the answer in the context.
    pub start: usize,
    /// One past its last character.
    pub end: usize,
    /// The answer text, cut from the context.
    pub answer: String,
}

/// The question-answering pipeline.
#[derive(Debug)]
pub struct QuestionAnswering {
    /// The model (`BertForQuestionAnswering`).
    pub bert: Bert,
}

/// One candidate span of one window: token indices and score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// First token.
    pub start: usize,
    /// Last token.
    pub end: usize,
    /// p(start) · p(end).
    pub score: f32,
}

/// HF's `select_starts_ends` + `decode_spans` for one window: `allowed[i]` marks tokens that may
/// be part of an answer (context tokens and `[CLS]`). Returns the best `k` spans and the null
/// score `p(start=0) · p(end=0)`.
pub fn best_spans(
    start: &[f32],
    end: &[f32],
    allowed: &[bool],
    k: usize,
    max_answer_len: usize,
) -> (Vec<Span>, f32) {
    let n = start.len().min(end.len()).min(allowed.len());
    let probs = |logits: &[f32]| {
        let masked: Vec<f32> = (0..n)
            .map(|i| if allowed[i] { logits[i] } else { -10000.0 })
            .collect();
        super::softmax(&masked)
    };
    let (mut ps, mut pe) = (probs(start), probs(end));
    if n == 0 {
        return (Vec::new(), 0.0);
    }
    let null = ps[0] * pe[0];
    ps[0] = 0.0;
    pe[0] = 0.0;
    // Every span in the band s <= e <= s + max_answer_len - 1, ranked like np.argsort(-scores)
    // over the flattened matrix (ties by flat index).
    let mut spans: Vec<Span> = Vec::new();
    for (s, p_start) in ps.iter().enumerate() {
        let band = s..n.min(s + max_answer_len.max(1));
        for (e, p_end) in pe[band.clone()].iter().zip(band).map(|(p, e)| (e, p)) {
            spans.push(Span {
                start: s,
                end: e,
                score: p_start * p_end,
            });
        }
    }
    let cmp = |a: &Span, b: &Span| {
        b.score
            .total_cmp(&a.score)
            .then((a.start, a.end).cmp(&(b.start, b.end)))
    };
    if k < spans.len() {
        spans.select_nth_unstable_by(k, cmp);
        spans.truncate(k);
    }
    spans.sort_by(cmp);
    spans.retain(|sp| allowed[sp.start] && allowed[sp.end]);
    (spans, null)
}

fn char_to_byte(text: &str, c: usize) -> usize {
    text.char_indices().nth(c).map_or(text.len(), |(b, _)| b)
}

impl QuestionAnswering {
    /// Load a question-answering model directory.
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        Ok(QuestionAnswering {
            bert: Bert::load(path, Task::QuestionAnswering, options)?,
        })
    }

    /// The (window, stride) in tokens for these options on this model: defaults clamped to the
    /// model, explicit values checked.
    pub fn window(&self, o: &QaOptions) -> Result<(usize, usize)> {
        let limit = self.bert.max_len();
        let max_seq_len = match o.max_seq_len {
            None => limit.min(384),
            Some(n) if n > limit => {
                return Err(Error::Limit {
                    what: "max_seq_len",
                    value: n,
                    max: limit,
                    hint: " (the model's max_position_embeddings)".into(),
                })
            }
            Some(n) => n,
        };
        let doc_stride = o.doc_stride.unwrap_or((max_seq_len / 2).min(128));
        if doc_stride >= max_seq_len {
            return Err(Error::Input(format!(
                "doc_stride ({doc_stride}) must be smaller than max_seq_len ({max_seq_len})"
            )));
        }
        Ok((max_seq_len, doc_stride))
    }

    fn windows(&self, question: &str, context: &str, o: &QaOptions) -> Result<Vec<Encoding>> {
        if question.trim().is_empty() || context.trim().is_empty() {
            return Err(Error::Input(
                "question and context must not be empty".into(),
            ));
        }
        let (max_seq_len, doc_stride) = self.window(o)?;
        self.bert
            .tokenizer
            .encode_windows(question, context, max_seq_len, doc_stride)
            .map_err(|e| {
                Error::Input(format!(
                    "cannot fit the question into {max_seq_len} tokens with its context: {e}"
                ))
            })
    }

    /// Merge the spans of one question's windows into its answers.
    fn answers(
        context: &str,
        windows: &[Encoding],
        per_window: Vec<(Vec<Span>, f32)>,
        options: &QaOptions,
    ) -> Vec<Answer> {
        let mut answers: Vec<Answer> = Vec::new();
        let mut min_null = 1_000_000f32;
        for (enc, (spans, null)) in windows.iter().zip(per_window) {
            min_null = min_null.min(null);
            for sp in spans {
                let (cs, ce) = word_chars(enc, sp.start, sp.end);
                let begin = char_to_byte(context, cs);
                let text = &context[begin..char_to_byte(context, ce).max(begin)];
                if let Some(a) = answers
                    .iter_mut()
                    .find(|a| a.answer.to_lowercase() == text.to_lowercase())
                {
                    a.score += sp.score;
                } else {
                    answers.push(Answer {
                        score: sp.score,
                        start: cs,
                        end: ce,
                        answer: text.to_string(),
                    });
                }
            }
        }
        if options.handle_impossible_answer {
            answers.push(Answer {
                score: min_null,
                start: 0,
                end: 0,
                answer: String::new(),
            });
        }
        answers.sort_by(|a, b| b.score.total_cmp(&a.score));
        answers.truncate(options.top_k);
        answers
    }
}

impl Pipeline for QuestionAnswering {
    /// (question, context).
    type Input<'a> = (&'a str, &'a str);
    /// The best answers, best first.
    type Output = Vec<Answer>;
    type Options = QaOptions;

    /// Every window of every question runs in one set of batches.
    fn run(&self, inputs: &[(&str, &str)], options: &QaOptions) -> Result<Vec<Vec<Answer>>> {
        if options.top_k == 0 || options.max_answer_len == 0 {
            return Err(Error::Input(
                "top_k and max_answer_len must be at least 1".into(),
            ));
        }
        let per_question: Vec<Vec<Encoding>> = inputs
            .iter()
            .enumerate()
            .map(|(i, (q, c))| self.windows(q, c, options).map_err(|e| e.at(i)))
            .collect::<Result<_>>()?;
        let windows: Vec<Encoding> = per_question.iter().flatten().cloned().collect();
        let cls = self.bert.tokenizer.special.cls;
        let pre_topk = options.top_k * 2 + 10;
        let mut per_window = self
            .bert
            .forward_batches(
                &windows,
                |_| 0,
                |model: &BertForQuestionAnswering<'_>, padded, ws, idx| {
                    let out = model.forward(&padded.core_batch(), ws)?;
                    idx.iter()
                        .enumerate()
                        .map(|(b, &w)| {
                            let enc = &windows[w];
                            let allowed: Vec<bool> = enc
                                .get_sequence_ids()
                                .iter()
                                .zip(enc.get_ids())
                                .map(|(s, &id)| *s == Some(1) || id == cls)
                                .collect();
                            finite(out.start_logits.row(b), "start logits")?;
                            finite(out.end_logits.row(b), "end logits")?;
                            Ok(best_spans(
                                out.start_logits.row(b),
                                out.end_logits.row(b),
                                &allowed,
                                pre_topk,
                                options.max_answer_len,
                            ))
                        })
                        .collect()
                },
            )?
            .into_iter();
        Ok(inputs
            .iter()
            .zip(&per_question)
            .map(|((_, context), wins)| {
                let spans: Vec<(Vec<Span>, f32)> = per_window.by_ref().take(wins.len()).collect();
                Self::answers(context, wins, spans, options)
            })
            .collect())
    }
}

/// Character span of tokens `s..=e` snapped to whole words of the context (HF's
/// `align_to_words`), falling back to the tokens' own offsets.
fn word_chars(enc: &Encoding, s: usize, e: usize) -> (usize, usize) {
    let words = enc
        .token_to_word(s)
        .zip(enc.token_to_word(e))
        .and_then(|((_, ws), (_, we))| {
            Some((enc.word_to_chars(ws, 1)?.0, enc.word_to_chars(we, 1)?.1))
        });
    words.unwrap_or((enc.get_offsets()[s].0, enc.get_offsets()[e].1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_respect_order_length_and_mask() {
        let start = [0.0, 5.0, 1.0, 9.0, 0.0];
        let end = [0.0, 1.0, 8.0, 2.0, 7.0];
        let allowed = [true, true, true, true, false];
        let (spans, null) = best_spans(&start, &end, &allowed, 3, 2);
        assert!(null > 0.0);
        for s in &spans {
            assert!(s.start <= s.end && s.end - s.start < 2 && allowed[s.end]);
        }
        // p(start=1) p(end=2) ~ e^5 e^8 beats p(3) p(3) ~ e^9 e^2; (3, 4) ends on a masked token.
        assert_eq!((spans[0].start, spans[0].end), (1, 2));
        let (none, _) = best_spans(&[], &[], &[], 3, 5);
        assert!(none.is_empty());
    }
}
