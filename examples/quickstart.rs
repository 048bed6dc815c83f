//! The seed's walk-through, step by step: hidden-state shape, the three embedding components,
//! fill-mask top-5, and the NSP probability (with `--nsp-model DIR`, else with the project's own
//! NSP model once the `nsp` example has trained it; no NSP checkpoint can be fetched offline).
//!
//!     cargo run --release --example quickstart

use clap::Parser;
use std::path::PathBuf;

use bert_core::Batch;
use bert_std::pipelines::fill_mask::FillMask;
use bert_std::pipelines::nsp::NextSentencePrediction;
use bert_std::{Bert, LoadOptions, Pipeline, Task};
use examples::{exit_on_error, model_or_default};

#[derive(Parser)]
struct Args {
    /// Encoder for steps 1-2 (default: all-MiniLM-L6-v2).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Masked LM for step 3 (default: SPLADE-tiny).
    #[arg(long)]
    mlm_model: Option<PathBuf>,
    /// A checkpoint with the NSP head for step 4.
    #[arg(long)]
    nsp_model: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let text = "Hello, my dog is cute";

    // 1. Forward pass: the last hidden state is [batch, seq, hidden].
    let dir = exit_on_error(model_or_default(args.model, bert_std::fetch::MINILM));
    let bert = exit_on_error(Bert::load(&dir, Task::Base, LoadOptions::default()));
    println!("{}", bert.dir.config);
    let enc = exit_on_error(bert.tokenizer.encode(text, None));
    let ids = enc.get_ids();
    let model = bert.task_model().bert();
    let mut ws = exit_on_error(model.workspace(1, ids.len()).map_err(Into::into));
    let out = exit_on_error(
        model
            .forward(&Batch::single(ids), &mut ws)
            .map_err(Into::into),
    );
    println!("tokens: {:?}", enc.get_tokens());
    println!(
        "last hidden state shape: [{}, {}, {}]; pooler output shape: [{}, {}]",
        out.batch_size, out.seq_len, out.hidden_size, out.batch_size, out.hidden_size
    );

    // 2. The three embedding components, then LayerNorm.
    let e = &model.embeddings;
    let h = e.word_embeddings.dim();
    let (mut word, mut pos, mut seg) = (vec![0.0; h], vec![0.0; h], vec![0.0; h]);
    e.word_embeddings.lookup_into(ids[1] as usize, &mut word);
    if let Some(pe) = &e.position_embeddings {
        pe.lookup_into(1, &mut pos);
    }
    if let Some(tt) = &e.token_type_embeddings {
        tt.lookup_into(0, &mut seg);
    }
    println!(
        "word embeddings [{}, {h}], position embeddings [{}, {h}], segment embeddings [{}, {h}]",
        ids.len(),
        ids.len(),
        ids.len()
    );
    println!(
        "token {:?}: word {:?}.., position {:?}.., segment {:?}..",
        enc.get_tokens()[1],
        &word[..3],
        &pos[..3],
        &seg[..3]
    );

    // 3. Fill-mask, top 5.
    let mlm = exit_on_error(model_or_default(
        args.mlm_model,
        bert_std::fetch::SPLADE_TINY,
    ));
    let fm = exit_on_error(FillMask::load(&mlm, LoadOptions::default()));
    let query = "The capital of France is [MASK].";
    println!("fill-mask: {query}");
    let filled = exit_on_error(fm.run_one(query, &Default::default()));
    for p in &filled.masks[0].candidates {
        println!("  {:.4}  {}", p.score, p.token_str);
    }

    // 4. Next-sentence prediction: the given checkpoint, else the project's own NSP model when
    // the `nsp` example has trained it into the model cache.
    let nsp_model = args
        .nsp_model
        .or_else(|| bert_std::task_models::DefaultTask::Nsp.cached());
    match nsp_model {
        Some(dir) => {
            println!("NSP with {}:", dir.display());
            let nsp = exit_on_error(NextSentencePrediction::load(&dir, LoadOptions::default()));
            let a = "The cat sat on the mat.";
            for b in ["It was very comfortable.", "The sky is blue today."] {
                let p = exit_on_error(nsp.run_one((a, b), &()));
                println!("P({b:?} follows {a:?}) = {:.2}", p.is_next);
            }
        }
        None => println!(
            "NSP: skipped — no checkpoint with the NSP head can be fetched offline; run `cargo run \
             --release --example nsp` once (it trains the project's own), or pass --nsp-model DIR \
             (e.g. bert-base-uncased)"
        ),
    }
}
