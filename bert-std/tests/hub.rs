//! The hub download path (feature `hub`), end to end against a loopback HTTP server that serves
//! a real model directory the way the hub's `resolve` URLs do.
#![cfg(feature = "hub")]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::LoadOptions;
use common::*;

/// Serve `dir` as `/{repo}/resolve/main/{file}` on 127.0.0.1; 404 for anything else.
fn serve(dir: std::path::PathBuf, repo: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) <= 2 {
                    break;
                }
            }
            let path = request.split(' ').nth(1).unwrap_or("");
            let prefix = format!("/{repo}/resolve/main/");
            let body = path
                .strip_prefix(&prefix)
                .filter(|f| !f.contains(".."))
                .and_then(|f| std::fs::read(dir.join(f)).ok());
            let _ = match body {
                Some(b) => stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            b.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|_| stream.write_all(&b)),
                None => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    format!("http://{addr}")
}

#[test]
fn hub_download_gives_a_working_model_directory() {
    let endpoint = serve(minilm(), "sentence-transformers/all-MiniLM-L6-v2");
    let root = Scratch::new("hub");
    std::env::set_var("HF_ENDPOINT", &endpoint);
    let dir = bert_std::hub::download("hf:sentence-transformers/all-MiniLM-L6-v2", &root).unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "vocab.txt",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} downloaded");
    }
    let st = SentenceEmbeddings::load(&dir, LoadOptions::default()).unwrap();
    let local = SentenceEmbeddings::load(minilm(), LoadOptions::default()).unwrap();
    assert_eq!(
        st.embed(&["hello hub"]).unwrap(),
        local.embed(&["hello hub"]).unwrap()
    );
    // A repository without a config is a clear error, and leaves nothing behind.
    let e = bert_std::hub::download("hf:nobody/nothing", &root)
        .unwrap_err()
        .to_string();
    assert!(e.contains("no config.json"), "{e}");
    assert!(!root.join("hub/nobody--nothing--main").exists());
}
