//! `bert`: the command-line face of bert-std.
//!
//! ```text
//! bert info      [--model DIR]
//! bert embed     [TEXT...]            (default model: all-MiniLM-L6-v2)
//! bert fill-mask [TEXT...] [--top-k K] (default model: SPLADE-tiny)
//! bert nsp       A B                   --model DIR
//! bert classify  [TEXT...] [--top-k K] --model DIR
//! bert ner       [TEXT...] [--aggregation simple] --model DIR
//! bert qa        --question Q --context C --model DIR
//! ```
//! Batch work: `--input FILE.jsonl` (one JSON object per line: `{"text": ..}`, `{"a": .., "b": ..}`
//! or `{"question": .., "context": ..}`) and `--output FILE.jsonl` (default stdout). A bad line is
//! reported with its line number and skipped; the others are still processed; the exit code is 1
//! if any line failed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use bert_std::batching::BatchOptions;
use bert_std::fetch::{MINILM, SPLADE_TINY};
use bert_std::pipelines::classification::TextClassification;
use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::pipelines::fill_mask::FillMask;
use bert_std::pipelines::ner::{Aggregation, TokenClassification};
use bert_std::pipelines::nsp::NextSentencePrediction;
use bert_std::pipelines::qa::{QaOptions, QuestionAnswering};
use bert_std::{Error, LoadOptions, ModelDir, Result, Task};

#[derive(Parser)]
#[command(
    name = "bert",
    version,
    about = "BERT inference: embeddings, fill-mask, NSP, classification, NER, QA"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// A HF model directory (config.json, model.safetensors, tokenizer.json or vocab.txt), or
    /// hf:ORG/NAME to download one (needs the `hub` feature).
    #[arg(long, global = true, env = "BERT_MODEL")]
    model: Option<PathBuf>,
    /// Worker threads (0: one per core).
    #[arg(long, global = true, default_value_t = 0)]
    threads: usize,
    /// Sequences per forward pass.
    #[arg(long, global = true, default_value_t = 32)]
    batch_size: usize,
    /// JSON Lines input for batch work.
    #[arg(long, global = true)]
    input: Option<PathBuf>,
    /// JSON Lines output (default: stdout).
    #[arg(long, global = true)]
    output: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a model directory.
    Info,
    /// Write a copy of a model directory with int8 or f16 weights.
    Quantize {
        /// The model directory to read.
        src: PathBuf,
        /// The directory to write.
        dst: PathBuf,
        /// int8 (per-output-channel scales) or f16.
        #[arg(long, default_value = "int8")]
        dtype: String,
    },
    /// Sentence embeddings.
    Embed { texts: Vec<String> },
    /// Fill [MASK] tokens.
    FillMask {
        texts: Vec<String>,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
    },
    /// Probability that sentence B follows sentence A.
    Nsp {
        a: Option<String>,
        b: Option<String>,
    },
    /// Text classification.
    Classify {
        texts: Vec<String>,
        #[arg(long)]
        top_k: Option<usize>,
    },
    /// Named entities.
    Ner {
        texts: Vec<String>,
        #[arg(long, default_value = "simple")]
        aggregation: String,
    },
    /// Extractive question answering.
    Qa {
        #[arg(long)]
        question: Option<String>,
        #[arg(long)]
        context: Option<String>,
        #[arg(long, default_value_t = 1)]
        top_k: usize,
        #[arg(long, default_value_t = 15)]
        max_answer_len: usize,
        #[arg(long)]
        handle_impossible_answer: bool,
    },
}

/// One unit of work: where it came from, and its fields.
struct Item {
    line: Option<usize>,
    fields: Value,
}

fn read_items(
    cli: &Cli,
    from_args: Vec<Value>,
    failures: &mut Vec<(usize, String)>,
) -> Result<Vec<Item>> {
    let Some(path) = &cli.input else {
        return Ok(from_args
            .into_iter()
            .map(|fields| Item { line: None, fields })
            .collect());
    };
    let file = std::fs::File::open(path).map_err(|e| Error::Io {
        path: path.clone(),
        source: e,
    })?;
    let mut items = Vec::new();
    for (i, raw) in BufReader::new(file).split(b'\n').enumerate() {
        let n = i + 1;
        let raw = raw.map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        })?;
        let parsed = std::str::from_utf8(&raw)
            .map_err(|e| format!("invalid UTF-8 ({e})"))
            .and_then(|s| {
                if s.trim().is_empty() {
                    return Ok(None);
                }
                serde_json::from_str::<Value>(s)
                    .map_err(|e| format!("invalid JSON ({e})"))
                    .map(Some)
            });
        match parsed {
            Ok(Some(fields)) => items.push(Item {
                line: Some(n),
                fields,
            }),
            Ok(None) => {}
            Err(e) => failures.push((n, e)),
        }
    }
    Ok(items)
}

fn field<'a>(item: &'a Item, name: &str) -> std::result::Result<&'a str, String> {
    item.fields
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing string field {name:?}"))
}

/// The "text" field of every item of a group.
fn texts_of<'a>(group: &[&'a Item]) -> std::result::Result<Vec<&'a str>, String> {
    group.iter().map(|i| field(i, "text")).collect()
}

fn model_path(cli: &Cli, default: Option<&str>, what: &str) -> Result<PathBuf> {
    match (&cli.model, default) {
        (Some(p), _) => bert_std::runtime::model_path(p),
        (None, Some(name)) => bert_std::fetch::ensure_model(name),
        (None, None) => Err(Error::Input(format!(
            "this command needs a {what} model: pass --model DIR or set BERT_MODEL"
        ))),
    }
}

fn options(cli: &Cli) -> LoadOptions {
    LoadOptions {
        threads: cli.threads,
        batch: BatchOptions {
            batch_size: cli.batch_size,
            ..BatchOptions::default()
        },
        ..LoadOptions::default()
    }
}

/// A batch job over items: one JSON result per item, or a message.
type Job<'a> = &'a dyn Fn(&[&Item]) -> std::result::Result<Vec<Value>, String>;

/// Run `f` over items in chunks; a chunk that fails is retried item by item so that one bad
/// input costs only itself.
fn process(
    items: &[Item],
    chunk: usize,
    failures: &mut Vec<(usize, String)>,
    out: &mut dyn Write,
    f: Job<'_>,
) -> Result<()> {
    let bar = if items.len() > 64 {
        let b = ProgressBar::new(items.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or(ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    for group in items.chunks(chunk.max(1)) {
        let refs: Vec<&Item> = group.iter().collect();
        let results: Vec<std::result::Result<Value, String>> = match f(&refs) {
            Ok(vals) => vals.into_iter().map(Ok).collect(),
            Err(_) if refs.len() > 1 => refs
                .iter()
                .map(|it| f(&[*it]).map(|mut v| v.remove(0)))
                .collect(),
            Err(e) => vec![Err(e)],
        };
        for (item, r) in group.iter().zip(results) {
            match r {
                Ok(v) => {
                    let line = match item.line {
                        Some(n) => json!({"line": n, "result": v}),
                        None => v,
                    };
                    writeln!(out, "{line}").map_err(|e| Error::io("<output>", e))?;
                }
                Err(e) => failures.push((item.line.unwrap_or(0), e)),
            }
        }
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

fn texts_to_values(texts: Vec<String>) -> Vec<Value> {
    texts.into_iter().map(|t| json!({ "text": t })).collect()
}

fn info(path: &Path) -> Result<()> {
    let dir = ModelDir::open(path)?;
    let task = Task::of_config(&dir.config)?;
    let model = bert_std::LoadedModel::load(&dir, task, true)?;
    let bert = model.model().bert();
    println!("model directory: {}", dir.root.display());
    println!("task: {task:?}");
    println!(
        "weights: {} file(s), {:.1} MB of encoder weights",
        dir.weight_files.len(),
        bert.weight_bytes() as f64 / 1e6
    );
    println!("pooling: {:?}", dir.pooling);
    println!("{}", dir.config);
    Ok(())
}

fn run(cli: Cli) -> Result<bool> {
    let mut failures: Vec<(usize, String)> = Vec::new();
    let mut out: Box<dyn Write> = match &cli.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(|e| Error::io(p, e))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let chunk = cli.batch_size.max(1) * 8;
    let need_input = |items: &[Item], failures: &[(usize, String)]| {
        if items.is_empty() && failures.is_empty() {
            Err(Error::Input(
                "no input: give texts as arguments or --input FILE.jsonl".into(),
            ))
        } else {
            Ok(())
        }
    };
    match &cli.command {
        Command::Info => {
            info(&model_path(&cli, Some(MINILM), "")?)?;
        }
        Command::Quantize { src, dst, dtype } => {
            let dtype = bert_std::quantize::parse_dtype(dtype)?;
            let (before, after) = bert_std::quantize::quantize_dir(src, dst, dtype)?;
            eprintln!(
                "wrote {}: weights {:.1} MB -> {:.1} MB ({:.0}%)",
                dst.join("model.safetensors").display(),
                before as f64 / 1e6,
                after as f64 / 1e6,
                100.0 * after as f64 / before as f64
            );
        }
        Command::Embed { texts } => {
            let items = read_items(&cli, texts_to_values(texts.clone()), &mut failures)?;
            need_input(&items, &failures)?;
            let st = SentenceEmbeddings::load(
                model_path(&cli, Some(MINILM), "sentence-embedding")?,
                options(&cli),
            )?;
            process(&items, chunk, &mut failures, &mut out, &|group| {
                let texts = texts_of(group)?;
                let embs = st.embed(&texts).map_err(|e| e.to_string())?;
                Ok(embs
                    .into_iter()
                    .zip(texts)
                    .map(|(e, t)| json!({"text": t, "embedding": e}))
                    .collect())
            })?;
        }
        Command::FillMask { texts, top_k } => {
            let items = read_items(&cli, texts_to_values(texts.clone()), &mut failures)?;
            need_input(&items, &failures)?;
            let fm = FillMask::load(
                model_path(&cli, Some(SPLADE_TINY), "masked-LM")?,
                options(&cli),
            )?;
            process(&items, chunk, &mut failures, &mut out, &|group| {
                let texts = texts_of(group)?;
                let preds = fm.fill_batch(&texts, *top_k).map_err(|e| e.to_string())?;
                Ok(preds.into_iter().map(|p| json!(p)).collect())
            })?;
        }
        Command::Nsp { a, b } => {
            let args = match (a, b) {
                (Some(a), Some(b)) => vec![json!({"a": a, "b": b})],
                _ => Vec::new(),
            };
            let items = read_items(&cli, args, &mut failures)?;
            need_input(&items, &failures)?;
            let nsp = NextSentencePrediction::load(
                model_path(&cli, None, "next-sentence-prediction")?,
                options(&cli),
            )?;
            process(&items, chunk, &mut failures, &mut out, &|group| {
                let pairs = group
                    .iter()
                    .map(|i| Ok((field(i, "a")?, field(i, "b")?)))
                    .collect::<std::result::Result<Vec<_>, String>>()?;
                let preds = nsp.predict_batch(&pairs).map_err(|e| e.to_string())?;
                Ok(preds.into_iter().map(|p| json!(p)).collect())
            })?;
        }
        Command::Classify { texts, top_k } => {
            let items = read_items(&cli, texts_to_values(texts.clone()), &mut failures)?;
            need_input(&items, &failures)?;
            let clf = TextClassification::load(
                model_path(&cli, None, "sequence-classification")?,
                options(&cli),
            )?;
            process(&items, chunk, &mut failures, &mut out, &|group| {
                let inputs = group
                    .iter()
                    .map(|i| {
                        Ok((
                            field(i, "text")?,
                            i.fields.get("pair").and_then(Value::as_str),
                        ))
                    })
                    .collect::<std::result::Result<Vec<_>, String>>()?;
                let labels = clf
                    .classify_batch(&inputs, *top_k)
                    .map_err(|e| e.to_string())?;
                Ok(labels.into_iter().map(|l| json!(l)).collect())
            })?;
        }
        Command::Ner { texts, aggregation } => {
            let agg: Aggregation = aggregation.parse()?;
            let items = read_items(&cli, texts_to_values(texts.clone()), &mut failures)?;
            need_input(&items, &failures)?;
            let ner = TokenClassification::load(
                model_path(&cli, None, "token-classification")?,
                options(&cli),
            )?;
            process(&items, chunk, &mut failures, &mut out, &|group| {
                let texts = texts_of(group)?;
                let ents = ner.run_batch(&texts, agg).map_err(|e| e.to_string())?;
                Ok(ents.into_iter().map(|e| json!(e)).collect())
            })?;
        }
        Command::Qa {
            question,
            context,
            top_k,
            max_answer_len,
            handle_impossible_answer,
        } => {
            let args = match (question, context) {
                (Some(q), Some(c)) => vec![json!({"question": q, "context": c})],
                _ => Vec::new(),
            };
            let items = read_items(&cli, args, &mut failures)?;
            need_input(&items, &failures)?;
            let qa = QuestionAnswering::load(
                model_path(&cli, None, "question-answering")?,
                options(&cli),
            )?;
            let opts = QaOptions {
                top_k: *top_k,
                max_answer_len: *max_answer_len,
                handle_impossible_answer: *handle_impossible_answer,
                ..QaOptions::default()
            };
            // Each question runs its windows as one batch; questions run one after another.
            process(&items, 1, &mut failures, &mut out, &|group| {
                let it = group[0];
                let answers = qa
                    .answer(field(it, "question")?, field(it, "context")?, &opts)
                    .map_err(|e| e.to_string())?;
                Ok(vec![json!(answers)])
            })?;
        }
    }
    out.flush().map_err(|e| Error::io("<output>", e))?;
    failures.sort();
    for (line, e) in &failures {
        match &cli.input {
            Some(p) if *line > 0 => eprintln!("error: {}:{line}: {e}", p.display()),
            _ => eprintln!("error: {e}"),
        }
    }
    Ok(failures.is_empty())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
