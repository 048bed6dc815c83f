//! Every crash the fuzz targets found, kept as a test: the inputs in `fuzz/regressions/TARGET/`
//! go through the same calls as their target, and each now gets an error or an answer, never a
//! panic (and, on the server, never a 500).
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bert_std::server::{load_model, Background, ServerConfig, Task};
use common::*;

fn regressions(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo_root().join("fuzz/regressions").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no regression inputs for {target}");
    files
}

/// `tokenizers` 0.22.2 panics on `{"decoder":` (loading), and on every encoding with a
/// template post-processor that names a special token it does not define (the file loads);
/// both are errors at load now.
#[test]
fn tokenizer_json() {
    for (path, bytes) in regressions("tokenizer_json") {
        let e = bert_std::Tokenizer::from_bytes(&bytes, &path).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("cannot load tokenizer") || e.contains("cannot encode a text"),
            "{}: {e}",
            path.display()
        );
    }
}

/// Truncation to fewer tokens than the special tokens took the whole input back; it is an
/// error now.
#[test]
fn tokenize() {
    let tok = bert_std::Tokenizer::from_dir(&minilm()).unwrap();
    for (path, bytes) in regressions("tokenize") {
        // The target's layout: a byte that picks the call (and the length), then UTF-8.
        let (how, text) = bytes.split_first().unwrap();
        let text = std::str::from_utf8(text).unwrap();
        let (a, b) = match text.split_once('\u{1}') {
            Some((a, b)) => (a, Some(b)),
            None => (text, None),
        };
        let max_len = [0, 1, 2, 3, 5, 8, 16, 64][usize::from(how >> 1) & 7];
        match tok.encode_truncated(a, b, max_len) {
            Ok(enc) => assert!(enc.len() <= max_len, "{}", path.display()),
            Err(e) => assert!(e.to_string().contains("special tokens"), "{e}"),
        }
    }
}

/// A JSON Lines classification example with an empty label (`"label": ""`) was kept, and a
/// model would have been trained with a nameless class; it is skipped (with its line) now. The
/// target's layout: the first byte picks the reader (0: CSV, 1: JSON Lines).
#[test]
fn training_data() {
    for (path, bytes) in regressions("training_data") {
        let (&which, rest) = bytes.split_first().unwrap();
        assert!(
            which % 7 < 2,
            "{}: not a classification input",
            path.display()
        );
        let loaded =
            bert_std::train::data::parse_classification(rest, which % 7 == 0, Path::new("data"))
                .unwrap();
        assert!(!loaded.examples.is_empty());
        assert!(
            loaded
                .examples
                .iter()
                .all(|e| !e.text.trim().is_empty() && !e.label.trim().is_empty()),
            "{}: {:?}",
            path.display(),
            loaded.examples
        );
        assert!(
            loaded.skipped.iter().any(|(line, _)| *line == 2),
            "the empty label's line is reported: {:?}",
            loaded.skipped
        );
    }
}

/// A shard map naming a weight file "" (the folder itself) passed the name check; it is a
/// clear error now. The target's layout: a byte whose bits say which optional files exist, then
/// config.json and those files, separated by 0xFF.
#[test]
fn model_dir() {
    const FILES: [&str; 4] = [
        "model.safetensors.index.json",
        "modules.json",
        "1_Pooling/config.json",
        "sentence_bert_config.json",
    ];
    for (path, bytes) in regressions("model_dir") {
        let scratch = Scratch::new("fuzz-regression-model-dir");
        std::fs::create_dir_all(scratch.join("1_Pooling")).unwrap();
        let (&present, rest) = bytes.split_first().unwrap();
        let mut parts = rest.split(|&b| b == 0xFF);
        std::fs::write(
            scratch.join("config.json"),
            parts.next().unwrap_or_default(),
        )
        .unwrap();
        for (i, name) in FILES.iter().enumerate() {
            if let Some(b) = parts.next().filter(|_| present & (1 << i) != 0) {
                std::fs::write(scratch.join(name), b).unwrap();
            }
        }
        match bert_std::ModelDir::open(scratch.path()) {
            Ok(dir) => assert!(
                dir.weight_files
                    .iter()
                    .all(|f| f.parent() == Some(scratch.path())),
                "{}: {:?}",
                path.display(),
                dir.weight_files
            ),
            Err(e) => assert!(e.to_string().contains("bad shard name"), "{e}"),
        }
    }
}

#[path = "../../fuzz/fuzz_targets/shared/servers.rs"]
mod servers;

/// A QA question that leaves no room for context made the `tokenizers` crate panic inside the
/// batcher (its thread died, and the server with it); now the request gets a 4xx and the
/// server keeps answering.
#[test]
fn server_requests() {
    let goldens = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/roundtrip");
    for (_, bytes) in regressions("server_requests") {
        let (&pick, body) = bytes.split_first().unwrap();
        let (server, route) = servers::pick(pick);
        let (task, dir) = servers::SERVERS[server];
        let model = load_model(task, &goldens.join(dir), Default::default()).unwrap();
        let config = ServerConfig {
            task,
            max_batch_tokens: 512,
            max_client_batch_size: 8,
            max_input_chars: 512,
            max_body_bytes: 4096,
            ..ServerConfig::default()
        };
        let server = Background::start(config, model, dir.into()).unwrap();
        let send = |body: &[u8]| -> u16 {
            match ureq::post(&format!("{}{route}", server.url))
                .timeout(Duration::from_secs(30))
                .set("content-type", "application/json")
                .send_bytes(body)
            {
                Ok(r) => r.status(),
                Err(ureq::Error::Status(code, _)) => code,
                Err(e) => panic!("{route}: {e}"),
            }
        };
        let status = send(body);
        assert!((400..500).contains(&status), "{route}: {status}");
        // The worker is alive: a good request still gets its answer.
        if task == Task::Qa {
            let ok = br#"{"question": "where?", "context": "John lives in Paris."}"#;
            assert_eq!(send(ok), 200);
        }
        server.stop().unwrap();
    }
}
