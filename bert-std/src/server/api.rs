//! What every route shares: the JSON error type, the `string | [string]` input, the request
//! checks (inputs, characters, tokens), queueing with its timeout, and per-route metrics.

use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::server::batcher::{Done, EmbedItem, Work};
use crate::server::scheduler::Refused;
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

/// The JSON of every error: text-embeddings-inference's shape.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct ErrorBody {
    /// What went wrong, for a person.
    error: String,
    /// Its kind: `validation`, `invalid_json`, `overloaded`, `unhealthy`, `timeout`,
    /// `unauthorized`, `model_not_found`, ...
    error_type: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            error_type: self.kind,
        };
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
#[derive(Debug, Deserialize, schemars::JsonSchema)]
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

/// What one request cost, for text-embeddings-inference's headers (`x-compute-characters`,
/// `x-compute-tokens`, `x-tokenization-time`, `x-queue-time`, `x-inference-time`; `timed` adds
/// `x-total-time` and `x-compute-time`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub chars: usize,
    pub tokens: usize,
    pub tokenization: Duration,
    pub queue: Duration,
    pub inference: Duration,
}

/// A JSON answer with its usage attached (`timed` turns it into headers).
pub(crate) fn answer(usage: Usage, body: impl Serialize) -> Response {
    let mut response = Json(body).into_response();
    response.extensions_mut().insert(usage);
    response
}

impl AppState {
    /// Check the per-request limits and count tokens: `inputs` are (text, pair) inputs, with
    /// `prompt` put before each text.
    pub(crate) fn admit(
        &self,
        inputs: &[(&str, Option<&str>)],
        truncate: bool,
    ) -> ApiResult<Usage> {
        self.admit_with(inputs.len(), truncate, |i| {
            Ok(Sized::Text(inputs[i].0, inputs[i].1))
        })
    }

    /// [`admit`](Self::admit) for embedding inputs (texts after a prompt, or token ids).
    pub(crate) fn admit_items(
        &self,
        items: &[EmbedItem],
        prompt: Option<&str>,
        truncate: bool,
    ) -> ApiResult<Usage> {
        let with_prompt: Vec<Option<String>> = items
            .iter()
            .map(|item| match (item, prompt) {
                (EmbedItem::Text(t), Some(p)) if !t.trim().is_empty() => Some(format!("{p}{t}")),
                _ => None,
            })
            .collect();
        self.admit_with(items.len(), truncate, |i| {
            Ok(match (&items[i], &with_prompt[i]) {
                (_, Some(prompted)) => Sized::Text(prompted, None),
                (EmbedItem::Text(t), None) => Sized::Text(t, None),
                (EmbedItem::Ids(ids), _) => Sized::Ids(ids.len()),
            })
        })
    }

    fn admit_with<'i>(
        &self,
        n: usize,
        truncate: bool,
        input: impl Fn(usize) -> ApiResult<Sized<'i>>,
    ) -> ApiResult<Usage> {
        let started = Instant::now();
        let c = &self.config;
        if n == 0 {
            return Err(ApiError::validation("no inputs"));
        }
        if n > c.max_client_batch_size {
            return Err(ApiError::too_large(format!(
                "{n} inputs in one request; the limit is {} (--max-client-batch-size)",
                c.max_client_batch_size
            )));
        }
        let bert = self.model.bert();
        let max_len = self.model.max_input_length();
        let mut usage = Usage::default();
        for i in 0..n {
            let (chars, tokens) = match input(i)? {
                Sized::Ids(0) => return Err(ApiError::validation(format!("input {i} is empty"))),
                Sized::Ids(len) => (len, len),
                Sized::Text(text, pair) => {
                    let chars = text.chars().count() + pair.map_or(0, |p| p.chars().count());
                    if chars > c.max_input_chars {
                        return Err(ApiError::too_large(format!(
                            "input {i} has {chars} characters; the limit is {} \
                             (--max-input-chars)",
                            c.max_input_chars
                        )));
                    }
                    if text.trim().is_empty() {
                        return Err(ApiError::validation(format!("input {i} is empty")));
                    }
                    let n = bert
                        .tokenizer
                        .encode(text, pair)
                        .map_err(|e| ApiError::validation(format!("input {i}: {e}")))?
                        .len();
                    (chars, n)
                }
            };
            if tokens > max_len && !truncate {
                return Err(ApiError::too_large(format!(
                    "input {i} has {tokens} tokens, more than the model's {max_len}; send \
                     \"truncate\": true to cut it"
                )));
            }
            usage.chars += chars;
            usage.tokens += tokens.min(max_len);
        }
        if usage.tokens > c.max_batch_tokens {
            return Err(ApiError::too_large(format!(
                "the request has {} tokens; the limit is {} (--max-batch-tokens)",
                usage.tokens, c.max_batch_tokens
            )));
        }
        usage.tokenization = started.elapsed();
        Ok(usage)
    }

    /// Queue the work and wait for it (bounded by the request timeout).
    pub(crate) async fn infer(&self, work: Work, usage: Usage) -> ApiResult<(Done, Usage)> {
        let rx = self.queue.submit(work, usage.tokens).map_err(|r| match r {
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
            Ok(Ok(Ok((done, timing)))) => Ok((
                done,
                Usage {
                    queue: timing.queue,
                    inference: timing.inference,
                    ..usage
                },
            )),
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
    let mut response = match f.await {
        Ok(ok) => ok.into_response(),
        Err(e) => e.into_response(),
    };
    let total = started.elapsed();
    if let Some(usage) = response.extensions().get::<Usage>().copied() {
        let ms = |d: Duration| d.as_millis().to_string();
        let headers = [
            ("x-compute-type", "cpu".to_string()),
            ("x-compute-time", ms(total)),
            ("x-compute-characters", usage.chars.to_string()),
            ("x-compute-tokens", usage.tokens.to_string()),
            ("x-total-time", ms(total)),
            ("x-tokenization-time", ms(usage.tokenization)),
            ("x-queue-time", ms(usage.queue)),
            ("x-inference-time", ms(usage.inference)),
        ];
        for (name, value) in headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
    }
    state
        .metrics
        .request(route, response.status().as_u16(), total.as_secs_f64());
    response
}

/// An input as admission sizes it.
enum Sized<'a> {
    /// A text (and its pair).
    Text(&'a str, Option<&'a str>),
    /// Token ids: this many.
    Ids(usize),
}
