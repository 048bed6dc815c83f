//! Sentence-embedding distillation against `torch.autograd`: the real all-MiniLM-L6-v2 encoder
//! as the student, mean pooling, a seeded 384 → 48 projection and `MSELoss` against seeded
//! teacher embeddings, dropout off, a padded batch of three sentences
//! (goldens/generate_distill.py). The loss and embeddings match, and every parameter's gradient
//! in norm, sum and at 512 seeded positions (the word embeddings at every used row): ≤ 1e-5.
mod common;

use bert_core::safetensors::{serialize, Dtype};
use bert_core::train::distill::{DistillTrainer, SentenceEncoder};
use bert_core::train::workspace::TrainWorkspace;
use bert_core::train::Grads;
use bert_core::Weights;
use common::*;

/// The trainer's loss and gradients on the golden's inputs and targets, the loss checked
/// against torch's; the workspace for what the test reads next.
fn loss_and_grads_as_torch(golden: &Golden, trainer: &DistillTrainer) -> (TrainWorkspace, Grads) {
    let inputs = golden.inputs("inputs");
    let (targets, _) = golden.f32("targets");
    let mut grads = trainer.grads();
    let mut ws = trainer.workspace(inputs.batch, inputs.seq).unwrap();
    let loss = trainer
        .loss_and_grads(&inputs.batch(), &targets, &mut ws, &mut grads)
        .unwrap();
    let want = golden.f32("loss").0[0];
    assert!((loss - want).abs() < 1e-6, "loss {loss} vs torch {want}");
    (ws, grads)
}

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
    let trainer = DistillTrainer::new(&student).unwrap();
    let (ws, grads) = loss_and_grads_as_torch(&golden, &trainer);
    let emb = trainer.embeddings(&ws, inputs.batch);
    let d = max_abs_diff(emb, &golden.f32("embeddings").0);
    assert!(d <= 1e-5, "embeddings differ by {d}");
    let (worst, name, checked) = compare_grads(&golden, "", &grads, config.hidden_size);
    eprintln!("distillation: {checked} gradient values checked, worst {worst:.3e} ({name})");
    assert!(worst <= 1e-5, "{worst} > 1e-5 in {name}");
}

/// ELECTRA's narrower embeddings (16 wide, `embeddings_project` to 32) on a seeded tiny model:
/// the projection's, the LayerNorm's and the tables' gradients, every one whole, ≤ 1e-5.
#[test]
fn factorized_embeddings_gradients_match_torch_autograd() {
    let golden = Golden::open("train_distill_electra.safetensors");
    let config = bert_core::BertConfig::from_json(
        &std::fs::read_to_string(golden_path("config_distill_electra.json")).unwrap(),
    )
    .unwrap();
    let bytes = std::fs::read(golden_path("train_distill_electra.safetensors")).unwrap();
    let st = bert_core::SafeTensors::parse(&bytes).unwrap();
    // The model's weights (under "model.") and the projection as a file of their own.
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .names()
        .filter_map(|n| {
            let bare = n
                .strip_prefix("model.")
                .or(n.starts_with("projection.").then_some(n))?;
            let t = st.tensor(n).unwrap();
            Some((bare.to_string(), t.shape.to_vec(), t.data.to_vec()))
        })
        .collect();
    let views: Vec<(&str, Dtype, &[usize], &[u8])> = owned
        .iter()
        .map(|(n, s, b)| (n.as_str(), Dtype::F32, &s[..], &b[..]))
        .collect();
    let file = serialize(&views, &[]).unwrap();
    let weights = Weights::from_buffers(&[&file]).unwrap();
    let student = SentenceEncoder::load(&config, &weights, Some(("projection", 24))).unwrap();
    assert!(student.bert.embeddings.project.is_some());
    let trainer = DistillTrainer::new(&student).unwrap();
    let (_, grads) = loss_and_grads_as_torch(&golden, &trainer);
    let mut worst = (0.0f32, String::new());
    let mut names = 0;
    for (name, g) in grads.iter() {
        let (want, _) = golden.f32(&format!("grad.{name}"));
        let d = max_abs_diff(g, &want);
        if d > worst.0 {
            worst = (d, name.to_string());
        }
        names += 1;
    }
    eprintln!(
        "factorized: {names} gradients, worst {:.3e} ({})",
        worst.0, worst.1
    );
    assert_eq!(
        names,
        2 + 5 + 2 * 16 + 2,
        "tables, norm, layers, embeddings_project, projection"
    );
    assert!(worst.0 <= 1e-5, "{} > 1e-5 in {}", worst.0, worst.1);
}
