//! The low-RAM forward (`bert_core::model::low_ram`) against the normal forward on real
//! weights: all-MiniLM-L6-v2 in f32 and int8, and the distilled student that
//! `bert train distill` wrote (bert-std/tests/goldens/distill/student) in f32 and int8, at 64
//! tokens (the student's 32 positions), from an arena of exactly the planned size.
mod common;

use bert_core::model::low_ram::{sentence_embedding, LowRamPlan};
use bert_core::quantize::{quantize, QuantDtype};
use bert_core::{Batch, BertConfig, BertModel, Weights};
use common::*;

/// `[CLS]`, ids spread over the vocabulary, `[SEP]`: 64 tokens, or as many as the model's
/// positions allow.
fn ids(config: &BertConfig) -> Vec<u32> {
    let n = config.max_position_embeddings.min(64);
    let spread = config.vocab_size - 1000;
    let mut ids = vec![101];
    ids.extend((0..n - 2).map(|i| (1000 + i * 97 % spread) as u32));
    ids.push(102);
    ids
}

/// The largest difference of the low-RAM forward's hidden states and mean from the normal
/// forward's.
fn difference(config: &BertConfig, file: &[u8]) -> (f32, f32) {
    let weights = Weights::from_buffers(&[file]).unwrap();
    let model = BertModel::load(config, &weights).unwrap();
    let ids = ids(config);
    let mut ws = model.workspace(1, ids.len()).unwrap();
    let want = model.forward(&Batch::single(&ids), &mut ws).unwrap();
    let want = want.last_hidden_state.to_vec();
    let h = config.hidden_size;
    let mean: Vec<f32> = (0..h)
        .map(|c| want.chunks(h).map(|r| r[c]).sum::<f32>() / ids.len() as f32)
        .collect();
    let mut arena = vec![0.0; LowRamPlan::of(config, ids.len()).arena_len()];
    let got = sentence_embedding(&model, &ids, &mut arena).unwrap();
    (
        max_abs_diff(got.last_hidden_state, &want),
        max_abs_diff(got.mean, &mean),
    )
}

fn check(what: &str, config: &BertConfig, f32_file: &[u8]) {
    let (hidden, mean) = difference(config, f32_file);
    eprintln!("{what} f32: hidden {hidden:.2e}, mean {mean:.2e}");
    assert!(
        hidden <= 1e-4 && mean <= 1e-5,
        "{what} f32: {hidden} / {mean}"
    );
    let int8 = quantize(&[f32_file], QuantDtype::Int8).unwrap();
    let (hidden, mean) = difference(config, &int8);
    eprintln!("{what} int8: hidden {hidden:.2e}, mean {mean:.2e}");
    // The same int8 arithmetic (activations quantized alike, exact i32 sums), rescaled in
    // another order; where that moves an activation across a rounding boundary, it moves by
    // one int8 step. Measured on MiniLM: 8.3e-7 / 1.0e-7 with the portable kernels, 9.3e-3 /
    // 1.5e-4 with `--all-features` (the normal forward on the CPU's AVX-512 int8 kernels).
    assert!(
        hidden <= 3e-2 && mean <= 1e-3,
        "{what} int8: {hidden} / {mean}"
    );
}

#[test]
fn minilm_in_low_ram_gives_the_normal_forward() {
    let (config, bytes) = load_model_files("all-minilm-l6-v2");
    check("all-MiniLM-L6-v2", &config, &bytes);
}

#[test]
fn the_distilled_student_in_low_ram_gives_the_normal_forward() {
    let dir = repo_root().join("bert-std/tests/goldens/distill/student");
    let config =
        BertConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    check("the golden student", &config, &bytes);
}
