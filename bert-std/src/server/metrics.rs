//! Prometheus text exposition for `GET /metrics`: request counts by route and status, queue
//! depth, batch sizes, tokens, and latency histograms. Lock-free counters; histograms behind a
//! small mutex (one update per request or batch).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A histogram with fixed upper bounds (Prometheus' cumulative buckets).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        for (b, c) in self.bounds.iter().zip(&mut self.counts) {
            if v <= *b {
                *c += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {c}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {}", self.count);
    }
}

const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const SIZES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
const TOKENS: &[f64] = &[
    16.0, 64.0, 256.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0,
];

/// Everything `/metrics` reports.
#[derive(Debug)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    /// Requests waiting for the model.
    pub queue_depth: AtomicU64,
    tokens: AtomicU64,
    inputs: AtomicU64,
    batch_inputs: Mutex<Histogram>,
    batch_tokens: Mutex<Histogram>,
    inference: Mutex<Histogram>,
    /// Connections open now.
    pub connections: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub connections_refused: AtomicU64,
    started: std::time::Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::default(),
            latency: Mutex::default(),
            queue_depth: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            inputs: AtomicU64::new(0),
            batch_inputs: Mutex::new(Histogram::new(SIZES)),
            batch_tokens: Mutex::new(Histogram::new(TOKENS)),
            inference: Mutex::new(Histogram::new(SECONDS)),
            connections: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
            started: std::time::Instant::now(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// One finished request.
    pub fn request(&self, route: &str, status: u16, seconds: f64) {
        *lock(&self.requests)
            .entry((route.to_string(), status))
            .or_default() += 1;
        lock(&self.latency)
            .entry(route.to_string())
            .or_insert_with(|| Histogram::new(SECONDS))
            .observe(seconds);
    }

    /// One batch through the model.
    pub fn batch(&self, inputs: usize, tokens: usize, seconds: f64) {
        self.tokens.fetch_add(tokens as u64, Ordering::Relaxed);
        self.inputs.fetch_add(inputs as u64, Ordering::Relaxed);
        lock(&self.batch_inputs).observe(inputs as f64);
        lock(&self.batch_tokens).observe(tokens as f64);
        lock(&self.inference).observe(seconds);
    }

    /// The Prometheus text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out += "# HELP bert_requests_total Requests answered, by route and HTTP status.\n";
        out += "# TYPE bert_requests_total counter\n";
        for ((route, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "bert_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out += "# HELP bert_request_duration_seconds Time from request to response.\n";
        out += "# TYPE bert_request_duration_seconds histogram\n";
        for (route, h) in lock(&self.latency).iter() {
            h.write(
                &mut out,
                "bert_request_duration_seconds",
                &format!("route=\"{route}\""),
            );
        }
        out += "# HELP bert_queue_depth Requests waiting for the model.\n";
        out += "# TYPE bert_queue_depth gauge\n";
        let _ = writeln!(
            out,
            "bert_queue_depth {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        out += "# HELP bert_connections Connections open.\n";
        out += "# TYPE bert_connections gauge\n";
        let _ = writeln!(
            out,
            "bert_connections {}",
            self.connections.load(Ordering::Relaxed)
        );
        out += "# HELP bert_connections_refused_total Connections closed at once: too many open.\n";
        out += "# TYPE bert_connections_refused_total counter\n";
        let _ = writeln!(
            out,
            "bert_connections_refused_total {}",
            self.connections_refused.load(Ordering::Relaxed)
        );
        let tokens = self.tokens.load(Ordering::Relaxed);
        out += "# TYPE bert_tokens_total counter\n";
        let _ = writeln!(out, "bert_tokens_total {tokens}");
        out += "# TYPE bert_inputs_total counter\n";
        let _ = writeln!(
            out,
            "bert_inputs_total {}",
            self.inputs.load(Ordering::Relaxed)
        );
        out += "# HELP bert_tokens_per_second Tokens through the model per second since start.\n";
        out += "# TYPE bert_tokens_per_second gauge\n";
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let _ = writeln!(out, "bert_tokens_per_second {:.1}", tokens as f64 / secs);
        out += "# HELP bert_batch_inputs Inputs per forward batch.\n";
        out += "# TYPE bert_batch_inputs histogram\n";
        lock(&self.batch_inputs).write(&mut out, "bert_batch_inputs", "");
        out += "# HELP bert_batch_tokens Tokens per forward batch.\n";
        out += "# TYPE bert_batch_tokens histogram\n";
        lock(&self.batch_tokens).write(&mut out, "bert_batch_tokens", "");
        out += "# HELP bert_inference_duration_seconds Time of one batch in the model.\n";
        out += "# TYPE bert_inference_duration_seconds histogram\n";
        lock(&self.inference).write(&mut out, "bert_inference_duration_seconds", "");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request("/embed", 200, 0.003);
        m.batch(4, 100, 0.002);
        let text = m.render();
        assert!(text.contains("bert_requests_total{route=\"/embed\",status=\"200\"} 1"));
        assert!(
            text.contains("bert_request_duration_seconds_bucket{route=\"/embed\",le=\"0.005\"} 1")
        );
        assert!(text.contains("bert_batch_tokens_bucket{le=\"256\"} 1"));
        assert!(text.contains("bert_tokens_total 100"));
    }
}
