//! `bert serve`: an HTTP server for one model and one task, on tokio + axum.
//!
//! Requests are validated (texts per request, characters per text, tokens per request, body
//! size), queued in one bounded queue (full → 429), merged into padding-free batches of up to
//! `max_batch_tokens` tokens by one worker ([`batcher`]), and answered as JSON. Optional bearer
//! auth (401 without it; `/health` stays open for load balancers); no CORS headers. SIGINT or
//! SIGTERM stop accepting, let in-flight requests finish, and return.
//!
//! ```no_run
//! use bert_std::server::{ServerConfig, Task};
//!
//! let config = ServerConfig { task: Task::Embed, ..ServerConfig::default() };
//! let model = bert_std::server::load_model(config.task, "path/to/model".as_ref(), Default::default())?;
//! let runtime = tokio::runtime::Runtime::new().unwrap();
//! runtime.block_on(async {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//!     bert_std::server::serve(config, model, "my-model".into(), listener, bert_std::server::shutdown_signal()).await
//! })?;
//! # Ok::<(), bert_std::Error>(())
//! ```

pub mod api;
pub mod batcher;
pub mod body;
pub mod connections;
pub mod embedding;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod scheduler;
pub mod tokens;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::error::{Error, Result};
use crate::pipelines::classification::TextClassification;
use crate::pipelines::embeddings::SentenceEmbeddings;
use crate::pipelines::fill_mask::FillMask;
use crate::pipelines::ner::TokenClassification;
use crate::pipelines::qa::QuestionAnswering;
use crate::pipelines::sparse::SparseEmbeddings;
use crate::runtime::LoadOptions;
use batcher::Model;
use metrics::Metrics;
use scheduler::Queue;

/// What a server does with its model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Task {
    /// Sentence embeddings: `/embed`, `/v1/embeddings`, `/embed_all`, `/similarity`.
    Embed,
    /// SPLADE sparse embeddings from a masked-LM model: `/embed_sparse`.
    SparseEmbed,
    /// Fill-mask: `/fill-mask`.
    FillMask,
    /// Sequence classification: `/predict`.
    Classify,
    /// Token classification: `/ner`.
    Ner,
    /// Question answering: `/qa`.
    Qa,
    /// Cross-encoder reranking (a classification head over query + passage): `/rerank`,
    /// `/predict`.
    Rerank,
}

/// Limits and settings, with text-embeddings-inference's defaults where it has them.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The task.
    pub task: Task,
    /// Tokens in one forward batch (and the most one request may carry).
    pub max_batch_tokens: usize,
    /// Requests waiting at once; one more gets 429.
    pub max_concurrent_requests: usize,
    /// Inputs in one request.
    pub max_client_batch_size: usize,
    /// Characters in one input.
    pub max_input_chars: usize,
    /// Bytes in one request body.
    pub max_body_bytes: usize,
    /// Time a request may wait for its result.
    pub timeout: Duration,
    /// Bearer token that requests must carry (`Authorization: Bearer ...`).
    pub api_key: Option<String>,
    /// Connections open at once; one more is closed at once.
    pub max_connections: usize,
    /// A connection that sends no request (or not its whole request head) for this long is
    /// closed: idle keep-alive connections and clients that send a byte at a time.
    pub idle_timeout: Duration,
    /// Time a request body may take to arrive after its headers (408 after).
    pub body_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            task: Task::Embed,
            max_batch_tokens: 16_384,
            max_concurrent_requests: 512,
            max_client_batch_size: 32,
            max_input_chars: 20_000,
            max_body_bytes: 2 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            api_key: None,
            max_connections: 4096,
            idle_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// What every handler sees: its model and queue, and what the server's models share.
#[derive(Debug)]
pub struct AppState {
    model: Arc<Model>,
    queue: Queue,
    metrics: Arc<Metrics>,
    config: ServerConfig,
    model_name: String,
    dtype: String,
    worker: Arc<Worker>,
    body_budget: Arc<body::BodyBudget>,
    /// Every model of the server, by name (the first is the default one).
    peers: Arc<std::sync::OnceLock<Peers>>,
}

/// Every model of a server, by name (held weakly: the states own their queues).
type Peers = Vec<(String, std::sync::Weak<AppState>)>;

/// The one worker thread every model's queue feeds.
#[derive(Debug)]
struct Worker(std::sync::Mutex<Option<std::thread::JoinHandle<()>>>);

impl AppState {
    fn worker_alive(&self) -> bool {
        let handle = self.worker.0.lock().unwrap_or_else(|p| p.into_inner());
        handle.as_ref().is_some_and(|h| !h.is_finished())
    }

    /// The served model named `name` (OpenAI's `model` field), if the server has several.
    pub(crate) fn peer(&self, name: &str) -> Option<Arc<AppState>> {
        self.peers
            .get()?
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, s)| s.upgrade())
    }

    /// The names of the server's models.
    pub(crate) fn model_names(&self) -> Vec<String> {
        self.peers
            .get()
            .map(|p| p.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default()
    }
}

/// Load `path` for `task`. Embedding models are loaded without their final normalization:
/// the routes normalize per request (TEI's `normalize`; OpenAI's vectors are unit length).
pub fn load_model(task: Task, path: &Path, options: LoadOptions) -> Result<Model> {
    Ok(match task {
        Task::Embed => {
            let mut st = SentenceEmbeddings::load(path, options)?;
            st.bert.dir.pooling.normalize = false;
            Model::Embed(st)
        }
        Task::SparseEmbed => Model::Sparse(SparseEmbeddings::load(path, options)?),
        Task::FillMask => Model::FillMask(FillMask::load(path, options)?),
        Task::Classify | Task::Rerank => Model::Classify(TextClassification::load(path, options)?),
        Task::Ner => Model::Ner(TokenClassification::load(path, options)?),
        Task::Qa => Model::Qa(QuestionAnswering::load(path, options)?),
    })
}

async fn auth(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.config.api_key {
        let given = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(key.as_str()) && request.uri().path() != "/health" {
            let e = api::ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token (Authorization: Bearer ...)",
            );
            state
                .metrics
                .request(body::route_label(request.uri().path()), 401, 0.0);
            return e.into_response();
        }
    }
    next.run(request).await
}

/// The routes that take a JSON body.
pub const POST_ROUTES: &[&str] = &[
    "/v1/embeddings",
    "/embed",
    "/predict",
    "/rerank",
    "/fill-mask",
    "/ner",
    "/qa",
    "/embed_all",
    "/embed_sparse",
    "/similarity",
    "/tokenize",
    "/decode",
];

/// The routes that only read.
pub const GET_ROUTES: &[&str] = &["/health", "/info", "/metrics", "/openapi.json"];

/// The routes over a started state.
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    let mut app = Router::new();
    for spec in openapi::route_specs() {
        app = app.route(spec.path, (spec.handler)());
    }
    app.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        body::read_body,
    ))
    .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
    .layer(DefaultBodyLimit::max(limit))
    .with_state(state)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// The routes over `model` with their worker started, not bound to any socket: what
/// [`serve`] serves, and what tests and fuzzing drive in-process (`tower::ServiceExt::oneshot`).
/// The worker ends when the last handle to the returned state is dropped.
pub fn app(
    config: ServerConfig,
    model: Model,
    model_name: String,
) -> Result<(Router, Arc<AppState>)> {
    let (router, mut states) = app_many(config, vec![(model_name, model)])?;
    Ok((router, states.remove(0)))
}

/// [`app`] for several models in one server, sharing one worker (models take turns, a batch
/// each) and the limits: the first model answers the routes at `/`, every model those at
/// `/NAME/...`, and OpenAI's `/v1/embeddings` picks one by its `model` field.
pub fn app_many(
    config: ServerConfig,
    models: Vec<(String, Model)>,
) -> Result<(Router, Vec<Arc<AppState>>)> {
    check(&config)?;
    if models.is_empty() {
        return Err(Error::Input("no model to serve".into()));
    }
    // Names become path prefixes only when there are several models.
    let prefixed = models.len() > 1;
    for (i, (name, _)) in models.iter().enumerate().filter(|_| prefixed) {
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && !name.starts_with('.');
        let taken = models[..i].iter().any(|(n, _)| n == name)
            || POST_ROUTES
                .iter()
                .chain(GET_ROUTES)
                .any(|r| r.trim_start_matches('/').split('/').next() == Some(name.as_str()));
        if !plain || taken {
            return Err(Error::Input(format!(
                "model name {name:?}: use letters, digits, '-', '_' and '.', each name once, \
                 and none that is a route (embed, info, ...)"
            )));
        }
    }
    let metrics = Arc::new(Metrics::default());
    let dtypes: Vec<String> = models.iter().map(|(_, m)| model_dtype(m)).collect();
    let (names, models): (Vec<String>, Vec<Arc<Model>>) =
        models.into_iter().map(|(n, m)| (n, Arc::new(m))).unzip();
    let (queues, worker) = scheduler::start(
        models.clone(),
        config.max_concurrent_requests,
        config.max_batch_tokens,
        metrics.clone(),
    );
    let worker = Arc::new(Worker(std::sync::Mutex::new(Some(worker))));
    let body_budget = Arc::new(body::BodyBudget::new(config.max_body_bytes));
    let peers = Arc::new(std::sync::OnceLock::new());
    let states: Vec<Arc<AppState>> = models
        .into_iter()
        .zip(queues)
        .zip(names.iter().cloned().zip(dtypes))
        .map(|((model, queue), (model_name, dtype))| {
            Arc::new(AppState {
                model,
                queue,
                metrics: metrics.clone(),
                config: config.clone(),
                model_name,
                dtype,
                worker: worker.clone(),
                body_budget: body_budget.clone(),
                peers: peers.clone(),
            })
        })
        .collect();
    let _ = peers.set(
        names
            .into_iter()
            .zip(states.iter().map(Arc::downgrade))
            .collect(),
    );
    let mut app = router(states[0].clone());
    if prefixed {
        for s in &states {
            app = app.nest(&format!("/{}", s.model_name), router(s.clone()));
        }
    }
    Ok((app, states))
}

fn check(config: &ServerConfig) -> Result<()> {
    if config.max_batch_tokens == 0
        || config.max_client_batch_size == 0
        || config.max_connections == 0
    {
        return Err(Error::Input(
            "--max-batch-tokens, --max-client-batch-size and --max-connections must be at least 1"
                .into(),
        ));
    }
    if config.idle_timeout.is_zero() || config.body_timeout.is_zero() {
        return Err(Error::Input(
            "--idle-timeout and --body-timeout must be more than 0 seconds".into(),
        ));
    }
    Ok(())
}

/// Serve `model` on `listener` until `shutdown` resolves; then stop accepting, finish the
/// requests in flight, stop the worker and return.
pub async fn serve(
    config: ServerConfig,
    model: Model,
    model_name: String,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_many(config, vec![(model_name, model)], listener, shutdown).await
}

/// [`serve`] several models (see [`app_many`]).
pub async fn serve_many(
    config: ServerConfig,
    models: Vec<(String, Model)>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (max_connections, idle_timeout) = (config.max_connections, config.idle_timeout);
    let (app, states) = app_many(config, models)?;
    let metrics = states[0].metrics.clone();
    let worker = states[0].worker.clone();
    connections::accept_loop(
        listener,
        app,
        max_connections,
        idle_timeout,
        metrics,
        shutdown,
    )
    .await;
    // Every connection is closed: drop the queues so that the worker ends, and wait for it.
    drop(states);
    let handle = worker.0.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some(handle) = handle {
        let _ = tokio::task::spawn_blocking(move || handle.join()).await;
    }
    Ok(())
}

fn model_dtype(model: &Model) -> String {
    let bert = model.bert().task_model().bert();
    let l = &bert.encoder.layer[0];
    format!(
        "{:?}",
        l.attention.self_attention.query.weight.storage.dtype()
    )
    .to_lowercase()
}

/// A server running on its own thread (its own tokio runtime) on a loopback port: for tests,
/// benchmarks and applications that embed the server. Stopped (gracefully) by
/// [`stop`](Self::stop) or on drop.
#[derive(Debug)]
pub struct Background {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Background {
    /// Serve `model` on 127.0.0.1 at a free port.
    pub fn start(config: ServerConfig, model: Model, name: String) -> Result<Background> {
        Self::start_many(config, vec![(name, model)])
    }

    /// Serve several models (see [`app_many`]) on 127.0.0.1 at a free port.
    pub fn start_many(config: ServerConfig, models: Vec<(String, Model)>) -> Result<Background> {
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bert-serve".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .map_err(|e| Error::io("<tokio runtime>", e))?;
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .map_err(|e| Error::io("127.0.0.1:0", e))?;
                    let port = listener
                        .local_addr()
                        .map_err(|e| Error::io("127.0.0.1:0", e))?
                        .port();
                    let _ = port_tx.send(port);
                    let shutdown = async move {
                        let _ = stop_rx.await;
                    };
                    serve_many(config, models, listener, shutdown).await
                })
            })
            .map_err(|e| Error::io("<server thread>", e))?;
        let port = match port_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => port,
            Err(_) => {
                return Err(match thread.join() {
                    Ok(Err(e)) => e,
                    _ => Error::Model("the server thread did not start".into()),
                })
            }
        };
        Ok(Background {
            url: format!("http://127.0.0.1:{port}"),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stop accepting, answer what is in flight, and wait for the server to end.
    pub fn stop(mut self) -> Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match self.thread.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(Error::Model("the server thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}
