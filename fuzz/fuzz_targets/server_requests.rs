//! Arbitrary request bodies on every route of `bert serve`, driven through the real router and
//! batcher in-process (no socket), for a server of each task over the round-trip goldens' tiny
//! models. Layout: a first byte that picks the server (task) and the route, then the body.
//! Every request gets an answer, never a panic: 200 with JSON, or a 4xx (or 503/504) whose body
//! is TEI's JSON error; a 500 is a bug.
#![no_main]
use std::path::Path;
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bert_std::server::{app, load_model, ServerConfig};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

#[path = "shared/servers.rs"]
mod servers;

struct Servers {
    runtime: tokio::runtime::Runtime,
    routers: Vec<axum::Router>,
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let goldens = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bert-std/tests/goldens/roundtrip");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let routers = servers::SERVERS
            .iter()
            .map(|&(task, dir)| {
                let model = load_model(task, &goldens.join(dir), Default::default()).unwrap();
                // Small limits, so that the fuzzer reaches them.
                let config = ServerConfig {
                    task,
                    max_batch_tokens: 512,
                    max_client_batch_size: 8,
                    max_input_chars: 512,
                    max_body_bytes: 4096,
                    ..ServerConfig::default()
                };
                let _guard = runtime.enter();
                let (router, state) = app(config, model, dir.into()).unwrap();
                // Kept for the process's life: the worker runs while its state does.
                std::mem::forget(state);
                router
            })
            .collect();
        Servers { runtime, routers }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let s = servers();
    let (server, route) = servers::pick(pick);
    let router = s.routers[server].clone();
    let request = Request::post(route)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let (status, bytes) = s.runtime.block_on(async move {
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        (status, response.into_body().collect().await.unwrap().to_bytes())
    });
    assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{route}: {}", String::from_utf8_lossy(&bytes));
    assert!(
        status.is_success() || status.is_client_error() || status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::GATEWAY_TIMEOUT,
        "{route}: {status}"
    );
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{route} {status}: not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    if !status.is_success() && status != StatusCode::METHOD_NOT_ALLOWED && status != StatusCode::NOT_FOUND {
        assert!(json.get("error").is_some(), "{route} {status}: {json}");
    }
});
