//! Times the core model's forward pass on token ids (no tokenizer), for
//! `scripts/bench_vs_ort.py`, which runs ONNX Runtime and PyTorch on the same inputs.
//!
//! ```text
//! cargo run --release --example bench_forward -- --model DIR --batch 32 --seq 128 --threads 2
//! cargo run --release --example bench_forward -- --fma-peak --threads 2
//! ```
//!
//! Prints one JSON line. Inputs: `--ids FILE` (JSON `{"input_ids": [[..]], "attention_mask": [[..]]}`,
//! as the script writes them) or seeded random ids of `--seq` tokens. A sequence batch is split
//! over `--threads` threads inside each layer (or, with `--split-batch`, split into contiguous
//! parts with a workspace each); ORT and PyTorch get the same thread count for their intra-op
//! pools.

use std::time::Instant;

use bert_core::{Batch, BertModel};
use bert_std::batching::RayonJoin;
use bert_std::{LoadedModel, ModelDir, Task};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// A HF model directory (f32, f16 or int8 safetensors).
    #[arg(long)]
    model: Option<std::path::PathBuf>,
    /// JSON file with `input_ids` and `attention_mask` (lists of lists, right-padded).
    #[arg(long)]
    ids: Option<std::path::PathBuf>,
    /// Sequences per batch (random ids only).
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Tokens per sequence (random ids only).
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Split the batch over the threads (one workspace each) instead of splitting each
    /// forward pass.
    #[arg(long)]
    split_batch: bool,
    /// Do not pre-pack the weights (pack them inside every product instead).
    #[arg(long)]
    no_prepack: bool,
    /// Compute padding positions too (the masked path, for comparison).
    #[arg(long)]
    keep_padding: bool,
    /// Products in bf16 with f32 sums (bf16 weight panels; `vdpbf16ps` where the CPU has it).
    #[arg(long)]
    bf16: bool,
    /// Measure the machine's f32 FMA peak instead (GFLOP/s).
    #[arg(long)]
    fma_peak: bool,
}

struct Inputs {
    ids: Vec<u32>,
    mask: Vec<u32>,
    batch: usize,
    seq: usize,
}

fn read_inputs(args: &Args, vocab: usize) -> Inputs {
    if let Some(path) = &args.ids {
        let text = std::fs::read_to_string(path).expect("read --ids");
        let v: serde_json::Value = serde_json::from_str(&text).expect("parse --ids");
        let rows = |key: &str| -> Vec<Vec<u32>> {
            v[key]
                .as_array()
                .expect(key)
                .iter()
                .map(|r| {
                    r.as_array()
                        .expect("row")
                        .iter()
                        .map(|x| x.as_u64().expect("id") as u32)
                        .collect()
                })
                .collect()
        };
        let (ids, mask) = (rows("input_ids"), rows("attention_mask"));
        let (batch, seq) = (ids.len(), ids[0].len());
        return Inputs {
            ids: ids.concat(),
            mask: mask.concat(),
            batch,
            seq,
        };
    }
    let mut s = 42u64;
    let ids = (0..args.batch * args.seq)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as usize % vocab) as u32
        })
        .collect();
    Inputs {
        ids,
        mask: vec![1; args.batch * args.seq],
        batch: args.batch,
        seq: args.seq,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Run `inputs` once: with one workspace, the forward pass itself is split over the pool's
/// threads (rows of each layer); with several, the batch is split into contiguous parts.
fn run_once(
    model: &BertModel<'_>,
    inputs: &Inputs,
    workspaces: &mut [bert_core::Workspace],
    pool: &rayon::ThreadPool,
) {
    let parts = workspaces.len();
    let per = inputs.batch.div_ceil(parts);
    pool.install(|| {
        rayon::scope(|scope| {
            for (p, ws) in workspaces.iter_mut().enumerate() {
                let (b0, b1) = (p * per, ((p + 1) * per).min(inputs.batch));
                if b0 >= b1 {
                    continue;
                }
                let r = b0 * inputs.seq..b1 * inputs.seq;
                let (ids, mask) = (&inputs.ids[r.clone()], &inputs.mask[r]);
                scope.spawn(move |_| {
                    let batch = Batch::new(ids, b1 - b0, inputs.seq).with_attention_mask(mask);
                    model.forward(&batch, ws).expect("forward");
                });
            }
        })
    });
}

fn main() {
    let args = Args::parse();
    if args.fma_peak {
        let (single, all) = examples::peak::fma_peak_gflops(args.threads);
        println!(
            "{}",
            serde_json::json!({"fma_peak_gflops_1_thread": single, "fma_peak_gflops": all, "threads": args.threads, "isa": bert_core::kernels::isa_name()})
        );
        return;
    }
    let dir = ModelDir::open(args.model.as_ref().expect("--model DIR")).expect("model dir");
    let mut loaded = LoadedModel::load(&dir, Task::Base, true).expect("load");
    if !args.no_prepack {
        loaded.prepack_as(if args.bf16 {
            bert_core::kernels::Precision::Bf16
        } else {
            bert_core::kernels::Precision::Stored
        });
    }
    let model = loaded.model().bert();
    let inputs = read_inputs(&args, model.config.vocab_size);
    let parts = if args.split_batch {
        args.threads.clamp(1, inputs.batch)
    } else {
        1
    };
    let per = inputs.batch.div_ceil(parts);
    let mut workspaces: Vec<_> = (0..parts)
        .map(|_| {
            let mut ws = model.workspace(per, inputs.seq).expect("workspace");
            ws.set_remove_padding(!args.keep_padding);
            if parts == 1 {
                ws.set_parallelism(args.threads, &RayonJoin);
            }
            ws
        })
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .expect("thread pool");
    run_once(model, &inputs, &mut workspaces, &pool); // warm-up
    let times: Vec<f64> = (0..args.iters)
        .map(|_| {
            let t = Instant::now();
            run_once(model, &inputs, &mut workspaces, &pool);
            t.elapsed().as_secs_f64()
        })
        .collect();
    let secs = median(times);
    let real_tokens: u32 = inputs.mask.iter().sum();
    println!(
        "{}",
        serde_json::json!({
            "median_s": secs,
            "seq_per_s": inputs.batch as f64 / secs,
            "tokens_per_s": real_tokens as f64 / secs,
            "batch": inputs.batch,
            "seq": inputs.seq,
            "threads": args.threads,
            "remove_padding": !args.keep_padding,
            "prepacked": !args.no_prepack,
            "bf16": args.bf16 && !args.no_prepack,
            "weight_bytes": model.weight_bytes(),
            "isa": bert_core::kernels::isa_name(),
        })
    );
}
