//! Fill-mask (SPLADE-tiny by default).
//!
//!     cargo run --release --example fill_mask -- "The capital of France is [MASK]."

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::fill_mask::{FillMask, FillMaskOptions};
use bert_std::{LoadOptions, Pipeline};
use examples::{exit_on_error, model_or_default};

#[derive(Parser)]
struct Args {
    /// Text with one or more [MASK] tokens.
    #[arg(default_value = "The capital of France is [MASK].")]
    text: String,
    /// A masked-LM model directory (default: SPLADE-tiny).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Candidates per mask.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
}

fn main() {
    let args = Args::parse();
    let dir = exit_on_error(model_or_default(args.model, bert_std::fetch::SPLADE_TINY));
    let fm = exit_on_error(FillMask::load(&dir, LoadOptions::default()));
    let options = FillMaskOptions { top_k: args.top_k };
    let out = exit_on_error(fm.run_one(&args.text, &options));
    for (i, mask) in out.masks.iter().enumerate() {
        println!("[MASK] #{i}:");
        for p in &mask.candidates {
            println!("  {:.4}  {:<12} {}", p.score, p.token_str, p.sequence);
        }
    }
}
