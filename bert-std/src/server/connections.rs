//! The accept loop: HTTP/1 connections with bounds on what a client can hold.
//!
//! - at most `max_connections` open: one more is closed at once (counted in `/metrics`), so
//!   thousands of idle sockets cost a bounded amount of memory;
//! - a connection that sends no request, or whose request headers do not arrive, within
//!   `idle_timeout` is closed (hyper's header-read timeout, which also runs between the requests
//!   of a keep-alive connection): a client sending a byte a second is cut off;
//! - request headers are read into a buffer of at most [`MAX_HEADER_BYTES`];
//! - on shutdown, no new connection is taken, idle ones are closed, and the ones with a request
//!   in flight are closed after its answer.
//!
//! The bodies' own bounds (size, arrival time, bytes held at once) are in [`super::body`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::metrics::Metrics;

/// The largest request head (request line and headers) read; larger ones are refused (431).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Accept connections on `listener` and serve `app` on each until `shutdown` resolves; then
/// wait for the connections with a request in flight to finish.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    max_connections: usize,
    idle_timeout: Duration,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors (or a connection reset before it was taken): let
                    // the open connections finish something instead of spinning.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        let metrics = metrics.clone();
        metrics.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            // An error here is the client's (a reset, a timeout, a malformed head): the
            // connection is closed and nothing else is affected.
            let _ = connection.await;
            metrics.connections.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
