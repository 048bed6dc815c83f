//! Training a pre-norm (ModernBERT) model wider than the kernels' panel (hidden 192 > 128, the
//! gated feed-forward's `2 × intermediate` deeper than hidden) on fewer tokens than that depth:
//! the shapes the tiny goldens do not reach. Every head's step runs, its loss and gradients are
//! finite, and 1 and 3 threads give the same bits.
mod common;

use bert_core::safetensors::serialize;
use bert_core::train::pretrain::PreTrainer;
use bert_core::train::qa::QaTrainer;
use bert_core::train::seqcls::SeqClsTrainer;
use bert_core::train::tokcls::TokClsTrainer;
use bert_core::train::Grads;
use bert_core::{
    Batch, BertConfig, BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification,
    BertForTokenClassification, Dtype, Weights,
};
use common::ScopedJoin;

const HIDDEN: usize = 192;
const INTERMEDIATE: usize = 160;
const LAYERS: usize = 3;
const VOCAB: usize = 50;
const LABELS: usize = 3;

fn config() -> BertConfig {
    let json = format!(
        r#"{{"model_type": "modernbert", "vocab_size": {VOCAB}, "hidden_size": {HIDDEN},
        "num_hidden_layers": {LAYERS}, "num_attention_heads": 3,
        "intermediate_size": {INTERMEDIATE}, "max_position_embeddings": 64,
        "local_attention": 4, "global_attn_every_n_layers": 2, "pad_token_id": 0,
        "hidden_activation": "gelu", "classifier_pooling": "mean",
        "id2label": {{"0": "a", "1": "b", "2": "c"}}}}"#
    );
    BertConfig::from_json(&json).unwrap()
}

/// Every tensor of a ModernBERT task model with every head (`labels` outputs: QA's are 2),
/// small seeded values (norms at 1).
fn model_file(labels: usize) -> Vec<u8> {
    let (h, i) = (HIDDEN, INTERMEDIATE);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        (
            "model.embeddings.tok_embeddings.weight".into(),
            vec![VOCAB, h],
        ),
        ("model.embeddings.norm.weight".into(), vec![h]),
    ];
    for l in 0..LAYERS {
        let p = format!("model.layers.{l}");
        if l > 0 {
            shapes.push((format!("{p}.attn_norm.weight"), vec![h]));
        }
        shapes.push((format!("{p}.attn.Wqkv.weight"), vec![3 * h, h]));
        shapes.push((format!("{p}.attn.Wo.weight"), vec![h, h]));
        shapes.push((format!("{p}.mlp_norm.weight"), vec![h]));
        shapes.push((format!("{p}.mlp.Wi.weight"), vec![2 * i, h]));
        shapes.push((format!("{p}.mlp.Wo.weight"), vec![h, i]));
    }
    for (name, shape) in [
        ("model.final_norm.weight", vec![h]),
        ("head.dense.weight", vec![h, h]),
        ("head.norm.weight", vec![h]),
        ("classifier.weight", vec![labels, h]),
        ("classifier.bias", vec![labels]),
        ("decoder.bias", vec![VOCAB]),
    ] {
        shapes.push((name.into(), shape));
    }
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            (0..n)
                .flat_map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                    let v = if name.ends_with("norm.weight") {
                        1.0
                    } else {
                        0.1 * u
                    };
                    v.to_le_bytes()
                })
                .collect()
        })
        .collect();
    let views: Vec<(&str, Dtype, &[usize], &[u8])> = shapes
        .iter()
        .zip(&bytes)
        .map(|((n, s), b)| (n.as_str(), Dtype::F32, s.as_slice(), b.as_slice()))
        .collect();
    serialize(&views, &[]).unwrap()
}

/// Two sequences of 6 and 4 tokens (12 padded rows: fewer than `2 × intermediate`).
const IDS: [u32; 12] = [2, 5, 9, 11, 7, 3, 2, 8, 4, 3, 0, 0];
const MASK: [u32; 12] = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0];

fn batch() -> Batch<'static> {
    Batch::new(&IDS, 2, 6).with_attention_mask(&MASK)
}

/// `step(threads)`'s loss is finite, its gradients finite and not all zero, the same bits on 1
/// and 3 threads.
fn check(what: &str, step: impl Fn(usize) -> (f32, Grads)) {
    let (loss, one) = step(1);
    assert!(loss.is_finite(), "{what}: loss {loss}");
    let mut nonzero = 0;
    for (name, g) in one.iter() {
        assert!(g.iter().all(|x| x.is_finite()), "{what}: {name}");
        nonzero += usize::from(g.iter().any(|&x| x != 0.0));
    }
    assert!(
        nonzero > one.iter().count() / 2,
        "{what}: mostly zero gradients"
    );
    let (_, three) = step(3);
    for ((name, a), (_, b)) in one.iter().zip(three.iter()) {
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{what}: {name} differs on 3 threads");
    }
}

#[test]
fn wide_modernbert_heads_train_on_few_tokens() {
    let (config, file) = (config(), model_file(LABELS));
    let weights = Weights::from_buffers(&[&file]).unwrap();

    let model = BertForSequenceClassification::load(&config, &weights).unwrap();
    let trainer = SeqClsTrainer::new(&model).unwrap();
    check("seqcls", |threads| {
        let (mut g, mut ws) = (trainer.grads(), trainer.workspace(2, 6).unwrap());
        ws.set_threads(threads, &ScopedJoin);
        let loss = trainer.loss_and_grads(&batch(), &[0, 2], &mut ws, &mut g);
        (loss.unwrap(), g)
    });

    let model = BertForTokenClassification::load(&config, &weights).unwrap();
    let trainer = TokClsTrainer::new(&model).unwrap();
    let labels = [0, 1, 2, 1, 0, -100, 2, 2, 1, 0, -100, -100];
    check("tokcls", |threads| {
        let (mut g, mut ws) = (trainer.grads(), trainer.workspace(2, 6).unwrap());
        ws.set_threads(threads, &ScopedJoin);
        let loss = trainer.loss_and_grads(&batch(), &labels, &mut ws, &mut g);
        (loss.unwrap(), g)
    });

    let qa_file = model_file(2);
    let qa_weights = Weights::from_buffers(&[&qa_file]).unwrap();
    let model = BertForQuestionAnswering::load(&config, &qa_weights).unwrap();
    let trainer = QaTrainer::new(&model).unwrap();
    check("qa", |threads| {
        let (mut g, mut ws) = (trainer.grads(), trainer.workspace(2, 6).unwrap());
        ws.set_threads(threads, &ScopedJoin);
        let loss = trainer.loss_and_grads(&batch(), &[1, 2], &[3, 2], &mut ws, &mut g);
        (loss.unwrap(), g)
    });

    let model = BertForMaskedLM::load(&config, &weights).unwrap();
    let trainer = PreTrainer::masked_lm(&model).unwrap();
    let mut labels = [-100i64; 12];
    (labels[2], labels[7]) = (9, 8);
    check("mlm", |threads| {
        let (mut g, mut ws) = (trainer.grads(), trainer.workspace(2, 6, 4).unwrap());
        ws.set_threads(threads, &ScopedJoin);
        let loss = trainer.loss_and_grads(&batch(), &labels, None, &mut ws, &mut g);
        (loss.unwrap().total, g)
    });
}
