//! The family-neutral encoder against transformers for every family other than BERT: seeded
//! random-init RoBERTa, XLM-RoBERTa, ELECTRA and DistilBERT models with unusual configs
//! (goldens/generate_families.py), a right-padded batch, padding removed and kept.
mod common;

use bert_core::arch::{Family, PositionScheme};
use bert_core::{BertConfig, BertModel, Error, Weights};
use common::*;

const TOL: f32 = 1e-4;

fn family(name: &str) -> (BertConfig, Vec<u8>) {
    let dir = golden_path("families").join(name);
    let config =
        BertConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    (
        config,
        std::fs::read(dir.join("model.safetensors")).unwrap(),
    )
}

#[test]
fn every_family_matches_transformers() {
    let golden = Golden::open("families/outputs.safetensors");
    for (name, fam) in [
        ("roberta", Family::Roberta),
        ("xlm-roberta", Family::XlmRoberta),
        ("electra", Family::Electra),
        ("distilbert", Family::DistilBert),
    ] {
        let (config, bytes) = family(name);
        assert_eq!(config.arch.family, fam);
        let weights = Weights::from_buffers(&[&bytes]).unwrap();
        let model = BertModel::load(&config, &weights).unwrap();
        let inputs = golden.inputs(name);
        let (want, shape) = golden.f32(&format!("{name}.last_hidden_state"));
        assert_eq!(shape, [inputs.batch, inputs.seq, config.hidden_size]);
        let mut ws = model.workspace(inputs.batch, inputs.seq).unwrap();
        for remove_padding in [true, false] {
            ws.set_remove_padding(remove_padding);
            let batch = if config.arch.token_types {
                inputs.batch()
            } else {
                bert_core::Batch::new(&inputs.ids, inputs.batch, inputs.seq)
                    .with_attention_mask(&inputs.mask)
            };
            let out = model.forward(&batch, &mut ws).unwrap();
            assert_close(
                &format!("{name} last_hidden_state (padding removed: {remove_padding})"),
                &real_rows(out.last_hidden_state, &inputs.mask),
                &real_rows(&want, &inputs.mask),
                TOL,
            );
            let pooled = format!("{name}.pooler_output");
            match out.pooler_output {
                Some(p) => assert_close(&pooled, p, &golden.f32(&pooled).0, TOL),
                None => assert!(
                    matches!(fam, Family::Electra | Family::DistilBert),
                    "{name} has a pooler"
                ),
            }
        }
    }
}

#[test]
fn family_details_are_read_from_the_config() {
    let (roberta, _) = family("roberta");
    assert_eq!(
        roberta.arch.positions,
        PositionScheme::PaddingOffset { padding_idx: 1 }
    );
    assert_eq!(
        roberta.max_sequence_length(),
        40,
        "514-style tables: 2 slots go to the offset"
    );
    let (electra, _) = family("electra");
    assert_eq!(electra.arch.embedding_size, Some(24));
    let (distil, _) = family("distilbert");
    assert_eq!(
        (
            distil.hidden_size,
            distil.num_hidden_layers,
            distil.intermediate_size
        ),
        (48, 2, 80)
    );
    assert!(!distil.arch.token_types);
    let e = BertConfig::from_json(r#"{"model_type": "gpt2", "vocab_size": 10}"#).unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                field: "model_type",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("bert, roberta, xlm-roberta, electra, distilbert"),
        "{e}"
    );
}
