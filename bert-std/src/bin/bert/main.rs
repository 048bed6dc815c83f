//! `bert`: the command-line face of bert-std. `bert help COMMAND` documents every option.
//!
//! Batch work: `--input FILE.jsonl` (or `-` for stdin; one JSON object per line: `{"text": ..}`,
//! `{"a": .., "b": ..}` or `{"question": .., "context": ..}`) and `--output FILE.jsonl` (default
//! stdout; a file is replaced only when the run succeeds). A bad line is reported with its line
//! number and skipped; the others are still processed; the exit code is 1 if any line failed,
//! 130 after Ctrl-C. A summary line always ends on stderr.
// The doc comments below are the command's `--help` text (clap), where `[MASK]` is literal.
#![allow(rustdoc::broken_intra_doc_links)]

/// mimalloc: a long-running `bert serve` keeps a flat memory footprint (see the README's soak).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod commands;
mod distill;
mod jobs;
mod model_args;
mod render;
mod search;
#[cfg(feature = "server")]
mod serve;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use bert_std::pipelines::ner::Aggregation;
use bert_std::quantize::QuantizeTo;

use jobs::Format;

#[derive(Parser)]
#[command(
    name = "bert",
    version,
    about = "BERT inference: embeddings and semantic search, fill-mask, NSP, classification, NER, QA",
    after_help = "Default models (embed, index, search: all-MiniLM-L6-v2; fill-mask: SPLADE-tiny) are \
                  fetched on first use into $BERT_MODELS_DIR, else ~/.cache/bert-rs/models."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options of every command that runs a model over inputs.
#[derive(Args, Clone)]
pub struct RunArgs {
    /// A HF model directory (config.json, model.safetensors, tokenizer.json or vocab.txt), or
    /// hf:ORG/NAME to download one (needs the `hub` feature). Default: the command's default
    /// model where it has one.
    #[arg(long, env = "BERT_MODEL")]
    pub model: Option<PathBuf>,
    /// Worker threads (0: one per core; at most 4 per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Sequences per forward pass (1..=4096).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// JSON Lines input (one object per line), `-` for stdin. Without it, the texts on the
    /// command line are the input.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Write results here instead of stdout. The file is replaced only when the run ends well:
    /// a failed, interrupted or killed run leaves what was there.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// json: one JSON object per line; table: text for a person.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub format: Format,
    /// Read every weight at load and refuse the model if any is NaN or infinite (outputs are
    /// always checked).
    #[arg(long)]
    pub check: bool,
    /// Weights as stored, or converted at load to f16 or int8 (per-channel scales).
    #[arg(long, value_enum, default_value_t = model_args::WeightDtype::F32)]
    pub dtype: model_args::WeightDtype,
    /// With no --model, train the project's own task model (classify, ner, qa, nsp) into the
    /// model cache if it is not there yet, without asking (the examples' recipe; minutes);
    /// with --model minilm-student, distill the project's own student there (under an hour).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a model directory (default: all-MiniLM-L6-v2).
    Info {
        /// The model directory (or hf:ORG/NAME).
        #[arg(long, env = "BERT_MODEL")]
        model: Option<PathBuf>,
        /// Also read every weight and report NaN or infinite values.
        #[arg(long)]
        check: bool,
        /// Also print what one sequence of --max-tokens needs: bytes stored (weights,
        /// vocabulary), the RAM of its forward's workspace, and the packed weight copies.
        #[arg(long)]
        budget: bool,
        /// The sequence length --budget is for.
        #[arg(long, default_value_t = 128, requires = "budget")]
        max_tokens: usize,
    },
    /// Write a copy of a WordPiece model directory whose vocabulary holds only the tokens a
    /// corpus uses (at most --max-vocab, always the special tokens and single characters),
    /// its embedding table cut with it.
    PruneVocab {
        /// The model directory to read.
        src: PathBuf,
        /// The directory to write (created; files in it are replaced atomically).
        dst: PathBuf,
        /// Text files: one text per line; in .jsonl files every string value of each line.
        #[arg(long, required = true)]
        corpus: Vec<PathBuf>,
        /// The most tokens the pruned vocabulary may hold.
        #[arg(long, default_value_t = 8000)]
        max_vocab: usize,
    },
    /// Write a copy of a model directory with int8 or f16 weights.
    Quantize {
        /// The model directory to read.
        src: PathBuf,
        /// The directory to write (created; files in it are replaced atomically).
        dst: PathBuf,
        /// The storage to write.
        #[arg(long, value_enum, default_value_t = QuantizeTo::Int8)]
        dtype: QuantizeTo,
    },
    /// Write one blob a microcontroller reads in place: config.json, the WordPiece vocabulary
    /// compiled into compact tables, and the weights (int8 by default). Link it into flash
    /// and read it with `bert_core::device_blob::DeviceModel::parse` (README, "On a
    /// microcontroller").
    ExportDevice {
        /// The model directory to read.
        src: PathBuf,
        /// The blob to write (replaced atomically).
        dst: PathBuf,
        /// The weights' storage; int8 weights are kept as they are.
        #[arg(long, value_enum, default_value_t = QuantizeTo::Int8)]
        dtype: QuantizeTo,
    },
    /// Sentence embeddings (default model: all-MiniLM-L6-v2), one JSON line per text.
    Embed {
        /// Texts to embed (or use --input).
        texts: Vec<String>,
        /// SPLADE sparse vectors (term ids, weights and terms) from a masked-LM model
        /// (default model then: SPLADE-tiny) instead of dense sentence embeddings.
        #[arg(long)]
        sparse: bool,
        /// With --sparse: keep the heaviest K terms (default: every non-zero term).
        #[arg(long, requires = "sparse")]
        top_k: Option<usize>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Rank passages by relevance to a query with a cross-encoder (a sequence-classification
    /// model over query + passage). JSONL lines: {"query": .., "passages": [..]}.
    Rerank {
        /// The query (with PASSAGES, or use --input).
        #[arg(long)]
        query: Option<String>,
        /// Candidate passages.
        passages: Vec<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Fill [MASK] tokens (default model: SPLADE-tiny).
    FillMask {
        /// Texts with one or more [MASK] tokens (or use --input).
        texts: Vec<String>,
        /// Candidates per [MASK].
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Probability that sentence B follows sentence A (needs a model with an NSP head).
    Nsp {
        /// Sentence A.
        a: Option<String>,
        /// Sentence B.
        b: Option<String>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Text classification (needs a sequence-classification model). JSONL lines may carry a
    /// second text as "pair".
    Classify {
        /// Texts to classify (or use --input).
        texts: Vec<String>,
        /// Labels per text, best first (default: all).
        #[arg(long)]
        top_k: Option<usize>,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Named entities (needs a token-classification model).
    Ner {
        /// Texts (or use --input).
        texts: Vec<String>,
        /// How tokens become entities (HF's aggregation_strategy).
        #[arg(long, value_enum, default_value_t = Aggregation::Simple)]
        aggregation: Aggregation,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Extractive question answering (needs a question-answering model).
    Qa {
        /// The question (with --context; or use --input with {"question", "context"} lines).
        #[arg(long, requires = "context")]
        question: Option<String>,
        /// The passage that holds the answer.
        #[arg(long, requires = "question")]
        context: Option<String>,
        /// Answers per question.
        #[arg(long, default_value_t = 1)]
        top_k: usize,
        /// Longest answer, in tokens.
        #[arg(long, default_value_t = 15)]
        max_answer_len: usize,
        /// Window length in tokens (default: 384, or the model's limit if smaller).
        #[arg(long)]
        max_seq_len: Option<usize>,
        /// Overlap of consecutive windows in tokens (default: 128, or half the window).
        #[arg(long)]
        doc_stride: Option<usize>,
        /// Also offer "no answer" (scored by the [CLS] span).
        #[arg(long)]
        handle_impossible_answer: bool,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Embed a corpus (text files, a directory of them, or JSONL) into an index file for
    /// `bert search`. Resumable: run it again to finish an interrupted index.
    Index(search::IndexArgs),
    /// Search an index made by `bert index`: the passages closest to each query.
    Search(search::SearchArgs),
    /// Fine-tune a task model (classification, NER, extractive QA) and write it as an HF
    /// directory.
    #[command(subcommand)]
    Train(train::TrainKind),
    /// An HTTP server: OpenAI /v1/embeddings, TEI's /embed, /predict and /rerank, /fill-mask,
    /// /ner, /qa, /health, /info, /metrics; dynamic batching by tokens.
    #[cfg(feature = "server")]
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let command = Cli::parse().command;
    #[cfg(feature = "server")]
    let serving = matches!(command, Command::Serve(_));
    #[cfg(not(feature = "server"))]
    let serving = false;
    // The server handles SIGINT/SIGTERM itself (graceful shutdown); training stops at once
    // (its checkpoints are written atomically, so the last one stays whole).
    if !serving && !matches!(command, Command::Train(_)) {
        jobs::install_interrupt_handler();
    }
    match commands::run(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
