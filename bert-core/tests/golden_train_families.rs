//! Training the post-norm families other than BERT: the loss and every parameter's gradient of
//! the seeded tiny RoBERTa, XLM-RoBERTa, ELECTRA and DistilBERT sequence-classification (each
//! family's own head: tanh, GELU, ReLU), token-classification, QA and masked-LM (each family's
//! head, ELECTRA's generator narrower than the encoder) models (goldens/families/, written by
//! generate_families.py) against torch.autograd (goldens/generate_train_families.py), with
//! dropout off and on, and the same bits on 1 and 3 threads.
mod common;

use bert_core::train::dropout::Dropout;
use bert_core::train::qa::QaTrainer;
use bert_core::train::seqcls::SeqClsTrainer;
use bert_core::train::tokcls::TokClsTrainer;
use bert_core::train::Grads;
use bert_core::{
    BertConfig, BertForQuestionAnswering, BertForSequenceClassification,
    BertForTokenClassification, Weights,
};
use common::*;

const FAMILIES: [&str; 4] = ["roberta", "xlm-roberta", "electra", "distilbert"];

fn family(name: &str) -> (BertConfig, Vec<u8>) {
    family_edited(name, |json| json)
}

/// The model `name` with its config.json first passed through `edit`.
fn family_edited(name: &str, edit: impl Fn(String) -> String) -> (BertConfig, Vec<u8>) {
    let dir = golden_path("families").join(name);
    let json = edit(std::fs::read_to_string(dir.join("config.json")).unwrap());
    let config = BertConfig::from_json(&json).unwrap();
    (
        config,
        std::fs::read(dir.join("model.safetensors")).unwrap(),
    )
}

/// Our gradients against the golden's (every parameter torch has, and no other), the worst
/// difference at most 1e-5.
fn check(golden: &Golden, case: &str, loss: f32, grads: &Grads, width: usize) {
    let want = golden.f32(&format!("{case}.loss")).0[0];
    assert!((loss - want).abs() < 1e-5, "{case}: loss {loss} vs {want}");
    let prefix = format!("{case}.");
    let (worst, name, checked) = compare_grads(golden, &prefix, grads, width);
    let torch_params = golden
        .names()
        .filter(|n| n.starts_with(&format!("{prefix}norm.")))
        .count();
    assert_eq!(grads.iter().count(), torch_params, "{case}: parameters");
    eprintln!("{case}: {checked} values, worst {worst:.3e} ({name})");
    assert!(worst <= 1e-5, "{case}: {worst} in {name}");
}

/// The gradients on 1 thread equal those on 3, bit for bit.
fn same_bits(case: &str, one: &Grads, three: &Grads) {
    for ((name, a), (_, b)) in one.iter().zip(three.iter()) {
        let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{case}: {name} differs on 3 threads");
    }
}

/// Checks a step against its golden: `run(threads)` gives the loss and gradients on that many
/// threads; one thread's match torch (see [`check`]), three threads' bits equal one's.
fn verify(golden: &Golden, key: &str, width: usize, run: impl Fn(usize) -> (f32, Grads)) {
    let (loss, grads) = run(1);
    check(golden, key, loss, &grads, width);
    same_bits(key, &grads, &run(3).1);
}

/// The golden case of `fam`'s `head` model: `<fam>-<head>`, with `-dropout` when it ran with
/// dropout.
fn key(fam: &str, head: &str, dropout: Option<Dropout>) -> String {
    let suffix = if dropout.is_some() { "-dropout" } else { "" };
    format!("{fam}-{head}{suffix}")
}

/// Every dropout at 0.1, with the project's masks (seed 1234), as the goldens' generator
/// rebuilds them where each family's modules call dropout.
const DROPOUT: Dropout = Dropout {
    hidden: 0.1,
    attention: 0.1,
    classifier: 0.1,
    embedding: None,
    seed: 1234,
};

fn sequence_classification(golden: &Golden, fam: &str, dropout: Option<Dropout>) {
    let (config, bytes) = family(&format!("{fam}-seqcls"));
    sequence_classification_of(
        golden,
        (&config, &bytes),
        &key(fam, "seqcls", dropout),
        dropout,
    );
}

fn sequence_classification_of(
    golden: &Golden,
    (config, bytes): (&BertConfig, &[u8]),
    key: &str,
    dropout: Option<Dropout>,
) {
    let weights = Weights::from_buffers(&[bytes]).unwrap();
    let model = BertForSequenceClassification::load(config, &weights).unwrap();
    let inputs = golden.inputs(&format!("{key}.inputs"));
    let (labels, _) = golden.i64(&format!("{key}.labels"));
    let trainer = SeqClsTrainer::new(&model).unwrap();
    verify(golden, key, model.bert.embeddings.width(), |threads| {
        let mut grads = trainer.grads();
        let mut ws = trainer.workspace(inputs.batch, inputs.seq).unwrap();
        ws.set_dropout(dropout);
        ws.set_threads(threads, &ScopedJoin);
        let loss = trainer
            .loss_and_grads(&inputs.batch(), &labels, &mut ws, &mut grads)
            .unwrap();
        (loss, grads)
    });
}

fn token_classification(golden: &Golden, fam: &str, dropout: Option<Dropout>) {
    let (config, bytes) = family(&format!("{fam}-tokcls"));
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertForTokenClassification::load(&config, &weights).unwrap();
    let key = key(fam, "tokcls", dropout);
    let inputs = golden.inputs(&format!("{key}.inputs"));
    let (labels, _) = golden.i64(&format!("{key}.labels"));
    let trainer = TokClsTrainer::new(&model).unwrap();
    verify(golden, &key, model.bert.embeddings.width(), |threads| {
        let mut grads = trainer.grads();
        let mut ws = trainer.workspace(inputs.batch, inputs.seq).unwrap();
        ws.set_dropout(dropout);
        ws.set_threads(threads, &ScopedJoin);
        let loss = trainer
            .loss_and_grads(&inputs.batch(), &labels, &mut ws, &mut grads)
            .unwrap();
        (loss, grads)
    });
}

fn question_answering(golden: &Golden, fam: &str, dropout: Option<Dropout>) {
    let (config, bytes) = family(&format!("{fam}-qa"));
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertForQuestionAnswering::load(&config, &weights).unwrap();
    let key = key(fam, "qa", dropout);
    let inputs = golden.inputs(&format!("{key}.inputs"));
    let positions = |k: &str| -> Vec<usize> {
        let (v, _) = golden.i64(&format!("{key}.{k}"));
        v.iter().map(|&x| x as usize).collect()
    };
    let (starts, ends) = (positions("starts"), positions("ends"));
    let trainer = QaTrainer::new(&model).unwrap();
    verify(golden, &key, model.bert.embeddings.width(), |threads| {
        let mut grads = trainer.grads();
        let mut ws = trainer.workspace(inputs.batch, inputs.seq).unwrap();
        ws.set_dropout(dropout);
        ws.set_threads(threads, &ScopedJoin);
        let loss = trainer
            .loss_and_grads(&inputs.batch(), &starts, &ends, &mut ws, &mut grads)
            .unwrap();
        (loss, grads)
    });
}

#[test]
fn sequence_classification_gradients_match_torch_for_every_post_norm_family() {
    let golden = Golden::open("train_families.safetensors");
    for fam in FAMILIES {
        sequence_classification(&golden, fam, None);
    }
}

#[test]
fn token_classification_gradients_match_torch_for_every_post_norm_family() {
    let golden = Golden::open("train_families.safetensors");
    for fam in FAMILIES {
        token_classification(&golden, fam, None);
    }
}

#[test]
fn question_answering_gradients_match_torch_for_every_post_norm_family() {
    let golden = Golden::open("train_families.safetensors");
    for fam in FAMILIES {
        question_answering(&golden, fam, None);
    }
}

#[test]
fn masked_lm_gradients_match_torch_for_every_family() {
    use bert_core::train::pretrain::PreTrainer;
    use bert_core::BertForMaskedLM;
    let golden = Golden::open("train_families.safetensors");
    for fam in FAMILIES.into_iter().chain(["modernbert"]) {
        let case = format!("{fam}-mlm");
        let (config, bytes) = family(&case);
        let weights = Weights::from_buffers(&[&bytes]).unwrap();
        let model = BertForMaskedLM::load(&config, &weights).unwrap();
        let inputs = golden.inputs(&format!("{case}.inputs"));
        let (labels, _) = golden.i64(&format!("{case}.labels"));
        let trainer = PreTrainer::masked_lm(&model).unwrap();
        verify(&golden, &case, model.bert.embeddings.width(), |threads| {
            let mut grads = trainer.grads();
            let mut ws = trainer.workspace(inputs.batch, inputs.seq, 8).unwrap();
            ws.set_threads(threads, &ScopedJoin);
            let loss = trainer
                .loss_and_grads(&inputs.batch(), &labels, None, &mut ws, &mut grads)
                .unwrap();
            (loss.total, grads)
        });
    }
}

/// Training-mode dropout (every probability 0.1) with the project's masks, which
/// generate_train_families.py puts where each family's modules call dropout: sequence and token
/// classification and QA (DistilBERT's `qa_dropout`), loss and every gradient as
/// torch.autograd, the same bits on 3 threads.
#[test]
fn dropout_gradients_match_torch_with_the_same_masks_for_every_post_norm_family() {
    let golden = Golden::open("train_families.safetensors");
    for fam in FAMILIES {
        sequence_classification(&golden, fam, Some(DROPOUT));
        token_classification(&golden, fam, Some(DROPOUT));
        question_answering(&golden, fam, Some(DROPOUT));
    }
}

/// ModernBERT's pre-norm block (rotary positions, local windows on layers 1 and 2, GeGLU, no
/// biases) and its heads (the prediction head before every classifier; mean and first-token
/// pooling), dropout off: loss and every gradient as torch.autograd with eager attention, the
/// same bits on 3 threads.
#[test]
fn pre_norm_gradients_match_torch_for_modernbert_heads() {
    let golden = Golden::open("train_families.safetensors");
    sequence_classification(&golden, "modernbert", None);
    let (config, bytes) = family_edited("modernbert-seqcls", |json| {
        json.replace(
            r#""classifier_pooling": "mean""#,
            r#""classifier_pooling": "cls""#,
        )
    });
    assert!(!config.arch.heads.mean_pooling, "the edit took");
    sequence_classification_of(&golden, (&config, &bytes), "modernbert-seqcls-cls", None);
    token_classification(&golden, "modernbert", None);
    question_answering(&golden, "modernbert", None);
}

/// ModernBERT in training mode, each of its dropouts its own probability
/// (`embedding_dropout` 0.05, `attention_dropout` 0.1 on the probabilities and the attention
/// output, `mlp_dropout` 0.15 on the gated product, `classifier_dropout` 0.2 after the
/// prediction head), the project's masks placed where its modules call dropout: loss and
/// every gradient as torch.autograd, the same bits on 3 threads.
#[test]
fn pre_norm_dropout_gradients_match_torch_with_the_same_masks() {
    let golden = Golden::open("train_families.safetensors");
    let dropout = Some(Dropout {
        hidden: 0.15,
        attention: 0.1,
        classifier: 0.2,
        embedding: Some(0.05),
        seed: 1234,
    });
    sequence_classification(&golden, "modernbert", dropout);
    token_classification(&golden, "modernbert", dropout);
    question_answering(&golden, "modernbert", dropout);
}
