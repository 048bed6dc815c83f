//! Arbitrary bytes as a config.json and a model.safetensors: Ok or a typed error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

use bert_core::{BertConfig, BertForMaskedLM, Weights};

fuzz_target!(|data: &[u8]| {
    // Layout: [n][config.json: 4n bytes][model.safetensors: the rest].
    let Some((&n, rest)) = data.split_first() else { return };
    let (config_bytes, weights) = rest.split_at((n as usize * 4).min(rest.len()));
    let config_text = String::from_utf8_lossy(config_bytes);
    let _ = BertConfig::from_json(&config_text);
    let Ok(w) = Weights::from_buffers(&[weights]) else { return };
    // A tiny valid config, so that hostile tensor tables reach the shape checks.
    let config = BertConfig::from_json(
        r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 8, "max_position_embeddings": 8, "type_vocab_size": 2}"#,
    )
    .expect("valid");
    if let Ok(model) = BertForMaskedLM::load(&config, &w) {
        let ids = [1u32, 2, 3];
        if let Ok(mut ws) = model.workspace(1, 3) {
            let _ = model.forward(&bert_core::Batch::single(&ids), &mut ws);
        }
    }
});
