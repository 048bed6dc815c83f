//! The HTTP routes but the embedding and tokenizer ones ([`super::embedding`],
//! [`super::tokens`]): text-embeddings-inference's `/predict` and `/rerank` (with
//! `raw_scores`, `return_text`, `truncation_direction`), the CLI-shaped `/fill-mask`, `/ner` and
//! `/qa`, and `/health`, `/info` (TEI's fields), `/metrics`. Every error is JSON:
//! `{"error": "...", "error_type": "..."}` (see [`super::api`]).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::pipelines::classification::{ClassifyOptions, LabelScore};
use crate::pipelines::ner::Aggregation;
use crate::pipelines::qa::QaOptions;
use crate::server::batcher::{Done, Work};
use crate::server::AppState;
use crate::tokenizer::Side;

use super::api::{answer, timed, ApiError, ApiResult, OneOrMany, Usage};

fn pairs(texts: &[String]) -> Vec<(&str, Option<&str>)> {
    texts.iter().map(|t| (t.as_str(), None)).collect()
}

/// One result, or one per input, as the request had it (f32 values stay f32 in the JSON).
#[derive(Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub(crate) enum OneOrAll<T> {
    One(T),
    All(Vec<T>),
}

impl<T> OneOrAll<T> {
    fn new(mut v: Vec<T>, single: bool) -> Self {
        if single && v.len() == 1 {
            OneOrAll::One(v.remove(0))
        } else {
            OneOrAll::All(v)
        }
    }
}

/// One `/predict` input: a text, or a pair of texts.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Sequence {
    /// One text.
    Text(String),
    /// One text, as a one-element array (TEI's batch form).
    One([String; 1]),
    /// A pair.
    Pair([String; 2]),
}

/// text-embeddings-inference's `POST /predict` input: one sequence (a text, or a
/// two-element array read as a pair), or a list of sequences.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PredictInput {
    /// One text.
    One(String),
    /// One text as a one-element array.
    OneInArray([String; 1]),
    /// One pair (a two-element array of strings).
    Pair([String; 2]),
    /// Several.
    Many(Vec<Sequence>),
}

/// `POST /predict`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct PredictRequest {
    inputs: PredictInput,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Side,
    #[serde(default)]
    raw_scores: bool,
}

async fn classify(
    state: &AppState,
    inputs: Vec<(String, Option<String>)>,
    options: ClassifyOptions,
    truncate: bool,
) -> ApiResult<(Vec<Vec<LabelScore>>, Usage)> {
    state.require("classify")?;
    let refs: Vec<(&str, Option<&str>)> = inputs
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_deref()))
        .collect();
    let usage = state.admit(&refs, truncate)?;
    match state
        .infer(Work::Classify { inputs, options }, usage)
        .await?
    {
        (Done::Classify(v), usage) => Ok((v, usage)),
        _ => Err(ApiError::validation("internal: wrong result kind")),
    }
}

pub(crate) async fn predict(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<PredictRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/predict", async {
        let Json(req) = body?;
        let (inputs, single) = match req.inputs {
            PredictInput::One(t) | PredictInput::OneInArray([t]) => (vec![(t, None)], true),
            PredictInput::Pair([a, b]) => (vec![(a, Some(b))], true),
            PredictInput::Many(v) => (
                v.into_iter()
                    .map(|s| match s {
                        Sequence::Text(t) | Sequence::One([t]) => (t, None),
                        Sequence::Pair([a, b]) => (a, Some(b)),
                    })
                    .collect(),
                false,
            ),
        };
        let options = ClassifyOptions {
            top_k: req.top_k,
            raw_scores: req.raw_scores,
            truncation: req.truncation_direction,
        };
        let truncate = req.truncate.unwrap_or(false);
        let (out, usage) = classify(&state, inputs, options, truncate).await?;
        Ok(answer(usage, OneOrAll::new(out, single)))
    })
    .await
}

/// text-embeddings-inference's `POST /rerank`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct RerankRequest {
    query: String,
    texts: Vec<String>,
    #[serde(default)]
    return_text: bool,
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Side,
    #[serde(default)]
    raw_scores: bool,
}

pub(crate) async fn rerank(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<RerankRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/rerank", async {
        let Json(req) = body?;
        let inputs: Vec<(String, Option<String>)> = req
            .texts
            .iter()
            .map(|t| (req.query.clone(), Some(t.clone())))
            .collect();
        // The relevance label: the only one of a single-logit cross-encoder, else the last.
        let relevant = state
            .model
            .bert()
            .dir
            .config
            .id2label
            .last()
            .cloned()
            .unwrap_or_default();
        let options = ClassifyOptions {
            top_k: None,
            raw_scores: req.raw_scores,
            truncation: req.truncation_direction,
        };
        let truncate = req.truncate.unwrap_or(false);
        let (labels, usage) = classify(&state, inputs, options, truncate).await?;
        let mut ranked: Vec<Ranked> = labels
            .iter()
            .enumerate()
            .map(|(index, ls)| Ranked {
                index,
                score: ls
                    .iter()
                    .find(|l| l.label == relevant)
                    .map_or(0.0, |l| l.score),
                text: req.return_text.then(|| req.texts[index].clone()),
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        Ok(answer(usage, ranked))
    })
    .await
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Ranked {
    index: usize,
    score: f32,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<String>,
}

/// `POST /fill-mask`: the CLI's JSON, one entry per input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FillMaskRequest {
    inputs: OneOrMany,
    #[serde(default = "five")]
    top_k: usize,
}

fn five() -> usize {
    5
}

pub(crate) async fn fill_mask(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<FillMaskRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/fill-mask", async {
        let Json(req) = body?;
        state.require("fill-mask")?;
        if req.top_k == 0 || req.top_k > 1000 {
            return Err(ApiError::validation("top_k must be in 1..=1000"));
        }
        let (texts, _) = req.inputs.into_vec();
        let usage = state.admit(&pairs(&texts), true)?;
        let work = Work::FillMask {
            texts,
            top_k: req.top_k,
        };
        match state.infer(work, usage).await? {
            (Done::FillMask(v), usage) => Ok(answer(usage, v)),
            _ => Err(ApiError::validation("internal: wrong result kind")),
        }
    })
    .await
}

/// `POST /ner`: the CLI's JSON, one list of entities per input.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct NerRequest {
    inputs: OneOrMany,
    #[serde(default)]
    aggregation: Option<String>,
}

pub(crate) async fn ner(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<NerRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/ner", async {
        let Json(req) = body?;
        state.require("ner")?;
        let aggregation: Aggregation = match req.aggregation.as_deref() {
            None => Aggregation::Simple,
            Some(s) => s
                .parse()
                .map_err(|e: crate::Error| ApiError::validation(e.to_string()))?,
        };
        let (texts, _) = req.inputs.into_vec();
        let usage = state.admit(&pairs(&texts), true)?;
        match state.infer(Work::Ner { texts, aggregation }, usage).await? {
            (Done::Ner(v), usage) => Ok(answer(usage, v)),
            _ => Err(ApiError::validation("internal: wrong result kind")),
        }
    })
    .await
}

/// One question and its passage.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct QaInput {
    question: String,
    context: String,
}

/// `POST /qa`: `{"question", "context"}` or `{"inputs": [{"question", "context"}, ...]}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct QaRequest {
    #[serde(default)]
    question: Option<String>,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    inputs: Option<Vec<QaInput>>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    max_answer_len: Option<usize>,
    #[serde(default)]
    handle_impossible_answer: bool,
}

pub(crate) async fn qa(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<QaRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/qa", async {
        let Json(req) = body?;
        state.require("qa")?;
        let (inputs, single) = match (req.question, req.context, req.inputs) {
            (Some(q), Some(c), None) => (vec![(q, c)], true),
            (None, None, Some(v)) => (
                v.into_iter().map(|i| (i.question, i.context)).collect(),
                false,
            ),
            _ => return Err(ApiError::validation(
                "give \"question\" and \"context\", or \"inputs\": [{\"question\", \"context\"}]",
            )),
        };
        let d = QaOptions::default();
        let options = QaOptions {
            top_k: req.top_k.unwrap_or(d.top_k).clamp(1, 100),
            max_answer_len: req.max_answer_len.unwrap_or(d.max_answer_len).clamp(1, 512),
            handle_impossible_answer: req.handle_impossible_answer,
            ..d
        };
        let refs: Vec<(&str, Option<&str>)> = inputs
            .iter()
            .map(|(q, c)| (q.as_str(), Some(c.as_str())))
            .collect();
        // Long contexts are split into windows, so count them whole.
        let usage = state.admit(&refs, true)?;
        match state.infer(Work::Qa { inputs, options }, usage).await? {
            (Done::Qa(v), usage) => Ok(answer(usage, OneOrAll::new(v, single))),
            _ => Err(ApiError::validation("internal: wrong result kind")),
        }
    })
    .await
}

pub(crate) async fn health(State(state): State<Arc<AppState>>) -> Response {
    if state.worker_alive() {
        (StatusCode::OK, "ok").into_response()
    } else {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unhealthy",
            "the model worker stopped",
        )
        .into_response()
    }
}

pub(crate) async fn info(State(state): State<Arc<AppState>>) -> Response {
    let c = &state.config;
    let bert = state.model.bert();
    let config = &bert.dir.config;
    let pooling = match bert.dir.pooling.mode {
        crate::PoolingMode::Cls => "cls",
        crate::PoolingMode::Mean => "mean",
        crate::PoolingMode::Max => "max",
        crate::PoolingMode::MeanSqrtLen => "mean_sqrt_len",
        crate::PoolingMode::LastToken => "last_token",
    };
    let labels = || {
        let id2label: serde_json::Map<String, serde_json::Value> = config
            .id2label
            .iter()
            .enumerate()
            .map(|(i, l)| (i.to_string(), json!(l)))
            .collect();
        let label2id: serde_json::Map<String, serde_json::Value> = config
            .id2label
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), json!(i)))
            .collect();
        json!({"id2label": id2label, "label2id": label2id})
    };
    // text-embeddings-inference's `model_type`.
    let model_type = match (state.model.task(), c.task) {
        ("embed", _) => json!({"embedding": {"pooling": pooling}}),
        ("sparse-embed", _) => json!({"embedding": {"pooling": "splade"}}),
        (_, super::Task::Rerank) => json!({"reranker": labels()}),
        ("classify", _) => json!({"classifier": labels()}),
        (task, _) => json!({ task: labels() }),
    };
    Json(Info {
        model_id: state.model_name.clone(),
        model_sha: None,
        model_dtype: state.dtype.clone(),
        model_type,
        max_concurrent_requests: c.max_concurrent_requests,
        max_input_length: state.model.max_input_length(),
        max_batch_tokens: c.max_batch_tokens,
        max_batch_requests: None,
        max_client_batch_size: c.max_client_batch_size,
        auto_truncate: false,
        tokenization_workers: bert.threads(),
        version: env!("CARGO_PKG_VERSION"),
        sha: None,
        docker_label: None,
        models: state.model_names(),
        architectures: config.architectures.clone(),
        task: state.model.task(),
        dtype: state.dtype.clone(),
        max_input_chars: c.max_input_chars,
        max_body_bytes: c.max_body_bytes,
        timeout_seconds: c.timeout.as_secs_f64(),
        threads: bert.threads(),
        auth: c.api_key.is_some(),
    })
    .into_response()
}

/// `GET /info`: text-embeddings-inference's fields, then this server's own.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Info {
    model_id: String,
    model_sha: Option<String>,
    model_dtype: String,
    /// `{"embedding": {"pooling": ...}}`, `{"classifier": {"id2label", "label2id"}}`,
    /// `{"reranker": ...}`, or the task's name with its labels.
    model_type: serde_json::Value,
    max_concurrent_requests: usize,
    max_input_length: usize,
    max_batch_tokens: usize,
    max_batch_requests: Option<usize>,
    max_client_batch_size: usize,
    auto_truncate: bool,
    tokenization_workers: usize,
    version: &'static str,
    sha: Option<String>,
    docker_label: Option<String>,
    /// The names of the models this server serves (`/NAME/...` when there are several).
    models: Vec<String>,
    architectures: Vec<String>,
    task: &'static str,
    dtype: String,
    max_input_chars: usize,
    max_body_bytes: usize,
    timeout_seconds: f64,
    threads: usize,
    auth: bool,
}

pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut text = state.metrics.render();
    let built = state.model.bert().workspaces_built();
    text += "# HELP bert_workspaces_built_total Model workspaces built (grown) since start.\n";
    text += "# TYPE bert_workspaces_built_total counter\n";
    text += &format!("bert_workspaces_built_total {built}\n");
    ([("content-type", "text/plain; version=0.0.4")], text).into_response()
}
