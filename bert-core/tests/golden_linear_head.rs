//! The linear head a device trains (`bert_core::train::linear_head`) against torch
//! (goldens/generate_linear_head.py): the cross-entropy and its gradients at a seeded head by
//! `torch.autograd` (≤ 1e-5), and five full-batch `torch.optim.AdamW` steps from zero weights
//! (weights ≤ 1e-5, losses ≤ 1e-5).
mod common;

use bert_core::train::linear_head::{HeadTraining, LinearHead};
use common::*;

fn inputs(golden: &Golden) -> (Vec<f32>, Vec<u32>) {
    let (features, _) = golden.f32("features");
    let labels = golden.i64("labels").0.iter().map(|&l| l as u32).collect();
    (features, labels)
}

#[test]
fn loss_and_gradients_match_torch_autograd() {
    let golden = Golden::open("linear_head.safetensors");
    let (features, labels) = inputs(&golden);
    let (weight, shape) = golden.f32("weight");
    let head = LinearHead {
        dim: shape[1],
        classes: shape[0],
        weight,
        bias: golden.f32("bias").0,
    };
    let mut training = HeadTraining::new(&head, 0.0);
    let loss = training.backward(&head, &features, &labels).unwrap();
    assert!(
        (loss - golden.f32("loss").0[0]).abs() <= 1e-6,
        "loss {loss}"
    );
    for name in ["weight", "bias"] {
        let got = training.grads().get(&format!("classifier.{name}")).unwrap();
        let d = max_abs_diff(got, &golden.f32(&format!("grad.{name}")).0);
        assert!(d <= 1e-5, "grad of {name} differs by {d}");
    }
}

#[test]
fn adamw_steps_match_torch() {
    let golden = Golden::open("linear_head.safetensors");
    let (features, labels) = inputs(&golden);
    let (_, shape) = golden.f32("weight");
    let mut head = LinearHead::zeros(shape[1], shape[0]);
    let mut training = HeadTraining::new(&head, 0.01);
    let losses: Vec<f32> = (0..5)
        .map(|_| training.step(&mut head, &features, &labels, 0.05).unwrap())
        .collect();
    let d = max_abs_diff(&losses, &golden.f32("trained.losses").0);
    assert!(d <= 1e-5, "losses differ by {d}: {losses:?}");
    let dw = max_abs_diff(&head.weight, &golden.f32("trained.weight").0);
    let db = max_abs_diff(&head.bias, &golden.f32("trained.bias").0);
    eprintln!("linear head after 5 AdamW steps: weight {dw:.2e}, bias {db:.2e} from torch");
    assert!(dw <= 1e-5 && db <= 1e-5, "weight {dw}, bias {db}");
}
