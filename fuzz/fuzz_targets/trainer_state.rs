//! Arbitrary bytes as the `trainer_state.safetensors` that `--resume` reads, against a real
//! (tiny) classifier's parameter layout: the state is taken whole or refused with an error,
//! never a panic or a huge allocation (the seed is a real state, written by a killed run).
#![no_main]
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use bert_core::train::optim::AdamW;
use bert_core::train::params::Parameters;
use bert_core::train::seqcls::SeqClsTrainer;
use bert_core::{BertConfig, BertForSequenceClassification, Weights};
use bert_std::train::classify::TrainOptions;
use bert_std::train::state::read_state;
use libfuzzer_sys::fuzz_target;

struct Tiny {
    model: BertForSequenceClassification<'static>,
    grads: bert_core::train::Grads,
    opt: AdamW,
    /// What the model borrows from (kept reachable, so that leak checks stay quiet).
    _weights: &'static Weights<'static>,
}

static TINY: OnceLock<Mutex<Tiny>> = OnceLock::new();

/// The round-trip goldens' tiny BERT classifier (committed, 2 labels).
fn tiny() -> &'static Mutex<Tiny> {
    TINY.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bert-std/tests/goldens/roundtrip/classify");
        let config = BertConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let bytes: &'static [u8] = Box::leak(std::fs::read(dir.join("model.safetensors")).unwrap().into_boxed_slice());
        let weights: &'static Weights = Box::leak(Box::new(Weights::from_buffers(&[bytes]).unwrap()));
        let model = BertForSequenceClassification::load(&config, weights).unwrap();
        let grads = SeqClsTrainer::new(&model).unwrap().grads();
        let opt = AdamW::new(&grads, OPTIONS.weight_decay);
        Mutex::new(Tiny { model, grads, opt, _weights: weights })
    })
}

/// The settings the seed state was written with (bert-std/tests/cache_concurrency.rs).
const OPTIONS: TrainOptions = TrainOptions {
    epochs: 3,
    lr: 1e-2,
    batch_size: 4,
    grad_accum: 1,
    max_seq_len: 32,
    seed: 7,
    warmup_ratio: 0.1,
    weight_decay: 0.01,
    resume: true,
    dropout: true,
};

fuzz_target!(|data: &[u8]| {
    let mut tiny = tiny().lock().unwrap();
    let Tiny { model, grads, opt, .. } = &mut *tiny;
    let mut params = model.param_list().unwrap();
    let options = OPTIONS;
    if let Ok(r) = read_state(data, Path::new("trainer_state.safetensors"), &options, 6, grads, &mut params, opt) {
        assert_eq!(r.losses.len(), r.step);
        assert!(r.epochs_done < options.epochs);
    }
});
