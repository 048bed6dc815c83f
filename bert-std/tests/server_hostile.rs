//! `bert serve` under hostile clients, while well-behaved clients keep asking: bodies over the
//! limit (declared, and streamed without a length), deeply nested JSON, invalid UTF-8, a
//! 100,000-item batch, empty and 1 MB strings, clients sending a byte at a time (head and body),
//! thousands of idle connections, more connections than the cap, clients that hang up
//! mid-request. Each hostile request gets its 4xx, or its connection closed, within a bounded
//! time; the process's memory stays bounded; and every answer the good clients get equals the
//! one they got before it all began, bit for bit.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bert_std::server::{load_model, Background, ServerConfig, Task};

const IDLE: Duration = Duration::from_secs(1);

fn tiny_embedder(config: ServerConfig) -> Background {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/roundtrip/base");
    let model = load_model(Task::Embed, &dir, Default::default()).unwrap();
    Background::start(config, model, "tiny".into()).unwrap()
}

fn config() -> ServerConfig {
    ServerConfig {
        task: Task::Embed,
        idle_timeout: IDLE,
        body_timeout: IDLE,
        ..ServerConfig::default()
    }
}

fn addr(server: &Background) -> String {
    server.url.trim_start_matches("http://").to_string()
}

/// Send raw bytes on a new connection; the status of the answer (0 if the connection was
/// closed without one) and how long it took.
fn raw(addr: &str, request: &[u8]) -> (u16, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let status = std::str::from_utf8(&answer)
        .ok()
        .and_then(|a| a.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, started.elapsed())
}

fn post(addr: &str, body: &[u8]) -> (u16, Duration) {
    let mut request = format!(
        "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    raw(addr, &request)
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The open-files limit raised to what the test needs (the hard limit permitting).
fn room_for_connections(want: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the plain struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            let target = (2 * want as u64 + 256).min(lim.rlim_max);
            if lim.rlim_cur < target {
                lim.rlim_cur = target;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        }
    }
    // Both ends of every connection are in this process.
    want.min((lim.rlim_cur as usize).saturating_sub(256) / 2)
}

const GOOD: &[u8] = br#"{"inputs": ["a well-behaved client", "asks the same thing again"]}"#;

/// The answer body of a good request.
fn good_answer(url: &str) -> String {
    ureq::post(&format!("{url}/embed"))
        .timeout(Duration::from_secs(30))
        .set("content-type", "application/json")
        .send_bytes(GOOD)
        .unwrap()
        .into_string()
        .unwrap()
}

#[test]
fn hostile_clients_get_bounded_answers_while_good_ones_stay_exact() {
    let idle_connections = room_for_connections(3000);
    assert!(idle_connections >= 1000, "too few file descriptors");
    let server = tiny_embedder(config());
    let addr = addr(&server);
    let expected = good_answer(&server.url);
    let rss_before = rss_mb();

    // Good clients, all along (told to stop however the scope ends: a failed assertion must
    // fail the test, not leave it waiting for them).
    let stop = AtomicBool::new(false);
    let answered = AtomicUsize::new(0);
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        for _ in 0..3 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    assert_eq!(good_answer(&server.url), expected, "a good answer changed");
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            });
        }

        let bounded = |what: &str, (status, took): (u16, Duration), want: &[u16]| {
            assert!(
                want.contains(&status),
                "{what}: status {status}, expected {want:?}"
            );
            assert!(took < Duration::from_secs(5), "{what}: took {took:?}");
        };
        // Over the size limit: declared (nothing read), and streamed without a length.
        bounded(
            "declared 10 MB",
            raw(
                &addr,
                b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n",
            ),
            &[413],
        );
        let mut chunked = b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
        for _ in 0..40 {
            chunked.extend_from_slice(b"10000\r\n");
            chunked.extend(std::iter::repeat_n(b' ', 0x10000));
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        bounded("streamed 2.5 MB", raw(&addr, &chunked), &[413]);
        // Malformed bodies.
        let nested = "[".repeat(100_000);
        bounded("nested JSON", post(&addr, nested.as_bytes()), &[400]);
        bounded(
            "invalid UTF-8",
            post(&addr, b"{\"inputs\": \"\xff\xfe\"}"),
            &[400],
        );
        // Too many, too little, too much.
        let many = format!("{{\"inputs\": [{}\"a\"]}}", "\"a\",".repeat(99_999));
        bounded("100,000 inputs", post(&addr, many.as_bytes()), &[413, 422]);
        bounded("empty input", post(&addr, br#"{"inputs": ""}"#), &[422]);
        let huge = format!("{{\"inputs\": \"{}\"}}", "word ".repeat(200_000));
        bounded("1 MB input", post(&addr, huge.as_bytes()), &[413, 422]);

        // A byte at a time: the head is cut off after the idle timeout, the body gets 408.
        let started = Instant::now();
        let mut slow = TcpStream::connect(&addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut closed = false;
        for b in b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".iter() {
            if slow.write_all(&[*b]).is_err() {
                closed = true;
                break;
            }
            let mut buf = [0u8; 256];
            match slow.read(&mut buf) {
                Ok(_) => {
                    closed = true;
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(closed, "a head sent a byte at a time was never cut off");
        assert!(started.elapsed() < IDLE * 4, "{:?}", started.elapsed());

        let started = Instant::now();
        let mut slow_body = TcpStream::connect(&addr).unwrap();
        slow_body
            .write_all(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
            .unwrap();
        slow_body
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut answer = Vec::new();
        for b in b"{\"inputs\": \"a byte at a time".iter() {
            if slow_body.write_all(&[*b]).is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            if let Ok(n) = slow_body.read(&mut buf) {
                answer.extend_from_slice(&buf[..n]);
                break;
            }
        }
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(started.elapsed() < IDLE * 4, "{:?}", started.elapsed());

        // Clients that hang up mid-request, and thousands of idle connections.
        for _ in 0..20 {
            let mut gone = TcpStream::connect(&addr).unwrap();
            let _ = gone
                .write_all(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"inp");
        }
        let idle: Vec<TcpStream> = (0..idle_connections)
            .map(|_| TcpStream::connect(&addr).unwrap())
            .collect();
        let rss_with_idle = rss_mb();
        std::thread::sleep(IDLE * 3);
        let mut closed = 0;
        for mut c in idle {
            c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
            let mut buf = [0u8; 16];
            if matches!(c.read(&mut buf), Ok(0) | Err(_)) {
                closed += 1;
            }
        }
        // Every idle connection was closed by the server (read sees the end, not a timeout).
        assert_eq!(closed, idle_connections, "idle connections left open");
        let rss_after = rss_mb();
        eprintln!(
            "RSS: {rss_before:.0} MB before, {rss_with_idle:.0} MB with {idle_connections} idle \
             connections, {rss_after:.0} MB after; {} good answers meanwhile",
            answered.load(Ordering::Relaxed)
        );
        assert!(
            rss_with_idle - rss_before < 300.0,
            "memory grew without bound"
        );
    });
    assert!(answered.load(Ordering::Relaxed) > 10);
    assert_eq!(good_answer(&server.url), expected);
    server.stop().unwrap();
}

#[test]
fn connections_over_the_cap_are_closed_at_once_and_the_server_recovers() {
    let server = tiny_embedder(ServerConfig {
        max_connections: 50,
        ..config()
    });
    let addr = addr(&server);
    let expected = good_answer(&server.url);
    let held: Vec<TcpStream> = (0..50)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // The 51st is taken by the kernel and closed by the server at once.
    let started = Instant::now();
    let (status, _) = post(&addr, GOOD);
    assert_eq!(status, 0, "a connection over the cap was served");
    assert!(started.elapsed() < Duration::from_secs(2));
    let metrics = ureq::get(&format!("{}/metrics", server.url)).call();
    assert!(metrics.is_err(), "over the cap, /metrics too is refused");
    drop(held);
    // Once they are gone, service resumes, with the same answers.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(good_answer(&server.url), expected);
    let metrics = ureq::get(&format!("{}/metrics", server.url))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let refused: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("bert_connections_refused_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(refused >= 2.0, "{metrics}");
    server.stop().unwrap();
}
