//! `bert serve` on loopback: results equal the library's, limits and errors are clear JSON,
//! overload is 429, slow or vanishing clients hurt no one, shutdown answers what is in flight.
//! Every loop here is bounded in count and time.
#![cfg(feature = "server")]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bert_std::pipelines::classification::TextClassification;
use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::pipelines::fill_mask::{FillMask, FillMaskOptions};
use bert_std::pipelines::qa::{QaOptions, QuestionAnswering};
use bert_std::server::{Background, ServerConfig, Task};
use bert_std::{LoadOptions, Pipeline};
use common::*;
use serde_json::{json, Value};

struct Server {
    url: String,
    inner: Option<Background>,
}

impl Server {
    fn start(config: ServerConfig, model: &Path) -> Server {
        let opts = LoadOptions {
            threads: 2,
            ..LoadOptions::default()
        };
        let model = bert_std::server::load_model(config.task, model, opts).unwrap();
        let inner = Background::start(config, model, "test-model".into()).unwrap();
        Server {
            url: inner.url.clone(),
            inner: Some(inner),
        }
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post_with(&self.url, path, body, None)
    }

    fn get(&self, path: &str) -> (u16, String) {
        match ureq::get(&format!("{}{path}", self.url)).call() {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        }
    }

    fn stop(mut self) {
        self.inner.take().unwrap().stop().unwrap();
    }
}

fn post_with(url: &str, path: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    let mut req = ureq::post(&format!("{url}{path}")).timeout(Duration::from_secs(60));
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    match req.send_json(body.clone()) {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("{e}"),
    }
}

/// Equal JSON, numbers compared as f32 (the server writes f32 values).
fn assert_json_f32_eq(a: &Value, b: &Value) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            assert_eq!(
                x.as_f64().unwrap() as f32,
                y.as_f64().unwrap() as f32,
                "{a} vs {b}"
            )
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).for_each(|(p, q)| assert_json_f32_eq(p, q));
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>());
            x.iter().for_each(|(k, v)| assert_json_f32_eq(v, &y[k]));
        }
        _ => assert_eq!(a, b),
    }
}

fn vectors(v: &Value) -> Vec<Vec<f32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn embed_config() -> ServerConfig {
    ServerConfig {
        task: Task::Embed,
        ..ServerConfig::default()
    }
}

fn library_embeddings() -> SentenceEmbeddings {
    let opts = LoadOptions {
        threads: 2,
        ..LoadOptions::default()
    };
    SentenceEmbeddings::load(minilm(), opts).unwrap()
}

#[test]
fn embeddings_equal_the_library_through_tei_and_openai_routes() {
    let server = Server::start(embed_config(), &minilm());
    let texts = [
        "A man is eating food.",
        "Someone is eating.",
        "The sky is blue today.",
    ];
    let want = library_embeddings().embed(&texts).unwrap();
    let (code, got) = server.post("/embed", &json!({"inputs": texts}));
    assert_eq!(code, 200, "{got}");
    assert_eq!(vectors(&got), want, "bit-identical for the same batch");
    let (code, got) = server.post("/embed", &json!({"inputs": texts[0]}));
    assert_eq!(code, 200);
    let single = library_embeddings().embed(&texts[..1]).unwrap();
    assert_eq!(vectors(&got), single);
    // OpenAI: float and base64.
    let (code, got) = server.post("/v1/embeddings", &json!({"input": texts, "model": "m"}));
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["object"], "list");
    assert_eq!(got["model"], "m");
    assert!(got["usage"]["prompt_tokens"].as_u64().unwrap() > 10);
    let first: Vec<f32> = got["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(first, want[0]);
    let (code, got) = server.post(
        "/v1/embeddings",
        &json!({"input": texts[1], "encoding_format": "base64"}),
    );
    assert_eq!(code, 200);
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(got["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let want1 = library_embeddings().embed(&texts[1..2]).unwrap();
    assert_eq!(decoded, want1[0]);
    server.stop();
}

#[test]
fn concurrent_clients_get_their_own_results() {
    let server = Arc::new(Server::start(embed_config(), &minilm()));
    let lib = Arc::new(library_embeddings());
    let handles: Vec<_> = (0..12)
        .map(|c| {
            let (server, lib) = (server.clone(), lib.clone());
            std::thread::spawn(move || {
                for r in 0..4 {
                    let texts: Vec<String> = (0..3)
                        .map(|i| format!("client {c} request {r} text {i} about something"))
                        .collect();
                    let (code, got) = server.post("/embed", &json!({"inputs": texts}));
                    assert_eq!(code, 200, "{got}");
                    let want = lib.embed(&texts).unwrap();
                    for (g, w) in vectors(&got).iter().zip(&want) {
                        let d = g
                            .iter()
                            .zip(w)
                            .map(|(a, b)| (a - b).abs())
                            .fold(0.0, f32::max);
                        assert!(d <= 1e-6, "max diff {d} whatever the batching");
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("bert_requests_total{route=\"/embed\",status=\"200\"} 48"),
        "{metrics}"
    );
    assert!(metrics.contains("bert_batch_inputs_bucket"));
    Arc::try_unwrap(server).ok().unwrap().stop();
}

#[test]
fn bad_requests_get_clear_json_errors() {
    let config = ServerConfig {
        max_client_batch_size: 4,
        max_body_bytes: 20_000,
        max_input_chars: 5_000,
        ..embed_config()
    };
    let server = Server::start(config, &minilm());
    let raw = |body: &str| match ureq::post(&format!("{}/embed", server.url))
        .set("Content-Type", "application/json")
        .send_string(body)
    {
        Ok(r) => (r.status(), r.into_json::<Value>().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_json::<Value>().unwrap()),
        Err(e) => panic!("{e}"),
    };
    let (code, e) = raw("{not json");
    assert_eq!(code, 400);
    assert_eq!(e["error_type"], "invalid_json", "{e}");
    let (code, e) = raw(r#"{"texts": ["wrong field"]}"#);
    assert_eq!(code, 400, "{e}");
    let (code, e) = server.post("/embed", &json!({"inputs": []}));
    assert_eq!((code, e["error"].as_str()), (422, Some("no inputs")));
    let (code, e) = server.post("/embed", &json!({"inputs": ["a", "b", "c", "d", "e"]}));
    assert_eq!(code, 413);
    assert!(
        e["error"]
            .as_str()
            .unwrap()
            .contains("--max-client-batch-size"),
        "{e}"
    );
    let (code, e) = server.post("/embed", &json!({"inputs": ["x".repeat(6_000)]}));
    assert_eq!(code, 413, "{e}");
    let (code, e) = server.post("/embed", &json!({"inputs": ["y ".repeat(15_000)]}));
    assert_eq!(code, 413, "oversized body: {e}");
    assert_eq!(e["error_type"], "validation");
    let long = "word ".repeat(300);
    let (code, e) = server.post("/embed", &json!({"inputs": [long]}));
    assert_eq!(code, 413);
    assert!(e["error"].as_str().unwrap().contains("truncate"), "{e}");
    let (code, _) = server.post("/embed", &json!({"inputs": [long], "truncate": true}));
    assert_eq!(code, 200);
    let (code, e) = server.post("/embed", &json!({"inputs": ["  "]}));
    assert_eq!(code, 422, "{e}");
    let (code, e) = server.post("/fill-mask", &json!({"inputs": "a [MASK]"}));
    assert_eq!(code, 404);
    assert!(e["error"].as_str().unwrap().contains("--task embed"), "{e}");
    let (code, info) = server.get("/info");
    assert_eq!(code, 200);
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(info["max_client_batch_size"], 4);
    assert_eq!(
        info["max_input_length"], 256,
        "MiniLM's sentence-transformers limit"
    );
    assert_eq!(server.get("/health"), (200, "ok".to_string()));
    server.stop();
}

#[test]
fn bearer_auth_when_a_key_is_set() {
    let config = ServerConfig {
        api_key: Some("s3cret".into()),
        ..embed_config()
    };
    let server = Server::start(config, &minilm());
    let body = json!({"inputs": "hello"});
    let (code, e) = post_with(&server.url, "/embed", &body, None);
    assert_eq!(code, 401);
    assert_eq!(e["error_type"], "unauthorized");
    assert_eq!(
        post_with(&server.url, "/embed", &body, Some("wrong")).0,
        401
    );
    assert_eq!(
        post_with(&server.url, "/embed", &body, Some("s3cret")).0,
        200
    );
    assert_eq!(server.get("/health").0, 200, "health stays open");
    assert_eq!(server.get("/metrics").0, 401);
    server.stop();
}

#[test]
fn overload_is_429_and_no_answered_request_is_wrong() {
    let config = ServerConfig {
        max_concurrent_requests: 1,
        max_batch_tokens: 2048,
        ..embed_config()
    };
    let server = Arc::new(Server::start(config, &minilm()));
    let text = "a sentence that is long enough to keep the model busy for a while ".repeat(6);
    let handles: Vec<_> = (0..16)
        .map(|c| {
            let server = server.clone();
            let texts: Vec<String> = (0..8).map(|i| format!("{c} {i} {text}")).collect();
            std::thread::spawn(move || {
                let (code, got) = server.post("/embed", &json!({"inputs": texts}));
                match code {
                    200 => assert_eq!(vectors(&got).len(), 8),
                    429 => assert_eq!(got["error_type"], "overloaded"),
                    other => panic!("{other}: {got}"),
                }
                code
            })
        })
        .collect();
    let codes: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let overloaded = codes.iter().filter(|&&c| c == 429).count();
    assert!(overloaded > 0, "{codes:?}");
    assert!(codes.contains(&200), "{codes:?}");
    Arc::try_unwrap(server).ok().unwrap().stop();
}

#[test]
fn slow_and_vanishing_clients_do_not_block_others() {
    let server = Server::start(embed_config(), &minilm());
    let addr = server.url.trim_start_matches("http://").to_string();
    // A client that sends half a body and waits.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(
        b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"inputs\": [\"half",
    )
    .unwrap();
    // Clients that send a whole request and hang up before the answer.
    for _ in 0..4 {
        let mut gone = TcpStream::connect(&addr).unwrap();
        let body = r#"{"inputs": ["nobody will read this answer"]}"#;
        write!(
            gone,
            "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        drop(gone);
    }
    let started = std::time::Instant::now();
    let (code, _) = server.post("/embed", &json!({"inputs": ["still served"]}));
    assert_eq!(code, 200);
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(slow);
    let (code, _) = server.post("/embed", &json!({"inputs": ["and again"]}));
    assert_eq!(code, 200);
    server.stop();
}

#[test]
fn shutdown_answers_the_requests_in_flight() {
    let server = Server::start(embed_config(), &minilm());
    let url = server.url.clone();
    let text = "a long enough sentence for the model to take its time ".repeat(8);
    let (sent_tx, sent_rx) = std::sync::mpsc::channel();
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let (url, sent_tx) = (url.clone(), sent_tx.clone());
            let texts: Vec<String> = (0..16).map(|i| format!("{c} {i} {text}")).collect();
            std::thread::spawn(move || {
                // Write the request by hand so that "sent" means on the wire.
                let addr = url.trim_start_matches("http://");
                let mut s = TcpStream::connect(addr).unwrap();
                let body = json!({"inputs": texts}).to_string();
                write!(
                    s,
                    "POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
                sent_tx.send(()).unwrap();
                let mut answer = String::new();
                s.read_to_string(&mut answer).unwrap();
                answer
            })
        })
        .collect();
    for _ in 0..6 {
        sent_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    server.stop(); // returns once every connection is done
    for c in clients {
        let answer = c.join().unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{}",
            &answer[..answer.len().min(200)]
        );
    }
    assert!(TcpStream::connect(url.trim_start_matches("http://")).is_err());
}

#[test]
fn fill_mask_rerank_and_qa_routes_equal_the_library() {
    let fm_server = Server::start(
        ServerConfig {
            task: Task::FillMask,
            ..ServerConfig::default()
        },
        &splade(),
    );
    let texts = ["Paris is the [MASK] of France.", "a [MASK] of tea"];
    let (code, got) = fm_server.post("/fill-mask", &json!({"inputs": texts, "top_k": 3}));
    assert_eq!(code, 200, "{got}");
    let lib = FillMask::load(splade(), LoadOptions::default()).unwrap();
    let want = lib.run(&texts, &FillMaskOptions { top_k: 3 }).unwrap();
    assert_json_f32_eq(&got, &serde_json::to_value(&want).unwrap());
    fm_server.stop();

    let rr = Server::start(
        ServerConfig {
            task: Task::Rerank,
            ..ServerConfig::default()
        },
        &seeded_dir("seqcls"),
    );
    let passages = [
        "Paris is in France.",
        "Cats sleep a lot.",
        "France's capital is Paris.",
    ];
    let (code, got) = rr.post(
        "/rerank",
        &json!({"query": "capital of France", "texts": passages, "return_text": true}),
    );
    assert_eq!(code, 200, "{got}");
    let ranked = got.as_array().unwrap();
    assert_eq!(ranked.len(), 3);
    let scores: Vec<f64> = ranked
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "sorted: {scores:?}"
    );
    let clf = TextClassification::load(seeded_dir("seqcls"), LoadOptions::default()).unwrap();
    let last = clf.bert.dir.config.id2label.last().unwrap().clone();
    for r in ranked {
        let i = r["index"].as_u64().unwrap() as usize;
        assert_eq!(r["text"], passages[i]);
        let labels = clf
            .run_one(
                ("capital of France", Some(passages[i])),
                &Default::default(),
            )
            .unwrap();
        let want = labels.iter().find(|l| l.label == last).unwrap().score;
        assert!((r["score"].as_f64().unwrap() as f32 - want).abs() < 1e-6);
    }
    let (code, got) = rr.post(
        "/predict",
        &json!({"inputs": ["capital of France", "Paris"]}),
    );
    assert_eq!(code, 200, "{got}");
    assert!(
        got.as_array().unwrap()[0]["label"].is_string(),
        "a pair gives one label list"
    );
    rr.stop();

    let qa = Server::start(
        ServerConfig {
            task: Task::Qa,
            ..ServerConfig::default()
        },
        &seeded_dir("qa"),
    );
    let (q, c) = (
        "Who wrote the book?",
        "The book was written by a retired sailor in 1952.",
    );
    let (code, got) = qa.post("/qa", &json!({"question": q, "context": c, "top_k": 2}));
    assert_eq!(code, 200, "{got}");
    let lib = QuestionAnswering::load(seeded_dir("qa"), LoadOptions::default()).unwrap();
    let want = lib
        .run_one(
            (q, c),
            &QaOptions {
                top_k: 2,
                ..QaOptions::default()
            },
        )
        .unwrap();
    assert_json_f32_eq(&got, &serde_json::to_value(&want).unwrap());
    qa.stop();
}
