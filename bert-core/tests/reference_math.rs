//! Activations and the pre-training loss against PyTorch (goldens/generate.py).
mod common;

use bert_core::kernels::activate;
use bert_core::pretraining::{cross_entropy, pretraining_loss};
use bert_core::Activation;
use common::*;

#[test]
fn every_supported_activation_matches_transformers_act2fn() {
    let golden = Golden::open("activations.safetensors");
    let (x, _) = golden.f32("x");
    for name in ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu"] {
        let act = Activation::from_hf(name).unwrap();
        let (want, _) = golden.f32(name);
        let got: Vec<f32> = x.iter().map(|&v| activate(act, v)).collect();
        assert_close(name, &got, &want, 1e-6);
    }
}

#[test]
fn mlm_plus_nsp_loss_matches_pytorch() {
    let golden = Golden::open("loss.safetensors");
    let (mlm_logits, shape) = golden.f32("mlm_logits");
    let (nsp_logits, _) = golden.f32("nsp_logits");
    let (mlm_labels, _) = golden.i64("mlm_labels");
    let (nsp_labels, _) = golden.i64("nsp_labels");
    let vocab = shape[2];
    let loss = pretraining_loss(&mlm_logits, vocab, &mlm_labels, &nsp_logits, &nsp_labels).unwrap();
    assert_close("mlm loss", &[loss.mlm], &golden.f32("mlm_loss").0, 1e-5);
    assert_close("nsp loss", &[loss.nsp], &golden.f32("nsp_loss").0, 1e-5);
    assert_close(
        "total loss",
        &[loss.total],
        &golden.f32("total_loss").0,
        1e-5,
    );
    // Wrong shapes are errors, not garbage.
    assert!(cross_entropy(&mlm_logits, vocab + 1, &mlm_labels).is_err());
}
