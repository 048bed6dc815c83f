//! Request bodies are read whole, before any route sees them, within three bounds:
//!
//! - size: a body over `max_body_bytes` (declared by `Content-Length`, or growing past it while
//!   arriving) is answered 413; up to [`DRAIN_BYTES`] past the limit are read and dropped first,
//!   so a client still writing reads the 413 rather than a reset connection, and a larger
//!   declared body is refused without reading a byte;
//! - time: a body that has not fully arrived `body_timeout` after its headers is answered 408
//!   (a client sending a byte a second holds nothing for long);
//! - memory: the bytes of the bodies being read and served at once are capped at
//!   [`BODIES_IN_FLIGHT`] × `max_body_bytes` (a client that cannot have its share within
//!   `body_timeout` is answered 503): many large slow bodies cannot exhaust memory.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use super::api::ApiError;
use super::AppState;

/// Bytes past the limit that are read and dropped before a 413 (so that a client still
/// writing its body reads the answer rather than a reset connection); beyond this, the
/// connection is answered and closed without reading further.
pub const DRAIN_BYTES: u64 = 1024 * 1024;

/// How many bodies of the largest size may be held at once (the memory bound's multiple).
pub const BODIES_IN_FLIGHT: usize = 16;

/// The byte budget of the bodies in flight, in KiB (a semaphore's permits).
#[derive(Debug)]
pub(crate) struct BodyBudget {
    kib: Semaphore,
    max_kib: u32,
}

impl BodyBudget {
    pub(crate) fn new(max_body_bytes: usize) -> Self {
        let max_kib = u32::try_from(max_body_bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX / 64);
        let total = (max_kib as usize).saturating_mul(BODIES_IN_FLIGHT);
        BodyBudget {
            kib: Semaphore::new(total.min(Semaphore::MAX_PERMITS)),
            max_kib,
        }
    }
}

/// The route a path belongs to, for metrics (a client's made-up paths are not new labels).
pub(crate) fn route_label(path: &str) -> &'static str {
    super::POST_ROUTES
        .iter()
        .chain(super::GET_ROUTES)
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

fn refuse(
    state: &AppState,
    path: &str,
    status: StatusCode,
    kind: &'static str,
    msg: String,
) -> Response {
    state
        .metrics
        .request(route_label(path), status.as_u16(), 0.0);
    ApiError::new(status, kind, msg).into_response()
}

/// The middleware: read the body within its bounds, then hand the request on.
pub(crate) async fn read_body(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let limit = state.config.max_body_bytes;
    let deadline = state.config.body_timeout;
    let path = request.uri().path().to_string();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > limit as u64) {
        // A modest excess is read and dropped first, so that the client, still writing, reads
        // the 413 instead of a reset connection; a large one is refused without reading.
        if n <= limit as u64 + DRAIN_BYTES {
            let (_, body) = request.into_parts();
            let _ = tokio::time::timeout(deadline, drain(body, DRAIN_BYTES)).await;
        }
        return refuse(
            &state,
            &path,
            StatusCode::PAYLOAD_TOO_LARGE,
            "validation",
            format!("the request body is larger than the limit of {limit} bytes"),
        );
    }
    // Bodiless reads (health checks, metrics) do not take from the budget.
    let bodiless = matches!(*request.method(), Method::GET | Method::HEAD) && declared.is_none();
    let _share = if bodiless {
        None
    } else {
        let budget = &state.body_budget;
        let kib = declared.map_or(budget.max_kib, |n| {
            (n.div_ceil(1024) as u32).clamp(1, budget.max_kib)
        });
        match tokio::time::timeout(deadline, budget.kib.acquire_many(kib)).await {
            Ok(Ok(permit)) => Some(permit),
            _ => {
                return refuse(
                    &state,
                    &path,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    "too many request bodies are being read at once; retry".into(),
                )
            }
        }
    };
    let (parts, body) = request.into_parts();
    let left = deadline.saturating_sub(started.elapsed());
    let bytes = match tokio::time::timeout(left, collect(body, limit)).await {
        Ok(Ok(Collected::Whole(bytes))) => bytes,
        Ok(Ok(Collected::TooLarge(rest))) => {
            let left = deadline.saturating_sub(started.elapsed());
            let _ = tokio::time::timeout(left, drain(rest, DRAIN_BYTES)).await;
            return refuse(
                &state,
                &path,
                StatusCode::PAYLOAD_TOO_LARGE,
                "validation",
                format!("the request body is larger than the limit of {limit} bytes"),
            );
        }
        Ok(Err(e)) => {
            return refuse(
                &state,
                &path,
                StatusCode::BAD_REQUEST,
                "validation",
                format!("the request body could not be read: {e}"),
            )
        }
        Err(_) => {
            return refuse(
                &state,
                &path,
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!(
                    "the request body did not arrive within {:.0} s",
                    deadline.as_secs_f64()
                ),
            )
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A body read within the size limit, or what is left of one that went over it.
enum Collected {
    Whole(Vec<u8>),
    TooLarge(Body),
}

/// Read a body whole, keeping at most `limit` bytes.
async fn collect(mut body: Body, limit: usize) -> Result<Collected, axum::Error> {
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        if bytes.len() + data.len() > limit {
            return Ok(Collected::TooLarge(body));
        }
        bytes.extend_from_slice(&data);
    }
    Ok(Collected::Whole(bytes))
}

/// Read and drop up to `at_most` bytes of a body (or to its end).
async fn drain(mut body: Body, at_most: u64) -> Result<(), axum::Error> {
    let mut read = 0u64;
    while read <= at_most {
        match body.frame().await {
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    read += data.len() as u64;
                }
            }
            None => break,
        }
    }
    Ok(())
}
