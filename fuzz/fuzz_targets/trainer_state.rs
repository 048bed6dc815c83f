//! The `trainer_state.safetensors` that `--resume` reads, against a real classifier's
//! parameter layout (a micro BERT built in memory: 1 layer, hidden 4, vocab 8, 2 labels, whose
//! state is 4 KB). The first byte picks the mode: 0 reads the rest as a whole state file; any
//! other value applies the rest as patches (offset u16, length u8, bytes) to a valid state
//! written by the trainer's own writer, so that mutations reach every check behind the
//! header. The state is taken whole or refused with an error, never a panic or a huge
//! allocation.
#![no_main]
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use bert_core::safetensors::serialize;
use bert_core::train::optim::AdamW;
use bert_core::train::params::Parameters;
use bert_core::train::seqcls::SeqClsTrainer;
use bert_core::train::Grads;
use bert_core::{BertConfig, BertForSequenceClassification, Dtype, Weights};
use bert_std::train::TrainOptions;
use bert_std::train::state::{read_state, state_bytes};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
  "num_attention_heads": 2, "intermediate_size": 8, "max_position_embeddings": 8,
  "type_vocab_size": 2, "num_labels": 2}"#;

/// Every tensor of the micro classifier, (name, shape).
fn tensors() -> Vec<(String, Vec<usize>)> {
    let mut t: Vec<(String, Vec<usize>)> = vec![
        ("embeddings.word_embeddings.weight".into(), vec![8, 4]),
        ("embeddings.position_embeddings.weight".into(), vec![8, 4]),
        ("embeddings.token_type_embeddings.weight".into(), vec![2, 4]),
        ("embeddings.LayerNorm.weight".into(), vec![4]),
        ("embeddings.LayerNorm.bias".into(), vec![4]),
    ];
    let l = "encoder.layer.0";
    for (name, out, inp) in [
        ("attention.self.query", 4, 4),
        ("attention.self.key", 4, 4),
        ("attention.self.value", 4, 4),
        ("attention.output.dense", 4, 4),
        ("intermediate.dense", 8, 4),
        ("output.dense", 4, 8),
    ] {
        t.push((format!("{l}.{name}.weight"), vec![out, inp]));
        t.push((format!("{l}.{name}.bias"), vec![out]));
    }
    for norm in ["attention.output.LayerNorm", "output.LayerNorm"] {
        t.push((format!("{l}.{norm}.weight"), vec![4]));
        t.push((format!("{l}.{norm}.bias"), vec![4]));
    }
    t.push(("pooler.dense.weight".into(), vec![4, 4]));
    t.push(("pooler.dense.bias".into(), vec![4]));
    t.push(("classifier.weight".into(), vec![2, 4]));
    t.push(("classifier.bias".into(), vec![2]));
    t
}

struct Micro {
    model: BertForSequenceClassification<'static>,
    grads: Grads,
    opt: AdamW,
    valid: Vec<u8>,
    /// What the model borrows from (kept reachable, so that leak checks stay quiet).
    _weights: &'static Weights<'static>,
}

const OPTIONS: TrainOptions = TrainOptions {
    epochs: 3,
    lr: 1e-2,
    batch_size: 4,
    grad_accum: 1,
    max_seq_len: 8,
    seed: 7,
    warmup_ratio: 0.1,
    weight_decay: 0.01,
    resume: true,
    dropout: true,
};
const EXAMPLES: usize = 6;

fn micro() -> &'static Mutex<Micro> {
    static MICRO: OnceLock<Mutex<Micro>> = OnceLock::new();
    MICRO.get_or_init(|| {
        let list = tensors();
        let data: Vec<Vec<u8>> = list
            .iter()
            .enumerate()
            .map(|(i, (_, shape))| {
                let n: usize = shape.iter().product();
                (0..n).flat_map(|j| (((i * 7 + j) % 5) as f32 * 0.1 - 0.2).to_le_bytes()).collect()
            })
            .collect();
        let views: Vec<(&str, Dtype, &[usize], &[u8])> =
            list.iter().zip(&data).map(|((n, s), d)| (n.as_str(), Dtype::F32, &s[..], &d[..])).collect();
        let bytes: &'static [u8] = Box::leak(serialize(&views, &[]).unwrap().into_boxed_slice());
        let weights: &'static Weights = Box::leak(Box::new(Weights::from_buffers(&[bytes]).unwrap()));
        let config = BertConfig::from_json(CONFIG).unwrap();
        let mut model = BertForSequenceClassification::load(&config, weights).unwrap();
        let grads = SeqClsTrainer::new(&model).unwrap().grads();
        let opt = AdamW::new(&grads, OPTIONS.weight_decay);
        let params = model.param_list().unwrap();
        let losses = [0.7f32, 0.6];
        let valid = state_bytes(&OPTIONS, EXAMPLES, (1, 2), &grads, &params, &opt, &losses).unwrap();
        drop(params);
        Mutex::new(Micro { model, grads, opt, valid, _weights: weights })
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut m = micro().lock().unwrap();
    let Micro { model, grads, opt, valid, .. } = &mut *m;
    let state = if mode == 0 {
        rest.to_vec()
    } else {
        let mut state = valid.clone();
        let mut patches = rest;
        while let [a, b, len, tail @ ..] = patches {
            let at = usize::from(u16::from_le_bytes([*a, *b])) % state.len();
            let len = usize::from(*len).min(tail.len());
            let end = (at + len).min(state.len());
            state[at..end].copy_from_slice(&tail[..end - at]);
            patches = &tail[len..];
        }
        state
    };
    let mut params = model.param_list().unwrap();
    let path = Path::new("trainer_state.safetensors");
    if let Ok(r) = read_state(&state, path, &OPTIONS, EXAMPLES, grads, &mut params, opt) {
        assert_eq!(r.losses.len(), r.step);
        assert!(r.epochs_done < OPTIONS.epochs);
    }
});
