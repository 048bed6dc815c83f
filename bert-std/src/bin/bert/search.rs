//! `bert index` and `bert search`: semantic search over the user's own documents.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use bert_std::fetch::MINILM;
use bert_std::index::{read_corpus, Hnsw, Index, Partial};
use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::{Error, Pipeline, Result};

use crate::jobs::{Format, INTERRUPTED};
use crate::model_args::{model_path, options};
use crate::render::clip;
use crate::RunArgs;

/// `bert index`.
#[derive(Args)]
pub struct IndexArgs {
    /// Text files (split at blank lines), .jsonl files ({"text", "id"} per line) or
    /// directories of them.
    #[arg(required = true)]
    pub corpus: Vec<PathBuf>,
    /// The index file to write (replaced only when the index is complete).
    #[arg(long, short = 'o')]
    pub out: PathBuf,
    /// Longest passage in words; longer paragraphs are cut into pieces.
    #[arg(long, default_value_t = 180)]
    pub max_words: usize,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `bert search`.
#[derive(Args)]
pub struct SearchArgs {
    /// The index file made by `bert index`.
    pub index: PathBuf,
    /// Queries.
    #[arg(required = true)]
    pub queries: Vec<String>,
    /// Passages per query.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// Use an approximate (HNSW) index instead of comparing with every passage: faster for
    /// large corpora, may miss a few of the exact top-k.
    #[arg(long)]
    pub approximate: bool,
    /// The model (default: the one the index was built with).
    #[arg(long, env = "BERT_MODEL")]
    pub model: Option<PathBuf>,
    /// json: one JSON object per query; table: text for a person.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Embed a corpus into an index, resuming from a `.partial` file if one is there.
pub fn index(args: IndexArgs) -> Result<ExitCode> {
    let run = &args.run;
    if run.input.is_some() || run.output.is_some() {
        return Err(Error::Input(
            "bert index takes the corpus as arguments and writes --out".into(),
        ));
    }
    let passages = read_corpus(&args.corpus, args.max_words)?;
    if passages.is_empty() {
        return Err(Error::Input("the corpus has no passages".into()));
    }
    let path = model_path(
        run.model.as_deref(),
        Some(MINILM),
        "sentence-embedding",
        run.yes,
    )?;
    let st = SentenceEmbeddings::load(&path, options(run))?;
    let dim = st.dim();
    let (mut partial, done) = Partial::open(&args.out, dim)?;
    let resumed = done.len().min(passages.len());
    if resumed > 0 && done.iter().zip(&passages).any(|((p, _), q)| p != q) {
        return Err(Error::Input(format!(
            "{}.partial was made from another corpus; delete it to start over",
            args.out.display()
        )));
    }
    let mut vectors: Vec<f32> = done.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    vectors.truncate(resumed * dim);
    if resumed > 0 {
        eprintln!(
            "resuming: {resumed} of {} passages already embedded",
            passages.len()
        );
    }
    let bar = ProgressBar::new(passages.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} passages {per_sec} eta {eta}")
            .unwrap_or(ProgressStyle::default_bar()),
    );
    bar.set_position(resumed as u64);
    let started = Instant::now();
    let chunk = run.batch_size * 8;
    for group in passages[resumed..].chunks(chunk) {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bar.abandon();
            eprintln!(
                "interrupted: {} of {} passages embedded and kept in {}.partial; run the same \
                 command again to finish",
                vectors.len() / dim,
                passages.len(),
                args.out.display()
            );
            return Ok(ExitCode::from(130));
        }
        let texts: Vec<&str> = group.iter().map(|p| p.text.as_str()).collect();
        let embs = st.run(&texts, &())?;
        let records: Vec<_> = group.iter().zip(&embs).map(|(p, v)| (p, &v[..])).collect();
        partial.append(&records)?;
        embs.iter().for_each(|v| vectors.extend_from_slice(v));
        bar.inc(group.len() as u64);
    }
    bar.finish_and_clear();
    let index = Index::new(
        path.display().to_string(),
        dim,
        passages.iter().map(|p| p.id.clone()).collect(),
        passages.into_iter().map(|p| p.text).collect(),
        vectors,
    )?;
    index.save(&args.out)?;
    partial.remove()?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "index: {} passages ({} embedded now, {:.1} passages/s) written to {}",
        index.len(),
        index.len() - resumed,
        (index.len() - resumed) as f64 / secs.max(1e-9),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct HitLine<'a> {
    score: f32,
    id: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct QueryResult<'a> {
    query: &'a str,
    hits: Vec<HitLine<'a>>,
}

/// The passages nearest each query.
pub fn search(args: SearchArgs) -> Result<ExitCode> {
    if args.top_k == 0 {
        return Err(Error::Input("--top-k must be at least 1".into()));
    }
    let index = Index::load(&args.index)?;
    let model = match &args.model {
        Some(m) => model_path(Some(m), None, "sentence-embedding", false)?,
        None if !index.model.is_empty() && std::path::Path::new(&index.model).is_dir() => {
            PathBuf::from(&index.model)
        }
        None => bert_std::fetch::ensure_model(MINILM)?,
    };
    let st = SentenceEmbeddings::load(model, Default::default())?;
    if st.dim() != index.dim {
        return Err(Error::Input(format!(
            "the model makes {}-dimensional embeddings, the index holds {}-dimensional ones",
            st.dim(),
            index.dim
        )));
    }
    let queries: Vec<&str> = args.queries.iter().map(String::as_str).collect();
    let embedded = st.run(&queries, &())?;
    let hnsw = args.approximate.then(|| {
        let t = Instant::now();
        let h = Hnsw::build(&index);
        eprintln!(
            "approximate index built in {:.2} s",
            t.elapsed().as_secs_f64()
        );
        h
    });
    for (q, v) in queries.iter().zip(&embedded) {
        let hits = match &hnsw {
            Some(h) => h.search(&index, v, args.top_k),
            None => index.search(v, args.top_k),
        };
        let result = QueryResult {
            query: q,
            hits: hits
                .iter()
                .map(|h| HitLine {
                    score: h.score,
                    id: &index.ids[h.row],
                    text: &index.texts[h.row],
                })
                .collect(),
        };
        match args.format {
            Format::Json => println!(
                "{}",
                serde_json::to_string(&result).map_err(|e| Error::Input(e.to_string()))?
            ),
            Format::Table => {
                println!("{q}");
                for h in &result.hits {
                    println!(
                        "  {:.3}  {:<24} {}",
                        h.score,
                        clip(h.id, 24),
                        clip(h.text, 90)
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
