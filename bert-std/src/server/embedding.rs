//! The embedding routes, with text-embeddings-inference's shapes and options: `/embed`,
//! OpenAI's `/v1/embeddings`, `/embed_all` (every token's vector), `/embed_sparse` (SPLADE)
//! and `/similarity`. Inputs are texts or token ids; options: `truncate`,
//! `truncation_direction`, `prompt_name` (the model's `config_sentence_transformers.json`
//! prompts), `normalize`, `dimensions` (Matryoshka: the first `dimensions` values, then
//! normalized again when normalizing).

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::pipelines::embeddings::{cosine, l2_normalize, EmbedOptions};
use crate::server::batcher::{Done, EmbedItem, Work};
use crate::server::AppState;
use crate::tokenizer::Side;

use super::api::{answer, timed, ApiError, ApiResult, Usage};

/// One input or several (each a text or a list of token ids).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Inputs {
    /// One input.
    One(EmbedItem),
    /// Several.
    Many(Vec<EmbedItem>),
}

impl Inputs {
    fn into_vec(self) -> Vec<EmbedItem> {
        match self {
            // `[]` reads as one empty list of ids; it is an empty batch.
            Inputs::One(EmbedItem::Ids(ids)) if ids.is_empty() => Vec::new(),
            Inputs::One(i) => vec![i],
            Inputs::Many(v) => v,
        }
    }
}

/// The options every embedding route shares.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct Encoding {
    #[serde(default)]
    truncate: Option<bool>,
    #[serde(default)]
    truncation_direction: Side,
    #[serde(default)]
    prompt_name: Option<String>,
}

impl Encoding {
    fn options(&self) -> EmbedOptions {
        EmbedOptions {
            prompt_name: self.prompt_name.clone(),
            truncation: self.truncation_direction,
        }
    }
}

/// Embed `inputs` (pooled vectors, or with `tokens` every token's) through the queue.
async fn embed_items(
    state: &AppState,
    inputs: Vec<EmbedItem>,
    encoding: &Encoding,
    truncate_by_default: bool,
    tokens: bool,
) -> ApiResult<(Done, Usage)> {
    state.require("embed")?;
    let options = encoding.options();
    let prompt = state
        .model
        .bert()
        .dir
        .prompts
        .resolve(options.prompt_name.as_deref())
        .map_err(|e| ApiError::validation(e.to_string()))?
        .map(str::to_string);
    let truncate = encoding.truncate.unwrap_or(truncate_by_default);
    let usage = state.admit_items(&inputs, prompt.as_deref(), truncate)?;
    let work = Work::Embed {
        inputs,
        options,
        tokens,
    };
    state.infer(work, usage).await
}

/// Matryoshka: keep the first `dimensions` values (`None`: all); a width over the model's is an
/// error.
fn cut(vectors: &mut [Vec<f32>], dimensions: Option<usize>) -> ApiResult<()> {
    let Some(d) = dimensions else { return Ok(()) };
    let width = vectors.first().map_or(0, Vec::len);
    if d == 0 || d > width {
        return Err(ApiError::validation(format!(
            "dimensions must be in 1..={width} (the model's width)"
        )));
    }
    vectors.iter_mut().for_each(|v| v.truncate(d));
    Ok(())
}

/// text-embeddings-inference's `POST /embed`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EmbedRequest {
    inputs: Inputs,
    #[serde(flatten)]
    encoding: Encoding,
    #[serde(default = "yes")]
    normalize: bool,
    #[serde(default)]
    dimensions: Option<usize>,
}

fn yes() -> bool {
    true
}

pub(crate) async fn embed(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<EmbedRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/embed", async {
        let Json(req) = body?;
        let inputs = req.inputs.into_vec();
        let (done, usage) = embed_items(&state, inputs, &req.encoding, false, false).await?;
        let Done::Embed(mut vectors) = done else {
            return Err(ApiError::validation("internal: wrong result kind"));
        };
        cut(&mut vectors, req.dimensions)?;
        if req.normalize {
            vectors.iter_mut().for_each(|v| l2_normalize(v));
        }
        Ok(answer(usage, vectors))
    })
    .await
}

/// OpenAI's `POST /v1/embeddings`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct OpenAiEmbeddingRequest {
    input: Inputs,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<usize>,
    #[serde(flatten)]
    encoding: Encoding,
}

#[derive(Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub(crate) enum EmbeddingData {
    Float(Vec<f32>),
    Base64(String),
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct OpenAiEmbedding {
    object: &'static str,
    embedding: EmbeddingData,
    index: usize,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct OpenAiUsage {
    prompt_tokens: usize,
    total_tokens: usize,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct OpenAiResponse {
    object: &'static str,
    data: Vec<OpenAiEmbedding>,
    model: String,
    usage: OpenAiUsage,
}

fn base64_f32(v: &[f32]) -> String {
    use base64::Engine;
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub(crate) async fn openai_embeddings(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<OpenAiEmbeddingRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/v1/embeddings", async {
        let Json(req) = body?;
        let base64 = match req.encoding_format.as_deref() {
            None | Some("float") => false,
            Some("base64") => true,
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "encoding_format {other:?}: use \"float\" or \"base64\""
                )))
            }
        };
        // With several models served, `model` picks one (a single model answers any name).
        let names = state.model_names();
        let state = match req.model.as_deref() {
            Some(name) if names.len() > 1 && name != state.model_name => {
                state.peer(name).ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "model_not_found",
                        format!(
                            "model {name:?} is not served here; the models are {}",
                            names.join(", ")
                        ),
                    )
                })?
            }
            _ => state.clone(),
        };
        let inputs = req.input.into_vec();
        // OpenAI's embeddings are unit vectors; long inputs are cut to the model's limit.
        let (done, usage) = embed_items(&state, inputs, &req.encoding, true, false).await?;
        let Done::Embed(mut vectors) = done else {
            return Err(ApiError::validation("internal: wrong result kind"));
        };
        cut(&mut vectors, req.dimensions)?;
        vectors.iter_mut().for_each(|v| l2_normalize(v));
        let data: Vec<OpenAiEmbedding> = vectors
            .into_iter()
            .enumerate()
            .map(|(index, v)| OpenAiEmbedding {
                object: "embedding",
                embedding: if base64 {
                    EmbeddingData::Base64(base64_f32(&v))
                } else {
                    EmbeddingData::Float(v)
                },
                index,
            })
            .collect();
        let body = OpenAiResponse {
            object: "list",
            data,
            model: req.model.unwrap_or_else(|| state.model_name.clone()),
            usage: OpenAiUsage {
                prompt_tokens: usage.tokens,
                total_tokens: usage.tokens,
            },
        };
        Ok(answer(usage, body))
    })
    .await
}

/// text-embeddings-inference's `POST /embed_all`: every token's vector, special tokens
/// included, not normalized.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EmbedAllRequest {
    inputs: Inputs,
    #[serde(flatten)]
    encoding: Encoding,
}

pub(crate) async fn embed_all(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<EmbedAllRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/embed_all", async {
        let Json(req) = body?;
        let inputs = req.inputs.into_vec();
        let (done, usage) = embed_items(&state, inputs, &req.encoding, false, true).await?;
        let Done::EmbedAll(tokens) = done else {
            return Err(ApiError::validation("internal: wrong result kind"));
        };
        Ok(answer(usage, tokens))
    })
    .await
}

/// text-embeddings-inference's `POST /embed_sparse` (a SPLADE model, `--task sparse-embed`):
/// the non-zero terms of each text, by vocabulary index.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EmbedSparseRequest {
    inputs: super::api::OneOrMany,
    #[serde(flatten)]
    encoding: Encoding,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct SparseValue {
    index: u32,
    value: f32,
}

pub(crate) async fn embed_sparse(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<EmbedSparseRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/embed_sparse", async {
        let Json(req) = body?;
        state.require("sparse-embed")?;
        let (texts, _) = req.inputs.into_vec();
        let options = req.encoding.options();
        let prompt = state
            .model
            .bert()
            .dir
            .prompts
            .resolve(options.prompt_name.as_deref())
            .map_err(|e| ApiError::validation(e.to_string()))?;
        let items: Vec<EmbedItem> = texts.iter().cloned().map(EmbedItem::Text).collect();
        let truncate = req.encoding.truncate.unwrap_or(false);
        let usage = state.admit_items(&items, prompt, truncate)?;
        let (done, usage) = state.infer(Work::Sparse { texts, options }, usage).await?;
        let Done::Sparse(vectors) = done else {
            return Err(ApiError::validation("internal: wrong result kind"));
        };
        let out: Vec<Vec<SparseValue>> = vectors
            .into_iter()
            .map(|v| {
                let mut terms: Vec<SparseValue> = v
                    .indices
                    .into_iter()
                    .zip(v.values)
                    .map(|(index, value)| SparseValue { index, value })
                    .collect();
                terms.sort_by_key(|t| t.index);
                terms
            })
            .collect();
        Ok(answer(usage, out))
    })
    .await
}

/// text-embeddings-inference's `POST /similarity`: the cosine of a source sentence with each
/// of several sentences.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SimilarityRequest {
    inputs: SimilarityInput,
    #[serde(default)]
    parameters: Option<Encoding>,
}

/// What `/similarity` compares.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SimilarityInput {
    source_sentence: String,
    sentences: Vec<String>,
}

pub(crate) async fn similarity(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<SimilarityRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/similarity", async {
        let Json(req) = body?;
        if req.inputs.sentences.is_empty() {
            return Err(ApiError::validation("no sentences to compare with"));
        }
        let encoding = req.parameters.unwrap_or_default();
        let inputs: Vec<EmbedItem> = std::iter::once(req.inputs.source_sentence)
            .chain(req.inputs.sentences)
            .map(EmbedItem::Text)
            .collect();
        let (done, usage) = embed_items(&state, inputs, &encoding, false, false).await?;
        let Done::Embed(vectors) = done else {
            return Err(ApiError::validation("internal: wrong result kind"));
        };
        let scores: Vec<f32> = vectors[1..]
            .iter()
            .map(|v| cosine(&vectors[0], v))
            .collect();
        Ok(answer(usage, scores))
    })
    .await
}
