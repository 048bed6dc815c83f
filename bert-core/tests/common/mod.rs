//! Shared helpers of bert-core's integration tests: where the real models are (fetched on first
//! use by scripts/fetch_models.py), golden files, and comparisons.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use bert_core::{BertConfig, Dtype, SafeTensors};

static FETCH: Mutex<()> = Mutex::new(());

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The folder of a pinned real model (`all-minilm-l6-v2`, `splade-tiny`), fetching it with
/// scripts/fetch_models.py if it is not there yet.
pub fn model_dir(name: &str) -> PathBuf {
    // The user's model cache, as bert-std's `fetch::models_root` finds it (bert-core cannot
    // depend on bert-std): `$BERT_MODELS_DIR`, else `$XDG_CACHE_HOME` or `~/.cache`.
    let base = std::env::var_os("BERT_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(std::env::temp_dir)
                .join("bert-rs/models")
        });
    let dir = base.join(name);
    if !dir.is_dir() {
        let _guard = FETCH.lock().unwrap_or_else(|e| e.into_inner());
        if !dir.is_dir() {
            let status = Command::new("python3")
                .arg(repo_root().join("scripts/fetch_models.py"))
                .arg("--dest")
                .arg(&base)
                .arg(name)
                .status()
                .expect("python3 is needed to fetch the test models");
            assert!(status.success(), "scripts/fetch_models.py {name} failed");
        }
    }
    dir
}

/// The bytes and parsed config of a model folder.
pub fn load_model_files(name: &str) -> (BertConfig, Vec<u8>) {
    let dir = model_dir(name);
    let config = BertConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap())
        .expect("config.json parses");
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    (config, bytes)
}

/// A file under bert-core/tests/goldens.
pub fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/goldens")
        .join(name)
}

/// A golden safetensors file, read whole.
pub struct Golden {
    bytes: Vec<u8>,
    /// The file's name under goldens/.
    pub name: String,
}

impl Golden {
    pub fn open(name: &str) -> Self {
        Golden {
            bytes: std::fs::read(golden_path(name)).unwrap(),
            name: name.to_string(),
        }
    }

    /// Every tensor's name.
    pub fn names(&self) -> impl Iterator<Item = String> + '_ {
        let st = self.view();
        st.names().map(String::from).collect::<Vec<_>>().into_iter()
    }

    fn view(&self) -> SafeTensors<'_> {
        SafeTensors::parse(&self.bytes).expect("golden parses")
    }

    pub fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let st = self.view();
        let t = st
            .tensor(name)
            .unwrap_or_else(|| panic!("golden {name} missing"));
        assert_eq!(t.dtype, Dtype::F32);
        let v = t
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (v, t.shape.to_vec())
    }

    pub fn i64(&self, name: &str) -> (Vec<i64>, Vec<usize>) {
        let st = self.view();
        let t = st
            .tensor(name)
            .unwrap_or_else(|| panic!("golden {name} missing"));
        assert_eq!(t.dtype, Dtype::I64);
        let v = t
            .data
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (v, t.shape.to_vec())
    }

    pub fn u32(&self, name: &str) -> (Vec<u32>, Vec<usize>) {
        let (v, shape) = self.i64(name);
        (
            v.into_iter().map(|x| u32::try_from(x).unwrap()).collect(),
            shape,
        )
    }

    /// (input_ids, token_type_ids, attention_mask, batch, seq) of a case.
    pub fn inputs(&self, case: &str) -> Inputs {
        let (ids, shape) = self.u32(&format!("{case}.input_ids"));
        let (types, _) = self.u32(&format!("{case}.token_type_ids"));
        let (mask, _) = self.u32(&format!("{case}.attention_mask"));
        Inputs {
            ids,
            types,
            mask,
            batch: shape[0],
            seq: shape[1],
        }
    }
}

pub struct Inputs {
    pub ids: Vec<u32>,
    pub types: Vec<u32>,
    pub mask: Vec<u32>,
    pub batch: usize,
    pub seq: usize,
}

impl Inputs {
    pub fn batch(&self) -> bert_core::Batch<'_> {
        bert_core::Batch::new(&self.ids, self.batch, self.seq)
            .with_token_type_ids(&self.types)
            .with_attention_mask(&self.mask)
    }
}

/// Largest absolute difference; panics on a length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Assert `got` matches `want` within `tol` (max abs diff), naming the quantity.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    let d = max_abs_diff(got, want);
    eprintln!("{what}: max abs diff {d:.3e} over {} values", got.len());
    assert!(d <= tol, "{what}: max abs diff {d} > {tol}");
}

/// The rows of a per-token tensor (`[tokens, width]`, flattened) at real (mask 1) tokens:
/// with padding removed, padding positions carry no HF-comparable value.
pub fn real_rows(x: &[f32], mask: &[u32]) -> Vec<f32> {
    let width = x.len() / mask.len();
    x.chunks_exact(width)
        .zip(mask)
        .filter(|(_, &m)| m != 0)
        .flat_map(|(row, _)| row.iter().copied())
        .collect()
}

/// Compare every gradient of `grads` with the golden's norm, sum and sampled values under
/// `prefix`; returns the worst max abs diff and where.
pub fn compare_grads(
    golden: &Golden,
    prefix: &str,
    grads: &bert_core::train::Grads,
    hidden: usize,
) -> (f32, String, usize) {
    // Every gradient's exact bits, folded into one FNV-1a digest: a refactor that must keep
    // the training math bit-identical compares these lines before and after, on one machine
    // (`cargo test -p bert-core --test golden_train --test golden_distill -- --nocapture
    // 2>&1 | grep 'gradient bits'`; the kernels, and so the bits, differ between CPUs).
    let digest = grads.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, (name, g)| {
        let bytes = name
            .bytes()
            .chain(g.iter().flat_map(|x| x.to_bits().to_le_bytes()));
        bytes.fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    });
    eprintln!("gradient bits ({}, {prefix}): {digest:016x}", golden.name);
    let mut worst = (0.0f32, String::new());
    let mut checked = 0;
    for (name, g) in grads.iter() {
        let norm: f64 = g
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            .sqrt();
        let sum: f64 = g.iter().map(|&x| x as f64).sum();
        let want_norm = golden.f32(&format!("{prefix}norm.{name}")).0[0] as f64;
        let want_sum = golden.f32(&format!("{prefix}sum.{name}")).0[0] as f64;
        let rel = |a: f64, b: f64| (a - b).abs() / b.abs().max(1e-3);
        assert!(
            rel(norm, want_norm) < 1e-4,
            "{name}: norm {norm} vs {want_norm}"
        );
        assert!(
            (sum - want_sum).abs() < 1e-4 + 1e-4 * want_sum.abs(),
            "{name}: sum {sum} vs {want_sum}"
        );
        let (vals, _) = golden.f32(&format!("{prefix}val.{name}"));
        let got: Vec<f32> = if name.ends_with("word_embeddings.weight") {
            let (rows, _) = golden.i64(&format!("{prefix}rows.{name}"));
            rows.iter()
                .flat_map(|&r| {
                    g[r as usize * hidden..(r as usize + 1) * hidden]
                        .iter()
                        .copied()
                })
                .collect()
        } else {
            let (idx, _) = golden.i64(&format!("{prefix}idx.{name}"));
            idx.iter().map(|&i| g[i as usize]).collect()
        };
        let d = max_abs_diff(&got, &vals);
        if d > worst.0 {
            worst = (d, name.to_string());
        }
        checked += got.len();
    }
    (worst.0, worst.1, checked)
}

/// Runs both closures at once on scoped OS threads.
pub struct ScopedJoin;

impl bert_core::Parallel for ScopedJoin {
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        std::thread::scope(|s| {
            s.spawn(a);
            b();
        });
    }
}
