//! The GPU forward against the CPU core on all-MiniLM-L6-v2 (real weights): max abs diff of the
//! hidden states ≤ 1e-3 (f32). Runs where `probe` finds a CUDA device; elsewhere it prints why
//! it skips, and checks that `GpuBert::new` fails with a typed error instead of panicking.

use bert_core::{Batch, BertConfig, BertModel, Weights};
use bert_gpu::{probe, GpuBert, GpuError};
use std::path::{Path, PathBuf};

/// all-MiniLM-L6-v2 from the user's model cache (where bert-std and scripts/fetch_models.py put
/// it), fetched by the script first when it is not there: a fresh machine runs this test too.
fn minilm() -> (BertConfig, Vec<u8>) {
    let root = std::env::var_os("BERT_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("bert-rs/models")
        });
    let dir = root.join("all-minilm-l6-v2");
    if !dir.is_dir() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/fetch_models.py");
        let status = std::process::Command::new("python3")
            .arg(script)
            .arg("--dest")
            .arg(&root)
            .arg("all-minilm-l6-v2")
            .status()
            .expect("python3 is needed to fetch the test model");
        assert!(
            status.success(),
            "scripts/fetch_models.py all-minilm-l6-v2 failed"
        );
    }
    let config = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    (BertConfig::from_json(&config).unwrap(), bytes)
}

#[test]
fn gpu_matches_cpu_or_fails_with_a_typed_error() {
    let (config, bytes) = minilm();
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertModel::load(&config, &weights).unwrap();
    let gpu = match GpuBert::new(&model) {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("skipping GPU parity: {e}");
            assert!(
                probe().is_err(),
                "a device was found, yet the upload failed: {e}"
            );
            assert!(matches!(
                e,
                GpuError::NoDriver | GpuError::NoDevice(_) | GpuError::NoCublas | GpuError::NoNvrtc
            ));
            return;
        }
    };
    // A padded batch of two sequences.
    let ids = [
        101, 7592, 2088, 2003, 1037, 3231, 102, 0, 101, 2023, 2003, 2178, 6251, 2055, 2019, 102,
    ];
    let mask = [1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1];
    let batch = Batch::new(&ids, 2, 8).with_attention_mask(&mask);
    let mut ws = model.workspace(2, 8).unwrap();
    ws.set_remove_padding(false);
    let cpu = model.forward(&batch, &mut ws).unwrap();
    let out = gpu.forward(&batch).unwrap();
    let diff = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    let d = diff(&out.last_hidden_state, cpu.last_hidden_state);
    eprintln!(
        "GPU {:?}: last_hidden_state max abs diff vs CPU {d:e}",
        gpu.device
    );
    assert!(d <= 1e-3, "{d}");
    let p = diff(
        out.pooler_output.as_deref().unwrap(),
        cpu.pooler_output.unwrap(),
    );
    assert!(p <= 1e-3, "pooler {p}");
}
