//! Soak benchmark of `bert serve`: the `bert` binary serving all-MiniLM-L6-v2 in a process of
//! its own, kept at saturation by `--clients` clients (short sentences, 128-token passages and
//! small batches) for `--minutes`, its resident memory (VmRSS) sampled every
//! `--sample-seconds`. Writes `OUT/soak.csv`, `OUT/soak.svg` (RSS and requests/s over time)
//! and `OUT/soak.md`, and fails if the RSS grew by more than 5% after the warm-up (the first
//! sixth of the run), or if any answer was not a 200 with the expected vector.
//!
//!     cargo build --release --bin bert --example soak_server
//!     target/release/examples/soak_server --minutes 30 --clients 64

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

use examples::{exit_on_error, model_or_default};

#[derive(Parser)]
struct Args {
    /// Length of the run.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 64)]
    clients: usize,
    /// Seconds between RSS samples.
    #[arg(long, default_value_t = 10.0)]
    sample_seconds: f64,
    /// The `bert` binary (default: beside this one's folder, target/release/bert).
    #[arg(long)]
    bert: Option<PathBuf>,
    /// Where the report goes.
    #[arg(long, default_value = "target/soak")]
    out: PathBuf,
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The server's count of model workspaces built (grown) so far, from `/metrics`.
fn workspaces_built(agent: &ureq::Agent, url: &str) -> u64 {
    agent
        .get(&format!("{url}/metrics"))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("bert_workspaces_built_total "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(18080)
}

fn start_server(bert: &PathBuf, port: u16) -> Child {
    let dir = exit_on_error(model_or_default(None, bert_std::fetch::MINILM));
    let child = Command::new(bert)
        .args(["serve", "--port", &port.to_string(), "--model"])
        .arg(dir)
        .args(["--max-concurrent-requests", "1024"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn();
    match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start {}: {e}", bert.display());
            std::process::exit(1);
        }
    }
}

/// Request bodies the clients cycle through.
fn bodies() -> Vec<String> {
    let passage = "the committee reviewed the proposal in detail and decided to postpone the vote \
                   until the budget figures for next year were available to every member ";
    let long: Vec<&str> = passage.split(' ').cycle().take(110).collect();
    let long = long.join(" ");
    (0..64)
        .map(|i| match i % 4 {
            0 | 1 => format!("{{\"inputs\": \"request {i}: how do I keep basil alive indoors?\"}}"),
            2 => format!("{{\"inputs\": \"{i} {long}\"}}"),
            _ => format!("{{\"inputs\": [\"first {i}\", \"second {i}\", \"third\", \"fourth\"]}}"),
        })
        .collect()
}

fn main() {
    let args = Args::parse();
    let bert = args.bert.clone().unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("own path");
        exe.parent()
            .and_then(|p| p.parent())
            .map_or_else(|| PathBuf::from("bert"), |d| d.join("bert"))
    });
    let port = free_port();
    let mut server = start_server(&bert, port);
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while ureq::get(&format!("{url}/health")).call().is_err() {
        if started.elapsed() > Duration::from_secs(120)
            || server.try_wait().ok().flatten().is_some()
        {
            eprintln!("error: the server did not come up");
            std::process::exit(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build();
    let probe = r#"{"inputs": "the probe sentence, asked all along"}"#;
    let post = |agent: &ureq::Agent, body: &str| -> Result<String, String> {
        agent
            .post(&format!("{url}/embed"))
            .set("content-type", "application/json")
            .send_string(body)
            .map_err(|e| e.to_string())
            .and_then(|r| r.into_string().map_err(|e| e.to_string()))
    };
    let expected = post(&agent, probe).expect("the first probe");
    let bodies = bodies();
    let (done, failed, stop) = (AtomicU64::new(0), AtomicU64::new(0), AtomicBool::new(false));
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let every = Duration::from_secs_f64(args.sample_seconds);
    let mut samples: Vec<(f64, f64, u64)> = Vec::new();
    eprintln!(
        "soak: {} clients for {:.1} min against {url} (server pid {})",
        args.clients,
        args.minutes,
        server.id()
    );
    std::thread::scope(|s| {
        for c in 0..args.clients {
            let (bodies, done, failed, stop, agent) =
                (&bodies, &done, &failed, &stop, agent.clone());
            let post = &post;
            s.spawn(move || {
                let mut i = c;
                while !stop.load(Ordering::Relaxed) {
                    match post(&agent, &bodies[i % bodies.len()]) {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            eprintln!("client {c}: {e}");
                            failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                    i += args.clients;
                }
            });
        }
        let start = Instant::now();
        while start.elapsed() < total {
            std::thread::sleep(every);
            let t = start.elapsed().as_secs_f64();
            let (rss, n) = (rss_mb(server.id()), done.load(Ordering::Relaxed));
            let workspaces = workspaces_built(&agent, &url);
            if post(&agent, probe).as_deref() != Ok(expected.as_str()) {
                failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("the probe's answer changed at {t:.0} s");
            }
            eprintln!("{t:7.0} s  RSS {rss:7.1} MB  {n} requests  {workspaces} workspaces built");
            samples.push((t, rss, n));
        }
        stop.store(true, Ordering::Relaxed);
    });
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    report(&args, &samples, failed.load(Ordering::Relaxed));
}

fn report(args: &Args, samples: &[(f64, f64, u64)], failed: u64) {
    std::fs::create_dir_all(&args.out).expect("report folder");
    // Levels, not single samples (the allocator returns memory in steps): the mean RSS over
    // the sixth of the run after the warm-up (the first sixth), and over the last sixth.
    let sixth = (samples.len() / 6).max(1);
    let mean =
        |part: &[(f64, f64, u64)]| part.iter().map(|s| s.1).sum::<f64>() / part.len().max(1) as f64;
    let warm = sixth.min(samples.len());
    let base = mean(&samples[warm..(2 * sixth).min(samples.len())]);
    let last = mean(&samples[samples.len().saturating_sub(sixth)..]);
    let peak = samples[warm..].iter().map(|s| s.1).fold(0.0, f64::max);
    let growth = if base > 0.0 {
        (last - base) / base
    } else {
        0.0
    };
    let peak_growth = if base > 0.0 {
        (peak - base) / base
    } else {
        0.0
    };
    let seconds = samples.last().map_or(1.0, |s| s.0);
    let requests = samples.last().map_or(0, |s| s.2);
    let mut csv = String::from("seconds,rss_mb,requests\n");
    for (t, rss, n) in samples {
        csv += &format!("{t:.0},{rss:.1},{n}\n");
    }
    std::fs::write(args.out.join("soak.csv"), csv).expect("csv");
    // The plot: RSS (left axis) and requests/s per interval (right), over time.
    let (w, h, pad) = (720.0, 320.0, 50.0);
    let max_rss = samples.iter().map(|s| s.1).fold(1.0, f64::max) * 1.1;
    let rates: Vec<f64> = samples
        .iter()
        .scan((0.0, 0u64), |prev, &(t, _, n)| {
            let r = (n - prev.1) as f64 / (t - prev.0).max(1e-9);
            *prev = (t, n);
            Some(r)
        })
        .collect();
    let max_rate = rates.iter().copied().fold(1.0, f64::max) * 1.1;
    let x = |t: f64| pad + (w - 2.0 * pad) * t / seconds.max(1.0);
    let line = |ys: Vec<f64>, max: f64| -> String {
        samples
            .iter()
            .zip(ys)
            .map(|(s, y)| format!("{:.1},{:.1}", x(s.0), h - pad - (h - 2.0 * pad) * y / max))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
         <text x=\"{pad}\" y=\"20\" font-size=\"13\">bert serve soak: {} clients, {:.0} min; RSS (blue, 0-{max_rss:.0} MB), requests/s (grey, 0-{max_rate:.0})</text>\
         <polyline fill=\"none\" stroke=\"#999\" stroke-width=\"1\" points=\"{}\"/>\
         <polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/></svg>",
        args.clients,
        seconds / 60.0,
        line(rates.clone(), max_rate),
        line(samples.iter().map(|s| s.1).collect(), max_rss),
        h - pad,
        w - pad,
        h - pad,
    );
    std::fs::write(args.out.join("soak.svg"), svg).expect("svg");
    let mut md = format!(
        "{} clients, {:.0} s, {requests} requests ({:.1}/s), {failed} failed.\n\n\
         Mean RSS over the sixth of the run after the warm-up (from {:.0} s): {base:.1} MB; \
         over the last sixth {last:.1} MB ({:+.2}%); highest sample {peak:.1} MB ({:+.2}%).\n\n\
         | minute | RSS (MB) | requests |\n|---|---|---|\n",
        args.clients,
        seconds,
        requests as f64 / seconds.max(1e-9),
        samples.get(warm).map_or(0.0, |s| s.0),
        growth * 100.0,
        peak_growth * 100.0,
    );
    let per_minute = (60.0 / args.sample_seconds).round().max(1.0) as usize;
    for s in samples.iter().step_by(per_minute) {
        md += &format!("| {:.1} | {:.1} | {} |\n", s.0 / 60.0, s.1, s.2);
    }
    std::fs::write(args.out.join("soak.md"), &md).expect("md");
    println!("{md}");
    if failed > 0 || growth > 0.05 {
        eprintln!(
            "FAILED: {failed} failed requests, RSS growth {:+.2}% (peak {:+.2}%)",
            growth * 100.0,
            peak_growth * 100.0
        );
        std::process::exit(1);
    }
}
