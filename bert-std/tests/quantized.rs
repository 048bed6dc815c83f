//! f16, bf16 and int8 weights: tolerances and their task-level effect, on the real models.
//! (Numbers are printed; run with `--nocapture` to see them.)
mod common;

use bert_core::quantize::QuantDtype;
use bert_core::Batch;
use bert_std::pipelines::embeddings::{cosine, SentenceEmbeddings};
use bert_std::pipelines::fill_mask::FillMask;
use bert_std::quantize::quantize_dir;
use bert_std::{Bert, LoadOptions, Pipeline, Task};
use common::*;

/// `src` quantized into a scratch folder of the calling test's own (removed when dropped).
fn quantized(src: &std::path::Path, name: &str, dtype: QuantDtype) -> Scratch {
    let dst = Scratch::new(&format!("{name}-{}", dtype.name()));
    let _ = std::fs::remove_dir(&*dst);
    quantize_dir(src, &dst, dtype).unwrap();
    dst
}

/// Real English sentences: the CoNLL-2003 excerpt, tokens joined by spaces.
fn sentences(n: usize) -> Vec<String> {
    let mut out = conll_sentences(6);
    out.truncate(n);
    assert_eq!(out.len(), n, "enough sentences in the excerpt");
    out
}

fn hidden_states(dir: &std::path::Path, texts: &[String]) -> Vec<Vec<f32>> {
    hidden_states_with(dir, texts, LoadOptions::default())
}

fn hidden_states_with(
    dir: &std::path::Path,
    texts: &[String],
    options: LoadOptions,
) -> Vec<Vec<f32>> {
    let bert = Bert::load(dir, Task::Base, options).unwrap();
    let model = bert.task_model().bert();
    texts
        .iter()
        .map(|t| {
            let enc = bert.tokenizer.encode(t, None).unwrap();
            let mut ws = model.workspace(1, enc.len()).unwrap();
            model
                .forward(&Batch::single(enc.get_ids()), &mut ws)
                .unwrap()
                .last_hidden_state
                .to_vec()
        })
        .collect()
}

#[test]
fn f16_hidden_states_stay_within_1e_2_of_f32() {
    let texts = sentences(20);
    let f32_states = hidden_states(&minilm(), &texts);
    let f16_states = hidden_states(&quantized(&minilm(), "minilm", QuantDtype::F16), &texts);
    let worst = max_abs_diff(&f32_states, &f16_states);
    eprintln!(
        "MiniLM f16 weights: max abs diff of hidden states vs f32 over 20 sentences: {worst:.2e}"
    );
    assert!(worst <= 1e-2, "{worst}");
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
        .fold(0.0f32, f32::max)
}

/// bf16 compute (`--dtype bf16`): weights and activations rounded to bf16 in every encoder
/// product, f32 sums. Same bound on hidden states as f16 storage, and the embedding
/// bound: cosine ≥ 0.9999 against f32 on every sentence.
#[test]
fn bf16_compute_keeps_hidden_states_and_embeddings_close_to_f32() {
    let bf16 = || LoadOptions {
        dtype: Some(QuantDtype::BF16),
        ..LoadOptions::default()
    };
    let bert = Bert::load(minilm(), Task::Base, bf16()).unwrap();
    let dense = &bert.task_model().bert().encoder.layer[0]
        .attention
        .output
        .dense;
    let packed = dense.packed.as_ref().expect("prepacked by default");
    assert_eq!(packed.precision(), bert_core::kernels::Precision::Bf16);

    let texts = sentences(100);
    let worst = max_abs_diff(
        &hidden_states(&minilm(), &texts[..20]),
        &hidden_states_with(&minilm(), &texts[..20], bf16()),
    );
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let a = SentenceEmbeddings::load(minilm(), LoadOptions::default())
        .unwrap()
        .embed(&refs)
        .unwrap();
    let b = SentenceEmbeddings::load(minilm(), bf16())
        .unwrap()
        .embed(&refs)
        .unwrap();
    let cosines: Vec<f32> = a.iter().zip(&b).map(|(x, y)| cosine(x, y)).collect();
    let min = cosines.iter().copied().fold(1.0f32, f32::min);
    let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
    eprintln!(
        "MiniLM bf16 compute ({}): hidden states max abs diff vs f32 {worst:.2e} (20 sentences); \
         embedding cosine min {min:.6} mean {mean:.6} (100 sentences)",
        bert_core::kernels::isa_name()
    );
    assert!(worst <= 3e-2, "{worst}");
    assert!(min >= 0.9999, "{min}");
}

#[test]
fn int8_embeddings_keep_cosine_and_retrieval() {
    let texts = sentences(100);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let full = SentenceEmbeddings::load(minilm(), LoadOptions::default()).unwrap();
    let int8_dir = quantized(&minilm(), "minilm", QuantDtype::Int8);
    let int8 = SentenceEmbeddings::load(&int8_dir, LoadOptions::default()).unwrap();
    let a = full.embed(&refs).unwrap();
    let b = int8.embed(&refs).unwrap();
    let cosines: Vec<f32> = a.iter().zip(&b).map(|(x, y)| cosine(x, y)).collect();
    let min = cosines.iter().copied().fold(1.0f32, f32::min);
    let mean = cosines.iter().sum::<f32>() / cosines.len() as f32;
    // Retrieval: each of the first 20 sentences as a query over all 100; top-10 overlap.
    let top10 = |emb: &[Vec<f32>], q: usize| {
        let mut idx: Vec<usize> = (0..emb.len()).filter(|&i| i != q).collect();
        idx.sort_by(|&i, &j| cosine(&emb[q], &emb[j]).total_cmp(&cosine(&emb[q], &emb[i])));
        idx.truncate(10);
        idx
    };
    let overlap: f32 = (0..20)
        .map(|q| {
            let (x, y) = (top10(&a, q), top10(&b, q));
            x.iter().filter(|i| y.contains(i)).count() as f32 / 10.0
        })
        .sum::<f32>()
        / 20.0;
    let full_bytes = Bert::load(minilm(), Task::Base, LoadOptions::default())
        .unwrap()
        .task_model()
        .bert()
        .weight_bytes();
    let int8_bytes = Bert::load(&int8_dir, Task::Base, LoadOptions::default())
        .unwrap()
        .task_model()
        .bert()
        .weight_bytes();
    let ratio = int8_bytes as f64 / full_bytes as f64;
    eprintln!(
        "MiniLM int8: embedding cosine vs f32 min {min:.5} mean {mean:.5} (100 sentences); \
         top-10 retrieval overlap {:.1}%; weights {:.1} MB vs {:.1} MB ({:.1}%)",
        overlap * 100.0,
        int8_bytes as f64 / 1e6,
        full_bytes as f64 / 1e6,
        ratio * 100.0
    );
    assert!(min >= 0.995, "{min}");
    assert!(ratio <= 0.30, "{ratio}");
    assert!(overlap >= 0.8, "{overlap}");
}

#[test]
fn int8_fill_mask_top5_agreement_is_reported() {
    let texts = sentences(40);
    let queries: Vec<String> = texts
        .iter()
        .map(|t| {
            let words: Vec<&str> = t.split(' ').collect();
            let k = words.len() / 2;
            words
                .iter()
                .enumerate()
                .map(|(i, w)| if i == k { "[MASK]" } else { w })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    let full = FillMask::load(splade(), LoadOptions::default()).unwrap();
    // The folder must outlive the load (a by-value argument would drop it mid-load).
    let int8_dir = quantized(&splade(), "splade", QuantDtype::Int8);
    let int8 = FillMask::load(int8_dir.path(), LoadOptions::default()).unwrap();
    let a = full.run(&refs, &Default::default()).unwrap();
    let b = int8.run(&refs, &Default::default()).unwrap();
    let (mut top1, mut overlap) = (0usize, 0usize);
    for (x, y) in a.iter().zip(&b) {
        let (x, y) = (&x.masks[0].candidates, &y.masks[0].candidates);
        top1 += usize::from(x[0].token == y[0].token);
        overlap += x
            .iter()
            .filter(|p| y.iter().any(|q| q.token == p.token))
            .count();
    }
    let n = refs.len();
    eprintln!(
        "SPLADE-tiny int8 fill-mask vs f32 over {n} masks: top-1 agreement {:.1}%, top-5 overlap {:.1}%",
        100.0 * top1 as f64 / n as f64,
        100.0 * overlap as f64 / (5 * n) as f64
    );
    assert!(top1 as f64 >= 0.7 * n as f64, "top-1 agreement {top1}/{n}");
}
