//! `bert serve`: the HTTP server (see `bert_std::server`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use bert_std::fetch::{MINILM, SPLADE_TINY};
use bert_std::server::{ServerConfig, Task};
use bert_std::{Error, Result};

use bert_std::task_models::DefaultTask;

use crate::model_args::{model_path, task_model_path, WeightDtype};

/// `bert serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The model directory (default for embed: all-MiniLM-L6-v2; for fill-mask: SPLADE-tiny;
    /// for classify, ner and qa the project's own models). Repeat it as NAME=DIR to serve
    /// several models: the first answers at /, each at /NAME/..., and OpenAI's `model` field
    /// picks one; they share the cores (a batch each in turn) and the limits.
    #[arg(long, env = "BERT_MODEL")]
    pub model: Vec<String>,
    /// What to serve.
    #[arg(long, value_enum, default_value_t = Task::Embed)]
    pub task: Task,
    /// Address to listen on (loopback by default; use 0.0.0.0 behind a load balancer).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Worker threads for the model (0: one per core; at most 4 per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Weights as stored (f32), or converted at load: f16, int8 (per-channel scales).
    #[arg(long, value_enum, default_value_t = WeightDtype::F32)]
    pub dtype: WeightDtype,
    /// Tokens in one forward batch; also the most one request may carry.
    #[arg(long, default_value_t = 16_384)]
    pub max_batch_tokens: usize,
    /// Requests waiting at once; one more is answered 429.
    #[arg(long, default_value_t = 512)]
    pub max_concurrent_requests: usize,
    /// Inputs (texts) in one request.
    #[arg(long, default_value_t = 32)]
    pub max_client_batch_size: usize,
    /// Characters in one input.
    #[arg(long, default_value_t = 20_000)]
    pub max_input_chars: usize,
    /// Bytes in one request body.
    #[arg(long, default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Seconds a request may wait for its result (504 after).
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Connections open at once; one more is closed at once.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Seconds a connection may stay without sending a request (or its request headers)
    /// before it is closed.
    #[arg(long, default_value_t = 30.0)]
    pub idle_timeout: f64,
    /// Seconds a request body may take to arrive (408 after).
    #[arg(long, default_value_t = 30.0)]
    pub body_timeout: f64,
    /// With no --model for classify, ner or qa, train the project's own model into the model
    /// cache if it is not there yet, without asking.
    #[arg(long)]
    pub yes: bool,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long, env = "BERT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

/// Load the model, listen, serve until SIGINT/SIGTERM, exit 0.
pub fn serve(args: ServeArgs) -> Result<ExitCode> {
    let default = match args.task {
        Task::Embed => Some(MINILM),
        Task::FillMask => Some(SPLADE_TINY),
        _ => None,
    };
    let what = format!("{:?}", args.task).to_lowercase();
    let own = match args.task {
        Task::Classify => Some(DefaultTask::Classify),
        Task::Ner => Some(DefaultTask::Ner),
        Task::Qa => Some(DefaultTask::Qa),
        _ => None,
    };
    let specs: Vec<(Option<String>, Option<PathBuf>)> = if args.model.is_empty() {
        vec![(None, None)]
    } else {
        args.model.iter().map(|m| model_spec(m)).collect()
    };
    let mut paths = Vec::with_capacity(specs.len());
    for (name, given) in specs {
        let path = match own {
            Some(task) => task_model_path(given.as_deref(), task, args.yes)?,
            None => model_path(given.as_deref(), default, &what, args.yes)?,
        };
        let name = name.unwrap_or_else(|| {
            path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        });
        paths.push((name, path));
    }
    for (flag, secs) in [
        ("--timeout", args.timeout),
        ("--idle-timeout", args.idle_timeout),
        ("--body-timeout", args.body_timeout),
    ] {
        if !(secs > 0.0 && secs <= 3600.0) {
            return Err(Error::Input(format!("{flag} must be in (0, 3600] seconds")));
        }
    }
    let options = bert_std::LoadOptions {
        threads: args.threads,
        dtype: args.dtype.convert(),
        ..Default::default()
    };
    let mut models = Vec::with_capacity(paths.len());
    for (name, path) in &paths {
        models.push((
            name.clone(),
            bert_std::server::load_model(args.task, path, options)?,
        ));
    }
    let config = ServerConfig {
        task: args.task,
        max_batch_tokens: args.max_batch_tokens,
        max_concurrent_requests: args.max_concurrent_requests,
        max_client_batch_size: args.max_client_batch_size,
        max_input_chars: args.max_input_chars,
        max_body_bytes: args.max_body_bytes,
        timeout: Duration::from_secs_f64(args.timeout),
        api_key: args.api_key.filter(|k| !k.is_empty()),
        max_connections: args.max_connections,
        idle_timeout: Duration::from_secs_f64(args.idle_timeout),
        body_timeout: Duration::from_secs_f64(args.body_timeout),
    };
    let addr: SocketAddr = format!("{}:{}", args.host, args.port)
        .parse()
        .map_err(|e| Error::Input(format!("--host {} --port {}: {e}", args.host, args.port)))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("<tokio runtime>", e))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(addr.to_string(), e))?;
        for (i, (name, path)) in paths.iter().enumerate() {
            let at = match (i, paths.len()) {
                (_, 1) => "/".to_string(),
                (0, _) => format!("/ and /{name}/"),
                _ => format!("/{name}/"),
            };
            eprintln!("model {name} ({what}): {}, at {at}", path.display());
        }
        eprintln!("serving on http://{addr}  (Ctrl-C or SIGTERM to stop)");
        bert_std::server::serve_many(
            config,
            models,
            listener,
            bert_std::server::shutdown_signal(),
        )
        .await
    })?;
    eprintln!("stopped: every request in flight was answered");
    Ok(ExitCode::SUCCESS)
}

/// `NAME=DIR`, or a plain `DIR` (a path that exists is never split at a `=`).
fn model_spec(spec: &str) -> (Option<String>, Option<PathBuf>) {
    match spec.split_once('=') {
        Some((name, dir))
            if !std::path::Path::new(spec).exists()
                && !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) =>
        {
            (Some(name.to_string()), Some(PathBuf::from(dir)))
        }
        _ => (None, Some(PathBuf::from(spec))),
    }
}
