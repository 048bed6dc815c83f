//! What each subcommand does. Order of work in every batch command: load the model, read the
//! input, open the output (a temporary beside it), run, and only then replace the output file.

use std::path::Path;
use std::process::ExitCode;

use serde_json::{json, Value};

use bert_std::fetch::{MINILM, SPLADE_TINY};
use bert_std::pipelines::classification::{ClassifyOptions, TextClassification};
use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::pipelines::fill_mask::{FillMask, FillMaskOptions};
use bert_std::pipelines::ner::{NerOptions, TokenClassification};
use bert_std::pipelines::nsp::NextSentencePrediction;
use bert_std::pipelines::qa::{QaOptions, QuestionAnswering};
use bert_std::pipelines::rerank::Reranker;
use bert_std::pipelines::sparse::{SparseEmbeddings, SparseOptions};
use bert_std::task_models::DefaultTask;
use bert_std::{Error, LoadOptions, ModelDir, Pipeline, Result, Task};

use crate::jobs::{process, Item, Output, Run};
use crate::model_args::{model_path, options, task_model_path};
use crate::render::{EmbeddingLine, Render, SparseLine};
use crate::{Command, RunArgs};

fn texts_to_values(texts: &[String]) -> Vec<Value> {
    texts.iter().map(|t| json!({ "text": t })).collect()
}

/// Check the sizes, load the model, read the input, run `f` in chunks, write, summarize.
fn batch_job<P, T: serde::Serialize + Render>(
    name: &'static str,
    run: &RunArgs,
    args: Vec<Value>,
    usage: &str,
    load: impl FnOnce(LoadOptions) -> Result<P>,
    f: impl Fn(&P, &[&Item]) -> Result<Vec<T>>,
) -> Result<ExitCode> {
    let opts = options(run);
    opts.batch.validate()?;
    let mut job = Run::read(name, run.input.as_deref(), args)?;
    job.require_input(usage)?;
    let pipeline = load(opts)?;
    job.restart_clock();
    let mut out = Output::open(run.output.as_deref(), run.input.as_deref())?;
    let chunk = run.batch_size * 8;
    let interrupted = process(&mut job, &mut out, run.format, chunk, |g| f(&pipeline, g))?;
    let target = out.target();
    if interrupted {
        drop(out); // the temporary goes; the target keeps its old content
    } else {
        out.commit()?;
    }
    Ok(match (interrupted, job.finish(&target, interrupted)) {
        (true, _) => ExitCode::from(130),
        (false, true) => ExitCode::SUCCESS,
        (false, false) => ExitCode::FAILURE,
    })
}

fn texts<'a>(group: &[&'a Item]) -> Result<Vec<&'a str>> {
    group.iter().map(|i| i.field("text")).collect()
}

/// Run one subcommand.
pub fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Info {
            model,
            check,
            budget,
            max_tokens,
        } => {
            let path = model_path(model.as_deref(), Some(MINILM), "", false)?;
            info(&path, check, budget.then_some(max_tokens))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::PruneVocab {
            src,
            dst,
            corpus,
            max_vocab,
        } => {
            let texts = bert_std::vocab_prune::read_corpus(&corpus)?;
            let r = bert_std::vocab_prune::prune_vocab_dir(&src, &dst, &texts, max_vocab)?;
            eprintln!(
                "wrote {}: vocabulary {} -> {} tokens, weights {:.1} MB -> {:.1} MB; the corpus \
                 ({} texts, {} tokens) used {} distinct tokens, {} of them kept",
                dst.display(),
                r.vocab.0,
                r.vocab.1,
                r.weight_bytes.0 as f64 / 1e6,
                r.weight_bytes.1 as f64 / 1e6,
                r.corpus.0,
                r.corpus.1,
                r.used.0,
                r.used.1
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Quantize { src, dst, dtype } => {
            let (before, after) = bert_std::quantize::quantize_dir(&src, &dst, dtype.into())?;
            eprintln!(
                "wrote {}: weights {:.1} MB -> {:.1} MB ({:.0}%)",
                dst.join("model.safetensors").display(),
                before as f64 / 1e6,
                after as f64 / 1e6,
                100.0 * after as f64 / before as f64
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportDevice { src, dst, dtype } => {
            let r = bert_std::device_export::export_device(&src, &dst, Some(dtype.into()))?;
            eprintln!(
                "wrote {}: {} bytes (weights {}, vocabulary {} compiled from {} bytes of tokens); \
                 RAM for the low-RAM forward: bert info {} --budget",
                dst.display(),
                r.total,
                r.weights,
                r.vocab,
                r.vocab_txt,
                src.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Embed {
            texts: t,
            sparse: true,
            top_k,
            run,
        } => batch_job(
            "embed --sparse",
            &run,
            texts_to_values(&t),
            "give texts as arguments",
            |o| {
                let p = model_path(
                    run.model.as_deref(),
                    Some(SPLADE_TINY),
                    "masked-LM",
                    run.yes,
                )?;
                SparseEmbeddings::load(p, o)
            },
            |sp, group| {
                let texts = texts(group)?;
                Ok(sp
                    .run(&texts, &SparseOptions { top_k })?
                    .into_iter()
                    .zip(texts)
                    .map(|(sparse, text)| SparseLine {
                        text: text.to_string(),
                        sparse,
                    })
                    .collect())
            },
        ),
        Command::Rerank {
            query,
            passages,
            run,
        } => {
            let args = match query {
                Some(q) if !passages.is_empty() => vec![json!({"query": q, "passages": passages})],
                Some(_) => return Err(Error::Input("rerank needs passages after --query".into())),
                None if !passages.is_empty() => {
                    return Err(Error::Input(
                        "rerank needs --query with the passages".into(),
                    ))
                }
                None => Vec::new(),
            };
            batch_job(
                "rerank",
                &run,
                args,
                "give --query Q and passages",
                |o| {
                    let p = model_path(
                        run.model.as_deref(),
                        None,
                        "cross-encoder (sequence-classification)",
                        run.yes,
                    )?;
                    Reranker::load(p, o)
                },
                |rr, group| {
                    group
                        .iter()
                        .map(|i| {
                            let query = i.field("query")?;
                            let passages: Vec<&str> = i
                                .fields
                                .get("passages")
                                .and_then(Value::as_array)
                                .map(|a| a.iter().filter_map(Value::as_str).collect())
                                .filter(|p: &Vec<&str>| !p.is_empty())
                                .ok_or_else(|| {
                                    Error::Input("missing list field \"passages\"".into())
                                })?;
                            rr.run_one((query, &passages), &())
                        })
                        .collect()
                },
            )
        }
        Command::Embed { texts: t, run, .. } => batch_job(
            "embed",
            &run,
            texts_to_values(&t),
            "give texts as arguments",
            |o| {
                let p = model_path(
                    run.model.as_deref(),
                    Some(MINILM),
                    "sentence-embedding",
                    run.yes,
                )?;
                SentenceEmbeddings::load(p, o)
            },
            |st, group| {
                let texts = texts(group)?;
                Ok(st
                    .run(&texts, &())?
                    .into_iter()
                    .zip(texts)
                    .map(|(embedding, text)| EmbeddingLine {
                        text: text.to_string(),
                        embedding,
                    })
                    .collect())
            },
        ),
        Command::FillMask {
            texts: t,
            top_k,
            run,
        } => batch_job(
            "fill-mask",
            &run,
            texts_to_values(&t),
            "give texts with [MASK] as arguments",
            |o| {
                FillMask::load(
                    model_path(
                        run.model.as_deref(),
                        Some(SPLADE_TINY),
                        "masked-LM",
                        run.yes,
                    )?,
                    o,
                )
            },
            |fm, group| fm.run(&texts(group)?, &FillMaskOptions { top_k }),
        ),
        Command::Nsp { a, b, run } => {
            let args = match (a, b) {
                (Some(a), Some(b)) => vec![json!({"a": a, "b": b})],
                (Some(_), None) => {
                    return Err(Error::Input("nsp needs two sentences, A and B".into()))
                }
                _ => Vec::new(),
            };
            batch_job(
                "nsp",
                &run,
                args,
                "give sentences A and B as arguments",
                |o| {
                    let p = task_model_path(run.model.as_deref(), DefaultTask::Nsp, run.yes)?;
                    NextSentencePrediction::load(p, o)
                },
                |nsp, group| {
                    let pairs = group
                        .iter()
                        .map(|i| Ok((i.field("a")?, i.field("b")?)))
                        .collect::<Result<Vec<_>>>()?;
                    nsp.run(&pairs, &())
                },
            )
        }
        Command::Classify {
            texts: t,
            top_k,
            run,
        } => batch_job(
            "classify",
            &run,
            texts_to_values(&t),
            "give texts as arguments",
            |o| {
                let p = task_model_path(run.model.as_deref(), DefaultTask::Classify, run.yes)?;
                TextClassification::load(p, o)
            },
            |clf, group| {
                let inputs = group
                    .iter()
                    .map(|i| Ok((i.field("text")?, i.optional("pair"))))
                    .collect::<Result<Vec<_>>>()?;
                clf.run(
                    &inputs,
                    &ClassifyOptions {
                        top_k,
                        ..Default::default()
                    },
                )
            },
        ),
        Command::Ner {
            texts: t,
            aggregation,
            run,
        } => batch_job(
            "ner",
            &run,
            texts_to_values(&t),
            "give texts as arguments",
            |o| {
                let p = task_model_path(run.model.as_deref(), DefaultTask::Ner, run.yes)?;
                TokenClassification::load(p, o)
            },
            |ner, group| ner.run(&texts(group)?, &NerOptions { aggregation }),
        ),
        Command::Qa {
            question,
            context,
            top_k,
            max_answer_len,
            max_seq_len,
            doc_stride,
            handle_impossible_answer,
            run,
        } => {
            let args = match (question, context) {
                (Some(q), Some(c)) => vec![json!({"question": q, "context": c})],
                _ => Vec::new(),
            };
            let opts = QaOptions {
                top_k,
                max_answer_len,
                max_seq_len,
                doc_stride,
                handle_impossible_answer,
            };
            batch_job(
                "qa",
                &run,
                args,
                "give --question and --context",
                |o| {
                    let p = task_model_path(run.model.as_deref(), DefaultTask::Qa, run.yes)?;
                    let qa = QuestionAnswering::load(p, o)?;
                    qa.window(&opts)?; // a bad window setting fails before any input runs
                    Ok(qa)
                },
                |qa, group| {
                    let inputs = group
                        .iter()
                        .map(|i| Ok((i.field("question")?, i.field("context")?)))
                        .collect::<Result<Vec<_>>>()?;
                    qa.run(&inputs, &opts)
                },
            )
        }
        Command::Index(args) => crate::search::index(args),
        Command::Search(args) => crate::search::search(args),
        Command::Train(kind) => crate::train::train(kind),
        #[cfg(feature = "server")]
        Command::Serve(args) => crate::serve::serve(args),
    }
}

/// `bert info`; with `budget_tokens`, also the budget of one sequence of that many tokens,
/// measured on the same loaded model.
fn info(path: &Path, check: bool, budget_tokens: Option<usize>) -> Result<()> {
    let dir = ModelDir::open(path)?;
    let task = Task::of_config(&dir.config)?;
    let mut model = bert_std::LoadedModel::load(&dir, task, true)?;
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
    if check {
        let n = bert_std::check::check_weights(&dir)?;
        println!("check: all {n} weight values are finite");
    }
    if let Some(tokens) = budget_tokens {
        let budget = bert_std::budget::Budget::measure(&dir, &mut model, tokens)?;
        println!("{budget}");
    }
    Ok(())
}
