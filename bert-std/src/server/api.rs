//! What every route shares: the JSON error type, the `string | [string]` input, the request
//! checks (inputs, characters, tokens), queueing with its timeout, and per-route metrics.

use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::server::batcher::{Done, Refused, Work};
use crate::server::AppState;

/// A JSON error with its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", message)
    }

    pub(crate) fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "validation", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.message, "error_type": self.kind});
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "validation"
        } else {
            "invalid_json"
        };
        let status = if status == StatusCode::PAYLOAD_TOO_LARGE {
            status
        } else {
            StatusCode::BAD_REQUEST
        };
        ApiError::new(status, kind, r.body_text())
    }
}

pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;

/// A string or a list of strings.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> (Vec<String>, bool) {
        match self {
            OneOrMany::One(s) => (vec![s], true),
            OneOrMany::Many(v) => (v, false),
        }
    }
}

impl AppState {
    /// Check the per-request limits and count tokens: `texts` are (text, pair) inputs.
    pub(crate) fn admit(
        &self,
        inputs: &[(&str, Option<&str>)],
        truncate: bool,
    ) -> ApiResult<usize> {
        let c = &self.config;
        if inputs.is_empty() {
            return Err(ApiError::validation("no inputs"));
        }
        if inputs.len() > c.max_client_batch_size {
            return Err(ApiError::too_large(format!(
                "{} inputs in one request; the limit is {} (--max-client-batch-size)",
                inputs.len(),
                c.max_client_batch_size
            )));
        }
        let bert = self.model.bert();
        let max_len = self.model.max_input_length();
        let mut tokens = 0;
        for (i, (text, pair)) in inputs.iter().enumerate() {
            let chars = text.chars().count() + pair.map_or(0, |p| p.chars().count());
            if chars > c.max_input_chars {
                return Err(ApiError::too_large(format!(
                    "input {i} has {chars} characters; the limit is {} (--max-input-chars)",
                    c.max_input_chars
                )));
            }
            if text.trim().is_empty() {
                return Err(ApiError::validation(format!("input {i} is empty")));
            }
            let n = bert
                .tokenizer
                .encode(text, *pair)
                .map_err(|e| ApiError::validation(format!("input {i}: {e}")))?
                .len();
            if n > max_len && !truncate {
                return Err(ApiError::too_large(format!(
                    "input {i} has {n} tokens, more than the model's {max_len}; send \
                     \"truncate\": true to cut it"
                )));
            }
            tokens += n.min(max_len);
        }
        if tokens > c.max_batch_tokens {
            return Err(ApiError::too_large(format!(
                "the request has {tokens} tokens; the limit is {} (--max-batch-tokens)",
                c.max_batch_tokens
            )));
        }
        Ok(tokens)
    }

    /// Queue the work and wait for it (bounded by the request timeout).
    pub(crate) async fn infer(&self, work: Work, tokens: usize) -> ApiResult<Done> {
        let rx = self.queue.submit(work, tokens).map_err(|r| match r {
            Refused::Full => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "the queue is full (--max-concurrent-requests); retry later",
            ),
            Refused::Closed => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unhealthy",
                "the server is shutting down",
            ),
        })?;
        match tokio::time::timeout(self.config.timeout, rx).await {
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!("no result within {:?} (--timeout)", self.config.timeout),
            )),
            Ok(Err(_)) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unhealthy",
                "the model worker stopped",
            )),
            Ok(Ok(Err(e))) => Err(ApiError::validation(e.without_index().to_string())),
            Ok(Ok(Ok(done))) => Ok(done),
        }
    }

    pub(crate) fn require(&self, task: &'static str) -> ApiResult<()> {
        if self.model.task() == task {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "wrong_task",
                format!("this server runs --task {}, not {task}", self.model.task()),
            ))
        }
    }
}

/// Time and count every request of a route.
pub(crate) async fn timed<T: IntoResponse>(
    state: &AppState,
    route: &str,
    f: impl std::future::Future<Output = ApiResult<T>>,
) -> Response {
    let started = Instant::now();
    let response = match f.await {
        Ok(ok) => ok.into_response(),
        Err(e) => e.into_response(),
    };
    state.metrics.request(
        route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
