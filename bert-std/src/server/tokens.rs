//! text-embeddings-inference's tokenizer routes, on any server: `/tokenize` (tokens with their
//! ids, text, whether special, and byte offsets into the input) and `/decode` (ids back to
//! text). They run on the request's thread, not the model's queue.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::server::AppState;

use super::api::{answer, timed, ApiError, OneOrMany, Usage};

/// `POST /tokenize`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct TokenizeRequest {
    inputs: OneOrMany,
    #[serde(default = "yes")]
    add_special_tokens: bool,
    #[serde(default)]
    prompt_name: Option<String>,
}

fn yes() -> bool {
    true
}

/// One token of `/tokenize`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SimpleToken {
    id: u32,
    text: String,
    special: bool,
    start: Option<usize>,
    stop: Option<usize>,
}

pub(crate) async fn tokenize(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<TokenizeRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/tokenize", async {
        let Json(req) = body?;
        let (texts, _) = req.inputs.into_vec();
        let c = &state.config;
        if texts.is_empty() || texts.len() > c.max_client_batch_size {
            return Err(ApiError::validation(format!(
                "give 1 to {} inputs (--max-client-batch-size)",
                c.max_client_batch_size
            )));
        }
        let bert = state.model.bert();
        let prompt = bert
            .dir
            .prompts
            .resolve(req.prompt_name.as_deref())
            .map_err(|e| ApiError::validation(e.to_string()))?;
        let started = std::time::Instant::now();
        let mut usage = Usage::default();
        let mut out = Vec::with_capacity(texts.len());
        for (i, text) in texts.iter().enumerate() {
            if text.chars().count() > c.max_input_chars {
                return Err(ApiError::too_large(format!(
                    "input {i} is longer than {} characters (--max-input-chars)",
                    c.max_input_chars
                )));
            }
            let text = prompt.map_or_else(|| text.clone(), |p| format!("{p}{text}"));
            let enc = bert
                .tokenizer
                .encode_bytes(&text, req.add_special_tokens)
                .map_err(|e| ApiError::validation(format!("input {i}: {e}")))?;
            usage.chars += text.chars().count();
            usage.tokens += enc.len();
            let specials = enc.get_special_tokens_mask();
            let tokens: Vec<SimpleToken> = enc
                .get_ids()
                .iter()
                .zip(enc.get_tokens())
                .zip(enc.get_offsets())
                .zip(specials)
                .map(|(((&id, token), &(start, stop)), &special)| {
                    let special = special == 1;
                    match text.get(start..stop) {
                        Some(piece) if !special => SimpleToken {
                            id,
                            text: piece.to_string(),
                            special,
                            start: Some(start),
                            stop: Some(stop),
                        },
                        _ => SimpleToken {
                            id,
                            text: token.clone(),
                            special,
                            start: None,
                            stop: None,
                        },
                    }
                })
                .collect();
            out.push(tokens);
        }
        usage.tokenization = started.elapsed();
        Ok(answer(usage, out))
    })
    .await
}

/// `POST /decode`: `ids` is one list of ids or several.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct DecodeRequest {
    ids: Ids,
    #[serde(default = "yes")]
    skip_special_tokens: bool,
}

/// One list of ids, or several.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Ids {
    /// One.
    One(Vec<u32>),
    /// Several.
    Many(Vec<Vec<u32>>),
}

pub(crate) async fn decode(
    State(state): State<Arc<AppState>>,
    body: std::result::Result<Json<DecodeRequest>, JsonRejection>,
) -> Response {
    timed(&state, "/decode", async {
        let Json(req) = body?;
        let lists = match req.ids {
            Ids::One(v) => vec![v],
            Ids::Many(v) => v,
        };
        let c = &state.config;
        if lists.is_empty() || lists.len() > c.max_client_batch_size {
            return Err(ApiError::validation(format!(
                "give 1 to {} lists of ids (--max-client-batch-size)",
                c.max_client_batch_size
            )));
        }
        let tok = &state.model.bert().tokenizer;
        let vocab = tok.vocab_size();
        let mut usage = Usage::default();
        let started = std::time::Instant::now();
        let mut out = Vec::with_capacity(lists.len());
        for (i, ids) in lists.iter().enumerate() {
            if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(ApiError::validation(format!(
                    "list {i}: token id {bad} is outside the vocabulary ({vocab} tokens)"
                )));
            }
            usage.tokens += ids.len();
            out.push(
                tok.decode(ids, req.skip_special_tokens)
                    .map_err(|e| ApiError::validation(format!("list {i}: {e}")))?,
            );
        }
        usage.tokenization = started.elapsed();
        Ok(answer(usage, out))
    })
    .await
}
