//! Load benchmark of `bert serve` on loopback: throughput and p50/p99 latency at 1, 8 and 64
//! concurrent clients (one input per request, as an API is called), for one-sentence and
//! 128-token inputs, against the library's own batch throughput on the same inputs. Bounded:
//! each case runs for `--seconds`.
//!
//!     cargo run --release --example bench_server -- --seconds 8

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::server::{ServerConfig, Task};
use bert_std::LoadOptions;
use examples::{exit_on_error, model_or_default};

#[derive(Parser)]
struct Args {
    /// Seconds per case.
    #[arg(long, default_value_t = 8.0)]
    seconds: f64,
    /// Model threads (0: one per core).
    #[arg(long, default_value_t = 0)]
    threads: usize,
}

fn inputs(kind: &str, n: usize) -> Vec<String> {
    let long = "the committee reviewed the proposal in detail and decided to postpone the vote \
                until the budget figures for next year were available to every member ";
    (0..n)
        .map(|i| match kind {
            "sentence" => format!("request {i}: how do I keep my basil plant alive indoors?"),
            _ => {
                let words: Vec<&str> = long.split(' ').cycle().take(110).collect();
                format!("{i} {}", words.join(" "))
            }
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args = Args::parse();
    let dir = exit_on_error(model_or_default(None, bert_std::fetch::MINILM));
    let options = LoadOptions {
        threads: args.threads,
        ..LoadOptions::default()
    };
    let lib = exit_on_error(SentenceEmbeddings::load(&dir, options));
    let model = exit_on_error(bert_std::server::load_model(Task::Embed, &dir, options));
    let config = ServerConfig {
        max_concurrent_requests: 1024,
        ..ServerConfig::default()
    };
    let server = exit_on_error(bert_std::server::Background::start(
        config,
        model,
        "minilm".into(),
    ));
    let url = format!("{}/embed", server.url);
    println!(
        "bert serve on loopback, all-MiniLM-L6-v2, {} model threads, {} s per case",
        lib.bert.threads(),
        args.seconds
    );
    println!(
        "| input | clients | requests/s | p50 ms | p99 ms | library batch/s | server / library |"
    );
    println!("|---|---|---|---|---|---|---|");
    for kind in ["sentence", "128 tokens"] {
        let pool = inputs(kind, 4096);
        let t = Instant::now();
        let n_lib = 512;
        exit_on_error(lib.embed(&pool[..n_lib]));
        let lib_rate = n_lib as f64 / t.elapsed().as_secs_f64();
        for clients in [1usize, 8, 64] {
            let done = Arc::new(AtomicBool::new(false));
            let pool = Arc::new(pool.clone());
            let threads: Vec<_> = (0..clients)
                .map(|c| {
                    let (done, pool, url) = (done.clone(), pool.clone(), url.clone());
                    std::thread::spawn(move || {
                        let agent = ureq::AgentBuilder::new()
                            .timeout(Duration::from_secs(60))
                            .build();
                        let mut lat = Vec::new();
                        let mut i = c;
                        while !done.load(Ordering::Relaxed) {
                            let t = Instant::now();
                            let body = serde_json::json!({"inputs": pool[i % pool.len()]});
                            let r = agent.post(&url).send_json(body);
                            if r.is_ok() {
                                lat.push(t.elapsed().as_secs_f64() * 1e3);
                            }
                            i += clients;
                        }
                        lat
                    })
                })
                .collect();
            let t = Instant::now();
            std::thread::sleep(Duration::from_secs_f64(args.seconds));
            done.store(true, Ordering::Relaxed);
            let mut lat: Vec<f64> = threads
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect();
            let secs = t.elapsed().as_secs_f64();
            lat.sort_by(f64::total_cmp);
            let rate = lat.len() as f64 / secs;
            println!(
                "| {kind} | {clients} | {rate:.1} | {:.1} | {:.1} | {lib_rate:.1} | {:.2} |",
                percentile(&lat, 0.5),
                percentile(&lat, 0.99),
                rate / lib_rate
            );
        }
    }
    exit_on_error(server.stop());
}
