//! Sentence-embedding distillation against `torch.autograd`: the real all-MiniLM-L6-v2 encoder
//! as the student, mean pooling, a seeded 384 → 48 projection and `MSELoss` against seeded
//! teacher embeddings, dropout off, a padded batch of three sentences
//! (goldens/generate_distill.py). The loss and embeddings match, and every parameter's gradient
//! in norm, sum and at 512 seeded positions (the word embeddings at every used row): ≤ 1e-5.
mod common;

use bert_core::safetensors::{serialize, Dtype};
use bert_core::train::distill::{DistillTrainer, SentenceEncoder};
use bert_core::Weights;
use common::*;

#[test]
fn distillation_gradients_match_torch_autograd() {
    let (config, encoder) = load_model_files("all-minilm-l6-v2");
    let golden = Golden::open("train_distill.safetensors");
    let (w, w_shape) = golden.f32("projection.weight");
    let (b, _) = golden.f32("projection.bias");
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (wb, bb) = (bytes(&w), bytes(&b));
    let head = serialize(
        &[
            ("projection.weight", Dtype::F32, &w_shape[..], &wb[..]),
            ("projection.bias", Dtype::F32, &[w_shape[0]][..], &bb[..]),
        ],
        &[],
    )
    .unwrap();
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let student =
        SentenceEncoder::load(&config, &weights, Some(("projection", w_shape[0]))).unwrap();
    let inputs = golden.inputs("inputs");
    let (targets, _) = golden.f32("targets");
    let trainer = DistillTrainer::new(&student).unwrap();
    let mut grads = trainer.grads();
    let mut ws = trainer.workspace(inputs.batch, inputs.seq).unwrap();
    let loss = trainer
        .loss_and_grads(&inputs.batch(), &targets, &mut ws, &mut grads)
        .unwrap();
    let want = golden.f32("loss").0[0];
    assert!((loss - want).abs() < 1e-6, "loss {loss} vs torch {want}");
    let emb = trainer.embeddings(&ws, inputs.batch);
    let d = max_abs_diff(emb, &golden.f32("embeddings").0);
    assert!(d <= 1e-5, "embeddings differ by {d}");
    let (worst, name, checked) = compare_grads(&golden, "", &grads, config.hidden_size);
    eprintln!("distillation: {checked} gradient values checked, worst {worst:.3e} ({name})");
    assert!(worst <= 1e-5, "{worst} > 1e-5 in {name}");
}
