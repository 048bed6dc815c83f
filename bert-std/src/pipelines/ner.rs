//! Token classification (NER), as HF's `TokenClassificationPipeline`: per-token labels, or
//! entities grouped with the `simple`, `first`, `average` or `max` aggregation strategy, with
//! character offsets into the original text. Labels in `ignore_labels` ("O") are dropped.
//! Text longer than the model's position limit is truncated.

use std::path::Path;
use std::str::FromStr;

use serde::Serialize;
use tokenizers::Encoding;

use bert_core::BertForTokenClassification;

use crate::check::finite;
use crate::error::{Error, Result};
use crate::loaded::Task;
use crate::pipelines::{softmax, Pipeline};
use crate::runtime::{Bert, LoadOptions};

/// How tokens become entities (HF's `aggregation_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Aggregation {
    /// One result per token.
    None,
    /// Adjacent tokens with the same entity type (B-/I- scheme) are merged.
    Simple,
    /// Words take the label of their first token, then merged.
    First,
    /// Words take the label of their token scores' average, then merged.
    Average,
    /// Words take the label of their most confident token, then merged.
    Max,
}

impl FromStr for Aggregation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "none" => Aggregation::None,
            "simple" => Aggregation::Simple,
            "first" => Aggregation::First,
            "average" => Aggregation::Average,
            "max" => Aggregation::Max,
            _ => {
                return Err(Error::Input(format!(
                    "unknown aggregation {s:?}; use none, simple, first, average or max"
                )))
            }
        })
    }
}

/// One token or entity. In JSON the label is `entity` for a token (no aggregation, which has an
/// `index`) and `entity_group` for a grouped entity, as in HF's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// The label.
    pub label: String,
    /// Its score.
    pub score: f32,
    /// Token index (only without aggregation).
    pub index: Option<usize>,
    /// The decoded tokens.
    pub word: String,
    /// First character in the text.
    pub start: usize,
    /// One past the last character.
    pub end: usize,
}

impl Serialize for Entity {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Entity", 6)?;
        match self.index {
            Some(index) => {
                st.serialize_field("entity", &self.label)?;
                st.serialize_field("score", &self.score)?;
                st.serialize_field("index", &index)?;
            }
            None => {
                st.serialize_field("entity_group", &self.label)?;
                st.serialize_field("score", &self.score)?;
            }
        }
        st.serialize_field("word", &self.word)?;
        st.serialize_field("start", &self.start)?;
        st.serialize_field("end", &self.end)?;
        st.end()
    }
}

/// Its schema for `bert serve`'s `/openapi.json`: a token (`entity`, `index`) or a grouped
/// entity (`entity_group`), as [`Serialize`] writes it.
#[cfg(feature = "server")]
impl schemars::JsonSchema for Entity {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Entity".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let common = serde_json::json!({
            "score": {"type": "number", "format": "float"},
            "word": {"type": "string"},
            "start": {"type": "integer", "minimum": 0},
            "end": {"type": "integer", "minimum": 0},
        });
        let with = |extra: serde_json::Value, required: &[&str]| {
            let mut props = common.clone();
            if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
                p.extend(e.clone());
            }
            serde_json::json!({"type": "object", "properties": props, "required": required})
        };
        schemars::json_schema!({
            "description": "A token (no aggregation) or a grouped entity.",
            "oneOf": [
                with(serde_json::json!({"entity": {"type": "string"}, "index": {"type": "integer", "minimum": 0}}),
                     &["entity", "score", "index", "word", "start", "end"]),
                with(serde_json::json!({"entity_group": {"type": "string"}}),
                     &["entity_group", "score", "word", "start", "end"]),
            ]
        })
    }
}

/// The token-classification pipeline.
#[derive(Debug)]
pub struct TokenClassification {
    /// The model (`BertForTokenClassification`).
    pub bert: Bert,
    /// Labels dropped from the output (default `["O"]`).
    pub ignore_labels: Vec<String>,
}

/// NER settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NerOptions {
    /// How tokens become entities (default [`Aggregation::Simple`], as the CLI; HF's default
    /// is `none`).
    pub aggregation: Aggregation,
}

impl Default for NerOptions {
    fn default() -> Self {
        NerOptions {
            aggregation: Aggregation::Simple,
        }
    }
}

impl Pipeline for TokenClassification {
    type Input<'a> = &'a str;
    type Output = Vec<Entity>;
    type Options = NerOptions;

    fn run(&self, texts: &[&str], options: &NerOptions) -> Result<Vec<Vec<Entity>>> {
        let encodings = self
            .bert
            .encode_all(texts, |t| self.bert.encode(t, None, usize::MAX))?;
        let scores: Vec<Vec<Vec<f32>>> = self.bert.forward_batches(
            &encodings,
            |_| 0,
            |model: &BertForTokenClassification<'_>, padded, ws, idx| {
                let logits = model.forward(&padded.core_batch(), ws)?;
                idx.iter()
                    .enumerate()
                    .map(|(b, &i)| {
                        (0..encodings[i].len())
                            .map(|t| {
                                let row = logits.row(b * padded.seq + t);
                                finite(row, "logits")?;
                                Ok(softmax(row))
                            })
                            .collect()
                    })
                    .collect()
            },
        )?;
        texts
            .iter()
            .zip(&encodings)
            .zip(scores)
            .map(|((text, enc), scores)| self.postprocess(text, enc, scores, options.aggregation))
            .collect()
    }
}

struct PreEntity {
    word: String,
    scores: Vec<f32>,
    start: usize,
    end: usize,
    index: usize,
    is_subword: bool,
}

struct TokenEntity {
    label: String,
    score: f32,
    index: usize,
    word: String,
    start: usize,
    end: usize,
}

fn split_tag(label: &str) -> (bool, &str) {
    if let Some(t) = label.strip_prefix("B-") {
        (true, t)
    } else if let Some(t) = label.strip_prefix("I-") {
        (false, t)
    } else {
        (false, label)
    }
}

fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, x) in v.iter().enumerate() {
        if *x > v[best] {
            best = i;
        }
    }
    best
}

impl TokenClassification {
    /// Load a token-classification model directory.
    pub fn load(path: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        Ok(TokenClassification {
            bert: Bert::load(path, Task::TokenClassification, options)?,
            ignore_labels: vec!["O".into()],
        })
    }

    fn label(&self, id: usize) -> String {
        self.bert.dir.config.id2label[id].clone()
    }

    fn postprocess(
        &self,
        text: &str,
        enc: &Encoding,
        scores: Vec<Vec<f32>>,
        aggregation: Aggregation,
    ) -> Result<Vec<Entity>> {
        let pre = self.gather_pre_entities(text, enc, scores);
        let tokens: Vec<TokenEntity> = match aggregation {
            Aggregation::None | Aggregation::Simple => pre
                .into_iter()
                .map(|p| {
                    let id = argmax(&p.scores);
                    TokenEntity {
                        label: self.label(id),
                        score: p.scores[id],
                        index: p.index,
                        word: p.word,
                        start: p.start,
                        end: p.end,
                    }
                })
                .collect(),
            _ => self.aggregate_words(pre, aggregation)?,
        };
        let entities = if aggregation == Aggregation::None {
            tokens
                .into_iter()
                .map(|t| Entity {
                    label: t.label,
                    score: t.score,
                    index: Some(t.index),
                    word: t.word,
                    start: t.start,
                    end: t.end,
                })
                .collect()
        } else {
            self.group_entities(tokens)?
        };
        Ok(entities
            .into_iter()
            .filter(|e| !self.ignore_labels.contains(&e.label))
            .collect())
    }

    fn gather_pre_entities(
        &self,
        text: &str,
        enc: &Encoding,
        scores: Vec<Vec<f32>>,
    ) -> Vec<PreEntity> {
        let chars: Vec<char> = text.chars().collect();
        let special = enc.get_special_tokens_mask();
        let unk = self.bert.tokenizer.special.unk;
        let mut out = Vec::new();
        for (idx, token_scores) in scores.into_iter().enumerate() {
            if special[idx] == 1 {
                continue;
            }
            let id = enc.get_ids()[idx];
            let (start, end) = enc.get_offsets()[idx];
            let word_ref: String = chars[start.min(chars.len())..end.min(chars.len())]
                .iter()
                .collect();
            let mut word = self.bert.tokenizer.id_to_token(id).unwrap_or_default();
            let mut is_subword = word.chars().count() != word_ref.chars().count();
            if Some(id) == unk {
                word = word_ref;
                is_subword = false;
            }
            out.push(PreEntity {
                word,
                scores: token_scores,
                start,
                end,
                index: idx,
                is_subword,
            });
        }
        out
    }

    fn aggregate_word(&self, group: &[PreEntity], aggregation: Aggregation) -> Result<TokenEntity> {
        let word = self
            .bert
            .tokenizer
            .tokens_to_string(group.iter().map(|p| p.word.clone()).collect())?;
        let (id, score) = match aggregation {
            Aggregation::First => {
                let s = &group[0].scores;
                let id = argmax(s);
                (id, s[id])
            }
            Aggregation::Max => {
                // The first token whose best score is the largest.
                let mut best = &group[0];
                for p in group {
                    let m =
                        |q: &PreEntity| q.scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    if m(p) > m(best) {
                        best = p;
                    }
                }
                let id = argmax(&best.scores);
                (id, best.scores[id])
            }
            _ => {
                let n = group[0].scores.len();
                let avg: Vec<f32> = (0..n)
                    .map(|j| group.iter().map(|p| p.scores[j]).sum::<f32>() / group.len() as f32)
                    .collect();
                let id = argmax(&avg);
                (id, avg[id])
            }
        };
        Ok(TokenEntity {
            label: self.label(id),
            score,
            index: group[0].index,
            word,
            start: group[0].start,
            end: group[group.len() - 1].end,
        })
    }

    fn aggregate_words(
        &self,
        pre: Vec<PreEntity>,
        aggregation: Aggregation,
    ) -> Result<Vec<TokenEntity>> {
        let mut words = Vec::new();
        let mut group: Vec<PreEntity> = Vec::new();
        for p in pre {
            if !group.is_empty() && !p.is_subword {
                words.push(self.aggregate_word(&group, aggregation)?);
                group.clear();
            }
            group.push(p);
        }
        if !group.is_empty() {
            words.push(self.aggregate_word(&group, aggregation)?);
        }
        Ok(words)
    }

    fn group_sub_entities(&self, group: &[TokenEntity]) -> Result<Entity> {
        let label = group[0]
            .label
            .split_once('-')
            .map_or(group[0].label.as_str(), |(_, t)| t);
        let score = group.iter().map(|e| e.score).sum::<f32>() / group.len() as f32;
        Ok(Entity {
            label: label.to_string(),
            score,
            index: None,
            word: self
                .bert
                .tokenizer
                .tokens_to_string(group.iter().map(|e| e.word.clone()).collect())?,
            start: group[0].start,
            end: group[group.len() - 1].end,
        })
    }

    fn group_entities(&self, tokens: Vec<TokenEntity>) -> Result<Vec<Entity>> {
        let mut groups = Vec::new();
        let mut current: Vec<TokenEntity> = Vec::new();
        for t in tokens {
            if let Some(last) = current.last() {
                let (is_b, tag) = split_tag(&t.label);
                let (_, last_tag) = split_tag(&last.label);
                if tag != last_tag || is_b {
                    groups.push(self.group_sub_entities(&current)?);
                    current.clear();
                }
            }
            current.push(t);
        }
        if !current.is_empty() {
            groups.push(self.group_sub_entities(&current)?);
        }
        Ok(groups)
    }
}
