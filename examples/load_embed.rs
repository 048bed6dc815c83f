//! A load generator for any server with text-embeddings-inference's `POST /embed` (`bert
//! serve`, TEI itself, or anything that speaks the same JSON): for 1, 16 and 64 concurrent
//! clients, one-sentence and 128-token inputs, and batches of 1 and 32 inputs per request, it
//! drives the server for `--seconds` per case and prints one JSON line per case (inputs/s,
//! requests/s, p50 and p99 latency in ms, errors). `scripts/bench_vs_tei.sh` runs it against
//! each server in turn and makes the README's table.
//!
//!     cargo run --release --example load_embed -- --url http://127.0.0.1:8080 --name bert

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The server's base URL.
    #[arg(long)]
    url: String,
    /// A name for the output lines.
    #[arg(long)]
    name: String,
    /// Seconds per case (after two seconds of warm-up).
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Client counts, comma-separated.
    #[arg(long, default_value = "1,16,64")]
    clients: String,
}

/// `n` distinct inputs: a short question, or about 128 WordPiece tokens of prose.
fn inputs(kind: &str, n: usize) -> Vec<String> {
    let prose = "the committee reviewed the proposal in detail and decided to postpone the vote \
                 until the budget figures for next year were available to every member";
    (0..n)
        .map(|i| match kind {
            "short" => format!("request {i}: how do I keep my basil plant alive indoors?"),
            _ => {
                let words: Vec<&str> = prose.split(' ').cycle().take(124).collect();
                format!("{i} {}", words.join(" "))
            }
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// One case: `clients` threads, each sending `batch` inputs per request, for `seconds`.
/// Latencies (ms) of the answered requests, the errors, and the seconds measured.
fn drive(
    url: &str,
    pool: &Arc<Vec<String>>,
    clients: usize,
    batch: usize,
    seconds: f64,
) -> (Vec<f64>, usize, Option<String>, f64) {
    let done = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (done, measuring, pool) = (done.clone(), measuring.clone(), pool.clone());
            let url = format!("{url}/embed");
            std::thread::spawn(move || {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(120))
                    .build();
                let (mut lat, mut errors) = (Vec::new(), 0usize);
                let mut first_error = None;
                let mut i = c * batch;
                while !done.load(Ordering::Relaxed) {
                    let texts: Vec<&str> = (0..batch)
                        .map(|k| pool[(i + k) % pool.len()].as_str())
                        .collect();
                    i += clients * batch;
                    let body = serde_json::json!({"inputs": texts});
                    let t = Instant::now();
                    let answer = match agent.post(&url).send_json(body) {
                        Ok(r) => r
                            .into_json::<serde_json::Value>()
                            .map_err(|e| e.to_string())
                            .and_then(|v| match v.as_array().map(Vec::len) {
                                Some(n) if n == batch => Ok(()),
                                _ => Err(format!("not {batch} vectors")),
                            }),
                        Err(ureq::Error::Status(code, r)) => {
                            Err(format!("{code}: {}", r.into_string().unwrap_or_default()))
                        }
                        Err(e) => Err(e.to_string()),
                    };
                    let ok = answer.is_ok();
                    if let Err(e) = answer {
                        first_error.get_or_insert(e);
                    }
                    if measuring.load(Ordering::Relaxed) && !done.load(Ordering::Relaxed) {
                        if ok {
                            lat.push(t.elapsed().as_secs_f64() * 1e3);
                        } else {
                            errors += 1;
                        }
                    }
                }
                (lat, errors, first_error)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    measuring.store(true, Ordering::Relaxed);
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    done.store(true, Ordering::Relaxed);
    let secs = t.elapsed().as_secs_f64();
    let (mut lat, mut errors, mut first_error) = (Vec::new(), 0, None);
    for h in threads {
        let (l, e, first) = h.join().expect("a client thread panicked");
        lat.extend(l);
        errors += e;
        first_error = first_error.or(first);
    }
    lat.sort_by(f64::total_cmp);
    (lat, errors, first_error, secs)
}

fn main() {
    let args = Args::parse();
    let clients: Vec<usize> = args
        .clients
        .split(',')
        .map(|c| {
            c.trim()
                .parse()
                .expect("--clients: numbers, comma-separated")
        })
        .collect();
    for kind in ["short", "128 tokens"] {
        let pool = Arc::new(inputs(kind, 8192));
        for batch in [1usize, 32] {
            for &c in &clients {
                let (lat, errors, first_error, secs) =
                    drive(&args.url, &pool, c, batch, args.seconds);
                let requests = lat.len() as f64 / secs;
                println!(
                    "{}",
                    serde_json::json!({
                        "server": args.name, "input": kind, "batch": batch, "clients": c,
                        "inputs_per_s": requests * batch as f64, "requests_per_s": requests,
                        "p50_ms": percentile(&lat, 0.5), "p99_ms": percentile(&lat, 0.99),
                        "errors": errors, "first_error": first_error,
                    })
                );
            }
        }
    }
}
