//! The hand-written backward against `torch.autograd`: BertForSequenceClassification on the
//! real all-MiniLM-L6-v2 encoder (seeded head), dropout off, a padded batch of three sentences
//! (goldens/generate_train.py). The loss and logits match; every parameter's gradient matches
//! in norm and sum and at 512 seeded positions (the word-embedding gradient at every row the
//! batch uses): max abs diff <= 1e-5.
mod common;

use bert_core::train::seqcls::SeqClsTrainer;
use bert_core::{BertConfig, BertForSequenceClassification, Weights};
use common::*;

/// The real all-MiniLM-L6-v2 weights, and the config and seeded head the goldens use for
/// `task` (`seqcls`, `tokcls` or `qa`).
fn minilm_with_head(task: &str) -> (Vec<u8>, BertConfig, Vec<u8>) {
    let (_, encoder) = load_model_files("all-minilm-l6-v2");
    let config_json = std::fs::read_to_string(golden_path(&format!("config_{task}.json"))).unwrap();
    let config = BertConfig::from_json(&config_json).unwrap();
    let head = std::fs::read(golden_path(&format!("head_{task}.safetensors"))).unwrap();
    (encoder, config, head)
}

/// Token classification (MiniLM + the seeded NER head), per-token labels with -100 on special
/// tokens and padding: loss and every gradient as torch.autograd.
#[test]
fn token_classification_gradients_match_torch_autograd() {
    use bert_core::train::tokcls::TokClsTrainer;
    use bert_core::BertForTokenClassification;
    let (encoder, config, head) = minilm_with_head("tokcls");
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForTokenClassification::load(&config, &weights).unwrap();
    let golden = Golden::open("train_seqcls.safetensors");
    let inputs = golden.inputs("tok.inputs");
    let (labels, _) = golden.i64("tok.inputs.labels");
    let trainer = TokClsTrainer::new(&model).unwrap();
    let mut grads = trainer.grads();
    let mut ws = trainer.workspace(inputs.batch, inputs.seq).unwrap();
    let loss = trainer
        .loss_and_grads(&inputs.batch(), &labels, &mut ws, &mut grads)
        .unwrap();
    let want = golden.f32("tok.loss").0[0];
    assert!((loss - want).abs() < 1e-5, "loss {loss} vs {want}");
    let (worst, name, checked) = compare_grads(&golden, "tok.", &grads, config.hidden_size);
    eprintln!("token classification: {checked} values checked, worst {worst:.3e} ({name})");
    assert!(worst <= 1e-5, "{worst} in {name}");
}

/// MiniLM with the golden classification head on the golden batch: (loss, gradients, hidden
/// size).
fn seqcls_gradients() -> (f32, bert_core::train::Grads, usize) {
    let (encoder, config, head) = minilm_with_head("seqcls");
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForSequenceClassification::load(&config, &weights).unwrap();
    let golden = Golden::open("train_seqcls.safetensors");
    let inputs = golden.inputs("inputs");
    let (labels, _) = golden.i64("inputs.labels");
    let trainer = SeqClsTrainer::new(&model).unwrap();
    let mut grads = trainer.grads();
    let mut ws = trainer.workspace(inputs.batch, inputs.seq).unwrap();
    let loss = trainer
        .loss_and_grads(&inputs.batch(), &labels, &mut ws, &mut grads)
        .unwrap();
    (loss, grads, config.hidden_size)
}

#[test]
fn sequence_classification_gradients_match_torch_autograd() {
    let (loss, grads, hidden) = seqcls_gradients();
    let golden = Golden::open("train_seqcls.safetensors");
    let want_loss = golden.f32("loss").0[0];
    eprintln!("loss {loss} vs torch {want_loss}");
    assert!((loss - want_loss).abs() < 1e-5);
    let (worst, name, checked) = compare_grads(&golden, "", &grads, hidden);
    eprintln!(
        "{} parameters, {checked} gradient values checked; worst max abs diff {worst:.3e} ({name})",
        grads.iter().count()
    );
    assert!(worst <= 1e-5, "{worst} > 1e-5 in {name}");
}

/// 20 steps of AdamW with HF's groups, the linear warm-up/decay schedule and gradient clipping,
/// alternating two fixed batches: every step's loss equals PyTorch's within 1e-4 relative.
#[test]
fn twenty_adamw_steps_follow_pytorch() {
    use bert_core::parallel::Sequential;
    use bert_core::train::optim::{clip_grad_norm, linear_schedule, AdamW};
    let (encoder, config, head) = minilm_with_head("seqcls");
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let mut model = BertForSequenceClassification::load(&config, &weights).unwrap();
    let golden = Golden::open("train_seqcls.safetensors");
    let batches: Vec<_> = (0..2)
        .map(|i| {
            (
                golden.inputs(&format!("batch{i}")),
                golden.i64(&format!("batch{i}.labels")).0,
            )
        })
        .collect();
    let want = golden.f32("steps.losses").0;
    let (mut grads, mut ws) = {
        let trainer = SeqClsTrainer::new(&model).unwrap();
        (trainer.grads(), trainer.workspace(3, 16).unwrap())
    };
    let mut opt = AdamW::new(&grads, 0.01);
    let mut got = Vec::new();
    for step in 0..want.len() {
        let (inputs, labels) = &batches[step % 2];
        grads.zero();
        let loss = SeqClsTrainer::new(&model)
            .unwrap()
            .loss_and_grads(&inputs.batch(), labels, &mut ws, &mut grads)
            .unwrap();
        got.push(loss);
        clip_grad_norm(&mut grads, 1.0);
        let lr = 1e-4 * linear_schedule(step, 2, want.len());
        // The update as `bert train` makes it: in place, no list of parameters.
        opt.step_params(&mut model, &grads, lr, &Sequential, 1)
            .unwrap();
    }
    eprintln!("losses: ours {got:?}\n        torch {want:?}");
    for (step, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * w.abs().max(1e-2),
            "step {step}: {g} vs {w}"
        );
    }
    assert!(got[got.len() - 1] < got[0] / 10.0, "the loss falls");
}

/// Extractive QA (MiniLM + the seeded QA head), two sequences, answer spans: loss and every
/// gradient as torch.autograd.
#[test]
fn question_answering_gradients_match_torch_autograd() {
    use bert_core::train::qa::QaTrainer;
    use bert_core::BertForQuestionAnswering;
    let (encoder, config, head) = minilm_with_head("qa");
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForQuestionAnswering::load(&config, &weights).unwrap();
    let golden = Golden::open("train_seqcls.safetensors");
    let inputs = golden.inputs("qa.inputs");
    let starts: Vec<usize> = golden
        .i64("qa.starts")
        .0
        .iter()
        .map(|&x| x as usize)
        .collect();
    let ends: Vec<usize> = golden
        .i64("qa.ends")
        .0
        .iter()
        .map(|&x| x as usize)
        .collect();
    let trainer = QaTrainer::new(&model).unwrap();
    let mut grads = trainer.grads();
    let mut ws = trainer.workspace(inputs.batch, inputs.seq).unwrap();
    let loss = trainer
        .loss_and_grads(&inputs.batch(), &starts, &ends, &mut ws, &mut grads)
        .unwrap();
    let want = golden.f32("qa.loss").0[0];
    assert!((loss - want).abs() < 1e-5, "loss {loss} vs {want}");
    let (worst, name, checked) = compare_grads(&golden, "qa.", &grads, config.hidden_size);
    eprintln!("question answering: {checked} values checked, worst {worst:.3e} ({name})");
    assert!(worst <= 1e-5, "{worst} in {name}");
}

/// Masked LM on the real SPLADE-tiny (tied decoder, legacy gamma/beta names): every third real
/// token masked; loss and every gradient (the word embeddings' gathers the decoder's) as
/// torch.autograd.
#[test]
fn masked_lm_gradients_match_torch_autograd() {
    use bert_core::train::pretrain::PreTrainer;
    use bert_core::BertForMaskedLM;
    let (config, bytes) = load_model_files("splade-tiny");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertForMaskedLM::load(&config, &weights).unwrap();
    let golden = Golden::open("train_pretrain.safetensors");
    let inputs = golden.inputs("mlm.inputs");
    let (labels, _) = golden.i64("mlm.inputs.labels");
    let trainer = PreTrainer::masked_lm(&model).unwrap();
    let mut grads = trainer.grads();
    let mut ws = trainer
        .workspace(inputs.batch, inputs.seq, inputs.batch * inputs.seq)
        .unwrap();
    let loss = trainer
        .loss_and_grads(&inputs.batch(), &labels, None, &mut ws, &mut grads)
        .unwrap();
    let want = golden.f32("mlm.loss").0[0];
    assert!((loss.mlm - want).abs() < 1e-5, "loss {loss:?} vs {want}");
    assert_eq!(loss.nsp, 0.0);
    let (worst, name, checked) = compare_grads(&golden, "mlm.", &grads, config.hidden_size);
    eprintln!("masked LM: {checked} values checked, worst {worst:.3e} ({name})");
    assert!(worst <= 1e-5, "{worst} in {name}");
}

/// MLM + NSP (MiniLM + the seeded pre-training heads, decoder tied): sentence pairs, the NSP
/// labels 0 and 1; loss and every gradient as torch.autograd.
#[test]
fn pretraining_gradients_match_torch_autograd() {
    use bert_core::train::pretrain::PreTrainer;
    use bert_core::BertForPreTraining;
    let (encoder, config, head) = minilm_with_head("pretraining");
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForPreTraining::load(&config, &weights).unwrap();
    let golden = Golden::open("train_pretrain.safetensors");
    let inputs = golden.inputs("pt.inputs");
    let (labels, _) = golden.i64("pt.inputs.labels");
    let (nsp, _) = golden.i64("pt.inputs.nsp");
    let trainer = PreTrainer::pretraining(&model).unwrap();
    let mut grads = trainer.grads();
    let mut ws = trainer.workspace(inputs.batch, inputs.seq, 8).unwrap();
    // Bad labels are typed errors, not panics.
    let mut bad = labels.clone();
    bad[1] = 1 << 40;
    assert!(trainer
        .loss_and_grads(&inputs.batch(), &bad, Some(&nsp), &mut ws, &mut grads)
        .is_err());
    assert!(trainer
        .loss_and_grads(&inputs.batch(), &labels, None, &mut ws, &mut grads)
        .is_err());
    grads.zero();
    let loss = trainer
        .loss_and_grads(&inputs.batch(), &labels, Some(&nsp), &mut ws, &mut grads)
        .unwrap();
    let want = golden.f32("pt.loss").0[0];
    assert!((loss.total - want).abs() < 1e-5, "loss {loss:?} vs {want}");
    let (worst, name, checked) = compare_grads(&golden, "pt.", &grads, config.hidden_size);
    eprintln!("pre-training: {checked} values checked, worst {worst:.3e} ({name})");
    assert!(worst <= 1e-5, "{worst} in {name}");
}

/// The threaded step (products split by rows, weight-gradient rows and sequence groups) gives
/// the one-thread step's loss and gradients bit for bit, for 2 and 3 threads, on the MLM + NSP
/// model (every product kind: encoder, attention, pooled head, vocabulary decoder).
#[test]
fn threaded_steps_are_bit_identical_to_one_thread() {
    use bert_core::train::pretrain::PreTrainer;
    use bert_core::BertForPreTraining;
    let (encoder, config, head) = minilm_with_head("pretraining");
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForPreTraining::load(&config, &weights).unwrap();
    let golden = Golden::open("train_pretrain.safetensors");
    let inputs = golden.inputs("pt.inputs");
    let (labels, _) = golden.i64("pt.inputs.labels");
    let (nsp, _) = golden.i64("pt.inputs.nsp");
    let trainer = PreTrainer::pretraining(&model).unwrap();
    let run = |threads: usize| {
        let mut grads = trainer.grads();
        let mut ws = trainer.workspace(inputs.batch, inputs.seq, 8).unwrap();
        ws.set_threads(threads, &ScopedJoin);
        let loss = trainer
            .loss_and_grads(&inputs.batch(), &labels, Some(&nsp), &mut ws, &mut grads)
            .unwrap();
        (loss, grads)
    };
    let (one, g1) = run(1);
    for threads in [2, 3] {
        let (loss, g) = run(threads);
        assert_eq!(loss, one, "{threads} threads");
        for ((name, a), (_, b)) in g1.iter().zip(g.iter()) {
            assert!(
                a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
                "{name} differs with {threads} threads"
            );
        }
    }
}

/// Training-mode dropout (hidden, attention and classifier 0.1) with the project's masks, which
/// goldens/generate_train.py rebuilds in PyTorch: sequence and token classification losses and
/// every gradient as torch.autograd; the same bits on 2 threads.
#[test]
fn dropout_gradients_match_torch_with_the_same_masks() {
    use bert_core::train::dropout::Dropout;
    use bert_core::train::tokcls::TokClsTrainer;
    use bert_core::BertForTokenClassification;
    let golden = Golden::open("train_dropout.safetensors");
    let dropout = Some(Dropout {
        hidden: 0.1,
        attention: 0.1,
        classifier: 0.1,
        embedding: None,
        seed: 1234,
    });
    let (encoder, config, head) = minilm_with_head("seqcls");
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForSequenceClassification::load(&config, &weights).unwrap();
    let inputs = golden.inputs("seq.inputs");
    let (labels, _) = golden.i64("seq.inputs.labels");
    let trainer = SeqClsTrainer::new(&model).unwrap();
    let mut results = Vec::new();
    for threads in [1, 2] {
        let mut grads = trainer.grads();
        let mut ws = trainer.workspace(inputs.batch, inputs.seq).unwrap();
        ws.set_dropout(dropout);
        ws.set_threads(threads, &ScopedJoin);
        let loss = trainer
            .loss_and_grads(&inputs.batch(), &labels, &mut ws, &mut grads)
            .unwrap();
        let want = golden.f32("seq.loss").0[0];
        assert!((loss - want).abs() < 1e-5, "loss {loss} vs {want}");
        let (worst, name, checked) = compare_grads(&golden, "seq.", &grads, config.hidden_size);
        eprintln!("dropout, sequence classification: {checked} values, worst {worst:.3e} ({name})");
        assert!(worst <= 1e-5, "{worst} in {name}");
        results.push((loss, grads));
    }
    assert_eq!(results[0].0, results[1].0);
    for ((name, a), (_, b)) in results[0].1.iter().zip(results[1].1.iter()) {
        assert!(a == b, "{name} differs on 2 threads");
    }

    let (encoder, config, head) = minilm_with_head("tokcls");
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForTokenClassification::load(&config, &weights).unwrap();
    let inputs = golden.inputs("tok.inputs");
    let (labels, _) = golden.i64("tok.inputs.labels");
    let trainer = TokClsTrainer::new(&model).unwrap();
    let mut grads = trainer.grads();
    let mut ws = trainer.workspace(inputs.batch, inputs.seq).unwrap();
    ws.set_dropout(dropout);
    let loss = trainer
        .loss_and_grads(&inputs.batch(), &labels, &mut ws, &mut grads)
        .unwrap();
    let want = golden.f32("tok.loss").0[0];
    assert!((loss - want).abs() < 1e-5, "loss {loss} vs {want}");
    let (worst, name, checked) = compare_grads(&golden, "tok.", &grads, config.hidden_size);
    eprintln!("dropout, token classification: {checked} values, worst {worst:.3e} ({name})");
    assert!(worst <= 1e-5, "{worst} in {name}");
    // Evaluation mode again: the no-dropout loss of the same batch.
    ws.set_dropout(None);
    grads.zero();
    let eval = trainer
        .loss_and_grads(&inputs.batch(), &labels, &mut ws, &mut grads)
        .unwrap();
    assert!(eval != loss);
}

/// AdamW's update cut over threads changes no bit: each element is updated alone.
#[test]
fn adamw_on_threads_is_bit_identical() {
    use bert_core::train::optim::AdamW;
    let (_, grads, _) = seqcls_gradients();
    let start: Vec<Vec<f32>> = grads
        .iter()
        .map(|(_, g)| g.iter().map(|x| x * 0.5 + 0.25).collect())
        .collect();
    let run = |threads: usize| {
        let mut params = start.clone();
        let mut opt = AdamW::new(&grads, 0.01);
        for _ in 0..3 {
            let mut views: Vec<&mut [f32]> = params.iter_mut().map(|p| p.as_mut_slice()).collect();
            opt.step_on(&mut views, &grads, 1e-3, &ScopedJoin, threads);
        }
        params
    };
    let one = run(1);
    assert!(one != start);
    for threads in [2, 3] {
        assert!(run(threads) == one, "{threads} threads");
    }
}

/// Clipping on threads gives the one-thread clip's norm and gradients bit for bit; zeroing on
/// threads zeroes.
#[test]
fn clipping_on_threads_is_bit_identical() {
    use bert_core::train::optim::clip_grad_norm;
    let (_, grads, _) = seqcls_gradients();
    let mut one = grads.clone();
    let norm = clip_grad_norm(&mut one, 0.01);
    for threads in [2, 3] {
        let mut g = grads.clone();
        assert_eq!(
            g.clip_norm_on(0.01, &ScopedJoin, threads).to_bits(),
            norm.to_bits()
        );
        for ((name, a), (_, b)) in one.iter().zip(g.iter()) {
            assert!(a == b, "{name}, {threads} threads");
        }
        g.zero_on(&ScopedJoin, threads);
        assert!(g.iter().all(|(_, v)| v.iter().all(|&x| x == 0.0)));
    }
}
