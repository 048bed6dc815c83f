//! all-MiniLM-L6-v2 (real weights) against HF transformers' BertModel: embeddings,
//! last_hidden_state and pooler_output, for a single sentence, a padded batch and a pair.
mod common;

use bert_core::{BertModel, Weights};
use common::*;

const TOL: f32 = 1e-4;

#[test]
fn minilm_matches_transformers() {
    let (config, bytes) = load_model_files("all-minilm-l6-v2");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertModel::load(&config, &weights).unwrap();
    assert!(model.pooler.is_some());
    let golden = Golden::open("minilm.safetensors");
    let mut ws = model.workspace(3, 32).unwrap();
    for case in ["single", "batch", "pair"] {
        let inputs = golden.inputs(case);
        if case == "batch" {
            assert!(inputs.mask.contains(&0), "the batch case has padding");
        }
        if case == "pair" {
            assert!(inputs.types.contains(&1), "the pair case has segment B");
        }
        // Padding kept: every position, padding included, is HF's.
        ws.set_remove_padding(false);
        let out = model.forward(&inputs.batch(), &mut ws).unwrap();
        let (want, shape) = golden.f32(&format!("{case}.last_hidden_state"));
        assert_eq!(shape, [out.batch_size, out.seq_len, out.hidden_size]);
        assert_close(
            &format!("{case} last_hidden_state (padding kept)"),
            out.last_hidden_state,
            &want,
            TOL,
        );
        // Padding removed (the default): real tokens are HF's, padding rows are zero.
        ws.set_remove_padding(true);
        let out = model.forward(&inputs.batch(), &mut ws).unwrap();
        let h = out.hidden_size;
        let masked_want: Vec<f32> = want
            .chunks_exact(h)
            .zip(&inputs.mask)
            .flat_map(|(row, &m)| row.iter().map(move |&v| if m == 0 { 0.0 } else { v }))
            .collect();
        assert_close(
            &format!("{case} last_hidden_state (padding removed)"),
            out.last_hidden_state,
            &masked_want,
            TOL,
        );
        let (want, _) = golden.f32(&format!("{case}.pooler_output"));
        assert_close(
            &format!("{case} pooler_output"),
            out.pooler_output.unwrap(),
            &want,
            TOL,
        );
    }
}

#[test]
fn embedding_components_add_up_like_the_seed() {
    let (config, bytes) = load_model_files("all-minilm-l6-v2");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertModel::load(&config, &weights).unwrap();
    let golden = Golden::open("minilm.safetensors");
    let inputs = golden.inputs("pair");
    let e = &model.embeddings;
    let h = config.hidden_size;
    assert_eq!(e.word_embeddings.num_embeddings(), 30522);
    assert_eq!(
        e.position_embeddings.as_ref().unwrap().num_embeddings(),
        512
    );
    assert_eq!(
        e.token_type_embeddings.as_ref().unwrap().num_embeddings(),
        2
    );
    // The seed's walk-through: word + position + segment, then LayerNorm.
    let mut manual = vec![0.0f32; inputs.ids.len() * h];
    let mut row = vec![0.0f32; h];
    for (t, dst) in manual.chunks_exact_mut(h).enumerate() {
        e.word_embeddings.lookup_into(inputs.ids[t] as usize, dst);
        e.position_embeddings
            .as_ref()
            .unwrap()
            .lookup_into(t % inputs.seq, &mut row);
        dst.iter_mut().zip(&row).for_each(|(d, r)| *d += r);
        e.token_type_embeddings
            .as_ref()
            .unwrap()
            .lookup_into(inputs.types[t] as usize, &mut row);
        dst.iter_mut().zip(&row).for_each(|(d, r)| *d += r);
    }
    e.layer_norm.forward(&mut manual);
    let (want, _) = golden.f32("pair.embeddings");
    assert_close("pair embeddings (by components)", &manual, &want, TOL);

    let mut out = vec![0.0f32; inputs.ids.len() * h];
    e.forward(&inputs.batch(), &mut out, &mut row);
    assert_close("pair embeddings (forward)", &out, &want, TOL);
}

#[test]
fn padding_does_not_change_real_tokens() {
    // The same sentence alone and padded inside a batch gives the same hidden states.
    let (config, bytes) = load_model_files("all-minilm-l6-v2");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertModel::load(&config, &weights).unwrap();
    let golden = Golden::open("minilm.safetensors");
    let batch = golden.inputs("batch");
    let (b, s, h) = (batch.batch, batch.seq, config.hidden_size);
    let mut ws = model.workspace(b, s).unwrap();
    let padded = model
        .forward(&batch.batch(), &mut ws)
        .unwrap()
        .last_hidden_state
        .to_vec();
    for i in 0..b {
        let len = batch.mask[i * s..(i + 1) * s]
            .iter()
            .filter(|&&m| m == 1)
            .count();
        let ids = &batch.ids[i * s..i * s + len];
        let mut ws1 = model.workspace(1, len).unwrap();
        let alone = model
            .forward(&bert_core::Batch::single(ids), &mut ws1)
            .unwrap();
        assert_close(
            &format!("sequence {i} alone vs padded"),
            alone.last_hidden_state,
            &padded[i * s * h..(i * s + len) * h],
            1e-5,
        );
    }
}
