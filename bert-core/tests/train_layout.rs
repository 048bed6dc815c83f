//! Every trainer's gradient buffers line up with its model's parameters: for every family's
//! tiny task model (goldens/families/), the i-th gradient's name is a tensor of the checkpoint
//! whose shape is the gradient's and whose values are the i-th parameter's, as loaded. The
//! optimizer pairs them by position, so a mismatch here would update the wrong weights.
mod common;

use bert_core::train::params::Parameters;
use bert_core::train::pretrain::PreTrainer;
use bert_core::train::qa::QaTrainer;
use bert_core::train::seqcls::SeqClsTrainer;
use bert_core::train::tokcls::TokClsTrainer;
use bert_core::train::Grads;
use bert_core::{
    BertConfig, BertForMaskedLM, BertForQuestionAnswering, BertForSequenceClassification,
    BertForTokenClassification, Weights,
};
use common::*;

const FAMILIES: [&str; 5] = [
    "roberta",
    "xlm-roberta",
    "electra",
    "distilbert",
    "modernbert",
];

fn family(name: &str) -> (BertConfig, Vec<u8>) {
    let dir = golden_path("families").join(name);
    let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let config = BertConfig::from_json(&json).unwrap();
    (
        config,
        std::fs::read(dir.join("model.safetensors")).unwrap(),
    )
}

/// The gradients' layout against the parameters and the checkpoint they were loaded from.
fn check(case: &str, grads: &Grads, params: Vec<&mut [f32]>, weights: &Weights<'_>) {
    let layout: Vec<(&str, &[usize])> = grads.layout().collect();
    assert_eq!(
        layout.len(),
        params.len(),
        "{case}: gradients vs parameters"
    );
    for ((name, shape), param) in layout.into_iter().zip(params) {
        let stored = weights
            .tensor(name, shape)
            .unwrap_or_else(|e| panic!("{case}: gradient {name} {shape:?}: {e}"));
        let stored = stored.to_f32();
        assert_eq!(
            &stored[..],
            &param[..],
            "{case}: {name} is not its parameter"
        );
    }
}

/// Loads `{fam}-{head}` as `$model`, and checks its trainer's gradients (`$grads` of the
/// model) against its parameters.
macro_rules! case {
    ($fam:expr, $head:expr, $model:ident, $grads:expr) => {{
        let name = format!("{}-{}", $fam, $head);
        let (config, bytes) = family(&name);
        let weights = Weights::from_buffers(&[&bytes]).unwrap();
        let mut model = $model::load(&config, &weights).unwrap();
        let grads: Grads = $grads(&model);
        check(&name, &grads, model.param_list().unwrap(), &weights);
    }};
}

#[test]
fn every_trainers_gradients_are_its_models_parameters_in_order() {
    for fam in FAMILIES {
        case!(fam, "seqcls", BertForSequenceClassification, |m| {
            SeqClsTrainer::new(m).unwrap().grads()
        });
        case!(fam, "tokcls", BertForTokenClassification, |m| {
            TokClsTrainer::new(m).unwrap().grads()
        });
        case!(fam, "qa", BertForQuestionAnswering, |m| {
            QaTrainer::new(m).unwrap().grads()
        });
        case!(fam, "mlm", BertForMaskedLM, |m| {
            PreTrainer::masked_lm(m).unwrap().grads()
        });
    }
}
