//! Every head against HF transformers: the real SPLADE-tiny masked LM, and the real MiniLM
//! encoder under seeded head weights (goldens/generate.py) for pre-training, NSP, sequence and
//! token classification and question answering.
mod common;

use bert_core::pretraining::pretraining_loss;
use bert_core::*;
use common::*;

const TOL: f32 = 1e-4;

#[test]
fn splade_tiny_masked_lm_matches_transformers() {
    let (config, bytes) = load_model_files("splade-tiny");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertForMaskedLM::load(&config, &weights).unwrap();
    assert!(
        model.predictions.decoder.is_none(),
        "decoder is tied to the word embeddings"
    );
    assert!(model.bert.pooler.is_none());
    let golden = Golden::open("splade_tiny.safetensors");
    let mut ws = model.workspace(2, 16).unwrap();
    for case in ["single", "batch"] {
        let inputs = golden.inputs(case);
        let (want, shape) = golden.f32(&format!("{case}.logits"));
        for remove_padding in [true, false] {
            ws.set_remove_padding(remove_padding);
            let logits = model.forward(&inputs.batch(), &mut ws).unwrap();
            assert_eq!(logits.dims(), &shape[..]);
            let (got, want) = if remove_padding {
                (
                    real_rows(logits.data, &inputs.mask),
                    real_rows(&want, &inputs.mask),
                )
            } else {
                (logits.data.to_vec(), want.clone())
            };
            let name = format!("splade {case} logits (padding removed: {remove_padding})");
            assert_close(&name, &got, &want, TOL);
        }
    }
}

/// SPLADE max pooling, `max_t log(1 + relu(logits[t]))` over real tokens, against the same
/// formula applied to transformers' logits (the golden).
#[test]
fn splade_sparse_vectors_match_transformers_logits() {
    let (config, bytes) = load_model_files("splade-tiny");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertForMaskedLM::load(&config, &weights).unwrap();
    let golden = Golden::open("splade_tiny.safetensors");
    let v = config.vocab_size;
    for case in ["single", "batch"] {
        let inputs = golden.inputs(case);
        let (logits, _) = golden.f32(&format!("{case}.logits"));
        let mut want = vec![0.0f32; inputs.batch * v];
        for b in 0..inputs.batch {
            for t in 0..inputs.seq {
                if inputs.mask[b * inputs.seq + t] == 0 {
                    continue;
                }
                let row = &logits[(b * inputs.seq + t) * v..][..v];
                for (w, &x) in want[b * v..(b + 1) * v].iter_mut().zip(row) {
                    *w = w.max((x.max(0.0) as f64).ln_1p() as f32);
                }
            }
        }
        let mut ws = model.workspace_sparse(inputs.batch, inputs.seq).unwrap();
        let mut got = vec![0.0f32; inputs.batch * v];
        model
            .forward_sparse(&inputs.batch(), &mut ws, &mut got)
            .unwrap();
        assert_close(&format!("splade {case} sparse"), &got, &want, TOL);
        let nonzero = got.iter().filter(|&&x| x > 0.0).count();
        assert!(
            nonzero > 0 && nonzero < got.len() / 4,
            "sparse: {nonzero} terms"
        );
    }
}

/// The real MiniLM encoder plus one seeded head file, with the head's config.
fn head_model(head: &str) -> (BertConfig, Vec<u8>, Vec<u8>) {
    let (_, encoder) = load_model_files("all-minilm-l6-v2");
    let config_text = std::fs::read_to_string(golden_path(&format!("config_{head}.json"))).unwrap();
    let config = BertConfig::from_json(&config_text).unwrap();
    let head_bytes = std::fs::read(golden_path(&format!("head_{head}.safetensors"))).unwrap();
    (config, encoder, head_bytes)
}

#[test]
fn pretraining_heads_and_loss_match_transformers() {
    let (config, encoder, head) = head_model("pretraining");
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForPreTraining::load(&config, &weights).unwrap();
    let golden = Golden::open("heads.safetensors");
    let inputs = golden.inputs("pretraining");
    let mut ws = model.workspace(inputs.batch, inputs.seq).unwrap();
    let out = model.forward(&inputs.batch(), &mut ws).unwrap();
    let (want, shape) = golden.f32("pretraining.prediction_logits");
    assert_eq!(out.prediction_logits.dims(), &shape[..]);
    assert_close("prediction_logits", out.prediction_logits.data, &want, TOL);
    let (want, _) = golden.f32("pretraining.seq_relationship_logits");
    assert_close(
        "seq_relationship_logits",
        out.seq_relationship_logits.data,
        &want,
        TOL,
    );

    // HF's BertForPreTraining(labels=..., next_sentence_label=...).loss on the same inputs.
    let (labels, _) = golden.i64("pretraining.labels");
    let (nsp_labels, _) = golden.i64("pretraining.next_sentence_label");
    let loss = pretraining_loss(
        out.prediction_logits.data,
        config.vocab_size,
        &labels,
        out.seq_relationship_logits.data,
        &nsp_labels,
    )
    .unwrap();
    let (want, _) = golden.f32("pretraining.loss");
    assert_close("pre-training loss", &[loss.total], &want, TOL);
}

#[test]
fn next_sentence_prediction_matches_transformers() {
    let (config, encoder, head) = head_model("nsp");
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForNextSentencePrediction::load(&config, &weights).unwrap();
    let golden = Golden::open("heads.safetensors");
    let inputs = golden.inputs("nsp");
    let mut ws = model.workspace(inputs.batch, inputs.seq).unwrap();
    let logits = model.forward(&inputs.batch(), &mut ws).unwrap();
    let (want, shape) = golden.f32("nsp.logits");
    assert_eq!(logits.dims(), &shape[..]);
    assert_close("nsp logits", logits.data, &want, TOL);
}

#[test]
fn sequence_classification_matches_transformers() {
    let (config, encoder, head) = head_model("seqcls");
    assert_eq!(config.id2label, ["negative", "neutral", "positive"]);
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForSequenceClassification::load(&config, &weights).unwrap();
    let golden = Golden::open("heads.safetensors");
    let inputs = golden.inputs("seqcls");
    let mut ws = model.workspace(inputs.batch, inputs.seq).unwrap();
    let logits = model.forward(&inputs.batch(), &mut ws).unwrap();
    let (want, shape) = golden.f32("seqcls.logits");
    assert_eq!(logits.dims(), &shape[..]);
    assert_close("sequence classification logits", logits.data, &want, TOL);
    assert_eq!(model.label(2), Some("positive"));
}

#[test]
fn token_classification_matches_transformers() {
    let (config, encoder, head) = head_model("tokcls");
    assert_eq!(config.num_labels(), 9);
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForTokenClassification::load(&config, &weights).unwrap();
    let golden = Golden::open("heads.safetensors");
    let inputs = golden.inputs("tokcls");
    let mut ws = model.workspace(inputs.batch, inputs.seq).unwrap();
    let (want, shape) = golden.f32("tokcls.logits");
    for remove_padding in [true, false] {
        ws.set_remove_padding(remove_padding);
        let logits = model.forward(&inputs.batch(), &mut ws).unwrap();
        assert_eq!(logits.dims(), &shape[..]);
        let got = real_rows(logits.data, &inputs.mask);
        let name = format!("token classification logits (padding removed: {remove_padding})");
        assert_close(&name, &got, &real_rows(&want, &inputs.mask), TOL);
        if !remove_padding {
            assert_close(
                "token classification, all positions",
                logits.data,
                &want,
                TOL,
            );
        }
    }
}

#[test]
fn question_answering_matches_transformers() {
    let (config, encoder, head) = head_model("qa");
    let weights = Weights::from_buffers(&[&encoder, &head]).unwrap();
    let model = BertForQuestionAnswering::load(&config, &weights).unwrap();
    let golden = Golden::open("heads.safetensors");
    let inputs = golden.inputs("qa");
    let mut ws = model.workspace(inputs.batch, inputs.seq).unwrap();
    let (want_start, shape) = golden.f32("qa.start_logits");
    let (want_end, _) = golden.f32("qa.end_logits");
    for remove_padding in [true, false] {
        ws.set_remove_padding(remove_padding);
        let out = model.forward(&inputs.batch(), &mut ws).unwrap();
        assert_eq!(out.start_logits.dims(), &shape[..]);
        let m = &inputs.mask;
        for (name, got, want) in [
            ("qa start_logits", out.start_logits.data, &want_start),
            ("qa end_logits", out.end_logits.data, &want_end),
        ] {
            let label = format!("{name} (padding removed: {remove_padding})");
            assert_close(&label, &real_rows(got, m), &real_rows(want, m), TOL);
            if !remove_padding {
                assert_close(name, got, want, TOL);
            }
        }
    }
}

#[test]
fn masked_lm_logits_at_chosen_positions_equal_the_full_logits() {
    let (config, bytes) = load_model_files("splade-tiny");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertForMaskedLM::load(&config, &weights).unwrap();
    let golden = Golden::open("splade_tiny.safetensors");
    let inputs = golden.inputs("batch");
    let (want, _) = golden.f32("batch.logits");
    let v = config.vocab_size;
    let positions = [1usize, inputs.seq + 2, 2 * inputs.seq - 1];
    let mut ws = model
        .workspace_at(inputs.batch, inputs.seq, positions.len())
        .unwrap();
    let logits = model
        .forward_at(&inputs.batch(), &positions, &mut ws)
        .unwrap();
    assert_eq!(logits.dims(), &[3, v]);
    for (row, &p) in positions.iter().enumerate() {
        assert_close(
            "logits at a position",
            logits.row(row),
            &want[p * v..(p + 1) * v],
            TOL,
        );
    }
    assert!(model
        .forward_at(&inputs.batch(), &[2 * inputs.seq], &mut ws)
        .is_err());
    assert!(model
        .forward_at(&inputs.batch(), &[0, 1, 2, 3], &mut ws)
        .is_err());
}
