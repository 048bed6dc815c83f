//! A tiny deterministic model for the unit tests (small enough for Miri).

use alloc::string::String;
use alloc::vec::Vec;

use crate::config::BertConfig;
use crate::safetensors::{serialize, Dtype};

/// A 1-layer, hidden-4 BERT with deterministic weights: small enough for Miri.
pub(crate) fn tiny_model_file() -> (BertConfig, Vec<u8>) {
    let config = BertConfig::from_json(
        r#"{"vocab_size": 10, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 8, "max_position_embeddings": 6, "type_vocab_size": 2}"#,
    )
    .unwrap();
    let shapes: [(&str, &[usize]); 16] = [
        ("embeddings.word_embeddings.weight", &[10, 4]),
        ("embeddings.position_embeddings.weight", &[6, 4]),
        ("embeddings.token_type_embeddings.weight", &[2, 4]),
        ("embeddings.LayerNorm.weight", &[4]),
        ("embeddings.LayerNorm.bias", &[4]),
        ("encoder.layer.0.attention.self.query.weight", &[4, 4]),
        ("encoder.layer.0.attention.self.query.bias", &[4]),
        ("encoder.layer.0.attention.self.key.weight", &[4, 4]),
        ("encoder.layer.0.attention.self.key.bias", &[4]),
        ("encoder.layer.0.attention.self.value.weight", &[4, 4]),
        ("encoder.layer.0.attention.self.value.bias", &[4]),
        ("encoder.layer.0.attention.output.dense.weight", &[4, 4]),
        ("encoder.layer.0.attention.output.dense.bias", &[4]),
        ("encoder.layer.0.attention.output.LayerNorm.weight", &[4]),
        ("encoder.layer.0.attention.output.LayerNorm.bias", &[4]),
        ("encoder.layer.0.intermediate.dense.weight", &[8, 4]),
    ];
    let more: [(&str, &[usize]); 5] = [
        ("encoder.layer.0.intermediate.dense.bias", &[8]),
        ("encoder.layer.0.output.dense.weight", &[4, 8]),
        ("encoder.layer.0.output.dense.bias", &[4]),
        ("encoder.layer.0.output.LayerNorm.weight", &[4]),
        ("encoder.layer.0.output.LayerNorm.bias", &[4]),
    ];
    let mut seed = 1u32;
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = shapes
        .iter()
        .chain(more.iter())
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let bytes = (0..n)
                .flat_map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    ((seed >> 16) as f32 / 65536.0 - 0.5).to_le_bytes()
                })
                .collect();
            (String::from(*name), shape.to_vec(), bytes)
        })
        .collect();
    let refs: Vec<(&str, Dtype, &[usize], &[u8])> = data
        .iter()
        .map(|(n, s, b)| (n.as_str(), Dtype::F32, s.as_slice(), b.as_slice()))
        .collect();
    (config, serialize(&refs, &[]).unwrap())
}
