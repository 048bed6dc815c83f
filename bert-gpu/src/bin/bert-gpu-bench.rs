//! Throughput of the GPU forward on a model directory, for GPU hosts that have no Rust
//! toolchain: build here (`cargo build --release -p bert-gpu --bin bert-gpu-bench`), copy the
//! binary and the model directory over, run there.
//!
//! ```text
//! bert-gpu-bench MODEL_DIR [BATCH] [SEQ] [ITERS]
//! ```
//!
//! Prints one JSON line; on a machine without CUDA it prints the reason and exits 0.

use std::time::Instant;

use bert_core::{Batch, BertConfig, BertModel, Weights};
use bert_gpu::GpuBert;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(
        args.get(1)
            .ok_or("usage: bert-gpu-bench MODEL_DIR [BATCH] [SEQ] [ITERS]")?,
    );
    let num =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (batch, seq, iters) = (num(2, 32), num(3, 128), num(4, 20));
    let config = std::fs::read_to_string(dir.join("config.json")).map_err(|e| e.to_string())?;
    let config = BertConfig::from_json(&config).map_err(|e| e.to_string())?;
    let bytes = std::fs::read(dir.join("model.safetensors")).map_err(|e| e.to_string())?;
    let weights = Weights::from_buffers(&[&bytes]).map_err(|e| e.to_string())?;
    let model = BertModel::load(&config, &weights).map_err(|e| e.to_string())?;
    let gpu = match GpuBert::new(&model) {
        Ok(g) => g,
        Err(e) => {
            println!("{{\"skipped\": \"{e}\"}}");
            return Ok(());
        }
    };
    let ids: Vec<u32> = (0..batch * seq)
        .map(|i| 1000 + (i as u32 * 7919) % 20000)
        .collect();
    let input = Batch::new(&ids, batch, seq);
    gpu.forward(&input).map_err(|e| e.to_string())?;
    let mut times: Vec<f64> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            gpu.forward(&input).map(|_| t.elapsed().as_secs_f64())
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{{\"device\": \"{}\", \"batch\": {batch}, \"seq\": {seq}, \"median_s\": {median}, \"seq_per_s\": {}}}",
        gpu.device.name,
        batch as f64 / median
    );
    Ok(())
}
