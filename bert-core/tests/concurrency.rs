//! One loaded model shared by several threads (each with its own workspace) computes exactly
//! what it computes sequentially.
mod common;

use bert_core::{BertForMaskedLM, BertModel, Weights};
use common::*;

#[test]
fn shared_model_is_bit_identical_across_threads() {
    let (config, bytes) = load_model_files("all-minilm-l6-v2");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertModel::load(&config, &weights).unwrap();
    let golden = Golden::open("minilm.safetensors");
    let cases: Vec<Inputs> = ["single", "batch", "pair"]
        .iter()
        .map(|c| golden.inputs(c))
        .collect();
    let run = |inputs: &Inputs| {
        let mut ws = model.workspace(inputs.batch, inputs.seq).unwrap();
        let out = model.forward(&inputs.batch(), &mut ws).unwrap();
        (
            out.last_hidden_state.to_vec(),
            out.pooler_output.unwrap().to_vec(),
        )
    };
    let sequential: Vec<_> = cases.iter().map(run).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (cases, run) = (&cases, &run);
                s.spawn(move || {
                    // Each thread runs every case several times, starting at a different one.
                    (0..3 * cases.len())
                        .map(|i| {
                            let c = (t + i) % cases.len();
                            (c, run(&cases[c]))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (c, got) in h.join().unwrap() {
                assert_eq!(got, sequential[c], "case {c} differs under concurrency");
            }
        }
    });
}

#[test]
fn shared_masked_lm_is_bit_identical_across_threads() {
    let (config, bytes) = load_model_files("splade-tiny");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertForMaskedLM::load(&config, &weights).unwrap();
    let inputs = Golden::open("splade_tiny.safetensors").inputs("batch");
    let run = || {
        let mut ws = model.workspace(inputs.batch, inputs.seq).unwrap();
        model
            .forward(&inputs.batch(), &mut ws)
            .unwrap()
            .data
            .to_vec()
    };
    let want = run();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..4).map(|_| s.spawn(run)).collect();
        for h in hs {
            assert!(h.join().unwrap() == want);
        }
    });
}

/// A [`bert_core::Parallel`] that really runs the second closure on another thread.
struct ScopedThreads;

impl bert_core::Parallel for ScopedThreads {
    fn join(&self, a: &mut (dyn FnMut() + Send), b: &mut (dyn FnMut() + Send)) {
        std::thread::scope(|s| {
            s.spawn(b);
            a();
        });
    }
}

#[test]
fn intra_op_threads_give_bit_identical_results() {
    let (config, bytes) = load_model_files("all-minilm-l6-v2");
    let weights = Weights::from_buffers(&[&bytes]).unwrap();
    let model = BertModel::load(&config, &weights).unwrap();
    let golden = Golden::open("minilm.safetensors");
    // A long single sequence (split by query rows), the padded batch (split by sequences),
    // and short sequences, whose products of a few rows are split by columns (12 rows through
    // the tiles, 3 through the few-rows path), unpacked and prepacked.
    let long: Vec<u32> = (0..200).map(|i| 1000 + (i * 37) % 20000).collect();
    let short: Vec<u32> = long[..12].to_vec();
    let tiny: Vec<u32> = long[..3].to_vec();
    let mut packed = model.clone();
    packed.prepack();
    let batch = golden.inputs("batch");
    for remove_padding in [true, false] {
        for model in [&model, &packed] {
            let run = |threads: usize, b: &bert_core::Batch<'_>| {
                let mut ws = model.workspace(b.batch_size, b.seq_len).unwrap();
                ws.set_remove_padding(remove_padding);
                ws.set_parallelism(threads, &ScopedThreads);
                let out = model.forward(b, &mut ws).unwrap();
                out.last_hidden_state.to_vec()
            };
            let single = bert_core::Batch::single;
            for b in [single(&long), batch.batch(), single(&short), single(&tiny)] {
                let one = run(1, &b);
                for threads in [2, 3, 4] {
                    assert_eq!(run(threads, &b), one, "{threads} threads");
                }
            }
        }
    }
}
