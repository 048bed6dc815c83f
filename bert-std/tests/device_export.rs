//! `bert export-device`: a model directory into the one blob a microcontroller reads in place
//! (`bert_core::device_blob`). Checked on the distilled student's golden (a real
//! `bert train distill` output) and all-MiniLM-L6-v2: the blob's tokenizer gives the host
//! tokenizer's ids, its low-RAM embedding points where the sentence-transformers pipeline's
//! does, and bad input is an error that leaves the output file alone.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use bert_core::device_blob::DeviceModel;
use bert_core::model::low_ram::LowRamPlan;
use bert_std::pipelines::embeddings::{cosine, SentenceEmbeddings};
use bert_std::{LoadOptions, Pipeline, Tokenizer};

const TEXTS: [&str; 4] = [
    "turn on the lights in the kitchen",
    "Is the Café open on Sundays? ¿Sí!",
    "what is the weather like in 東京 today",
    "lock the door, please!",
];

fn golden_student() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/distill/student")
}

fn export(dir: &Path, out: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(["export-device".as_ref(), dir.as_os_str(), out.as_os_str()])
        .output()
        .unwrap()
}

/// Exports `dir` with the CLI into a temporary file and returns the blob's bytes.
fn exported(dir: &Path) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("model.bin");
    let run = export(dir, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    std::fs::read(&out).unwrap()
}

/// The blob's ids and embeddings against the host pipeline's, for a directory: cosines between
/// sentences within `1 − min_cosine` of the f32 pipeline's (the blob's weights are int8;
/// measured: 1.3e-4 for the golden student, 7e-3 for MiniLM).
fn check_model(dir: &Path, min_cosine: f32) {
    let blob = exported(dir);
    let device = DeviceModel::parse(&blob).unwrap();
    let host = Tokenizer::from_dir(dir).unwrap();
    let st = SentenceEmbeddings::load(dir, LoadOptions::default()).unwrap();
    let encoder = device.encoder().unwrap();
    let mut arena = vec![0.0; LowRamPlan::of(&device.config, 32).arena_len()];
    let mut pairs = Vec::new();
    for text in TEXTS {
        let want = host.encode(text, None).unwrap();
        assert_eq!(
            device.tokenizer.encode(text, None).ids,
            want.get_ids(),
            "{text:?}"
        );
        let mean = device
            .embed(&encoder, text, 32, &mut arena)
            .unwrap()
            .to_vec();
        pairs.push((mean, st.run_one(text, &()).unwrap()));
    }
    // Cosines between sentences agree (the student's Dense is orthonormal, so its 64-wide mean
    // and the pipeline's 384-wide embedding have the same angles; MiniLM has no Dense).
    for (a, b) in [(0, 1), (0, 2), (1, 2), (2, 3)] {
        let device = cosine(&pairs[a].0, &pairs[b].0);
        let pipeline = cosine(&pairs[a].1, &pairs[b].1);
        assert!(
            (device - pipeline).abs() < 1.0 - min_cosine,
            "texts {a}, {b}: device {device}, pipeline {pipeline}"
        );
    }
}

#[test]
fn the_golden_student_exports_and_matches_the_pipeline() {
    check_model(&golden_student(), 0.999);
}

#[test]
fn minilm_exports_and_matches_the_pipeline() {
    check_model(&common::minilm(), 0.98);
}

#[test]
fn splade_tiny_exports_from_its_tokenizer_json() {
    // SPLADE-tiny has no vocab.txt: the vocabulary and options come from tokenizer.json.
    let dir = common::splade();
    let blob = exported(&dir);
    let device = DeviceModel::parse(&blob).unwrap();
    let host = Tokenizer::from_dir(&dir).unwrap();
    for text in TEXTS {
        let want = host.encode(text, None).unwrap();
        assert_eq!(
            device.tokenizer.encode(text, None).ids,
            want.get_ids(),
            "{text:?}"
        );
    }
}

#[test]
fn a_directory_without_a_vocabulary_is_an_error_and_the_output_stays() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(golden_student().join(f), dir.join(f)).unwrap();
    }
    let out = tmp.path().join("model.bin");
    std::fs::write(&out, b"keep me").unwrap();
    let run = export(&dir, &out);
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("no vocab.txt or tokenizer.json"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
}
