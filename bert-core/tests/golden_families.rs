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
        ("modernbert", Family::ModernBert),
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
                    matches!(
                        fam,
                        Family::Electra | Family::DistilBert | Family::ModernBert
                    ),
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
    let (modern, _) = family("modernbert");
    match modern.arch.block {
        bert_core::arch::Block::PreNorm(p) => {
            assert_eq!((p.global_every, p.half_window, p.gated), (3, 4, true));
            assert_eq!((p.global_theta, p.local_theta), (160_000.0, 10_000.0));
            assert_eq!(p.layer(0), (None, 160_000.0));
            assert_eq!(p.layer(1), (Some(4), 10_000.0));
        }
        other => panic!("{other:?}"),
    }
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
            .contains("bert, roberta, xlm-roberta, electra, distilbert, modernbert"),
        "{e}"
    );
}

/// Each family's masked-LM, sequence- and token-classification and QA heads (seeded) against
/// transformers, on the real tokens of the same padded batch.
#[test]
fn every_family_head_matches_transformers() {
    use bert_core::{
        BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification,
        BertForTokenClassification,
    };
    let golden = Golden::open("families/outputs.safetensors");
    for name in [
        "roberta",
        "xlm-roberta",
        "electra",
        "distilbert",
        "modernbert",
    ] {
        let inputs = golden.inputs(name);
        let (config, _) = family(name);
        let batch = if config.arch.token_types {
            inputs.batch()
        } else {
            bert_core::Batch::new(&inputs.ids, inputs.batch, inputs.seq)
                .with_attention_mask(&inputs.mask)
        };
        let (b, s) = (inputs.batch, inputs.seq);
        for head in ["mlm", "seqcls", "tokcls", "qa"] {
            let (config, bytes) = family(&format!("{name}-{head}"));
            let w = Weights::from_buffers(&[&bytes]).unwrap();
            let what = format!("{name} {head}");
            let want = |k: &str| golden.f32(&format!("{name}-{head}.{k}")).0;
            match head {
                "mlm" => {
                    let m = BertForMaskedLM::load(&config, &w).unwrap();
                    let mut ws = m.workspace(b, s).unwrap();
                    let got = m.forward(&batch, &mut ws).unwrap();
                    let want = want("logits");
                    assert_close(
                        &what,
                        &real_rows(got.data, &inputs.mask),
                        &real_rows(&want, &inputs.mask),
                        TOL,
                    );
                }
                "seqcls" => {
                    let m = BertForSequenceClassification::load(&config, &w).unwrap();
                    let mut ws = m.workspace(b, s).unwrap();
                    let got = m.forward(&batch, &mut ws).unwrap();
                    assert_eq!(got.dims(), [b, 3]);
                    assert_close(&what, got.data, &want("logits"), TOL);
                }
                "tokcls" => {
                    let m = BertForTokenClassification::load(&config, &w).unwrap();
                    let mut ws = m.workspace(b, s).unwrap();
                    let got = m.forward(&batch, &mut ws).unwrap();
                    assert_close(
                        &what,
                        &real_rows(got.data, &inputs.mask),
                        &real_rows(&want("logits"), &inputs.mask),
                        TOL,
                    );
                }
                _ => {
                    let m = BertForQuestionAnswering::load(&config, &w).unwrap();
                    let mut ws = m.workspace(b, s).unwrap();
                    let got = m.forward(&batch, &mut ws).unwrap();
                    for (k, g) in [
                        ("start_logits", got.start_logits),
                        ("end_logits", got.end_logits),
                    ] {
                        assert_close(
                            &format!("{what} {k}"),
                            &real_rows(g.data, &inputs.mask),
                            &real_rows(&want(k), &inputs.mask),
                            TOL,
                        );
                    }
                }
            }
        }
    }
}
