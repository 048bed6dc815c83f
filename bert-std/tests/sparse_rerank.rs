//! SPLADE sparse embeddings and cross-encoder reranking through the pipelines and the CLI.
mod common;

use bert_std::pipelines::classification::TextClassification;
use bert_std::pipelines::rerank::Reranker;
use bert_std::pipelines::sparse::{SparseEmbeddings, SparseOptions};
use bert_std::{LoadOptions, Pipeline};
use common::*;

#[test]
fn sparse_vectors_are_the_heaviest_terms_of_the_core_pooling() {
    let sp = SparseEmbeddings::load(splade(), LoadOptions::default()).unwrap();
    let texts = [
        "The Eiffel Tower is in Paris.",
        "Rust is a programming language.",
    ];
    let all = sp.run(&texts, &SparseOptions::default()).unwrap();
    let top = sp.run(&texts, &SparseOptions { top_k: Some(10) }).unwrap();
    for (a, t) in all.iter().zip(&top) {
        assert!(a.values.windows(2).all(|w| w[0] >= w[1]), "heaviest first");
        assert!(a.values.iter().all(|&x| x > 0.0));
        assert!(
            a.indices.len() > 10 && a.indices.len() < 2000,
            "{}",
            a.indices.len()
        );
        assert_eq!(&a.indices[..10], &t.indices[..]);
        assert_eq!(a.terms.len(), a.indices.len());
    }
    // The document's own words are among its heaviest terms.
    assert!(
        top[0].terms.iter().any(|t| t == "paris" || t == "eiffel"),
        "{:?}",
        top[0].terms
    );
    // Batched equals one at a time.
    let alone = sp.run_one(texts[1], &SparseOptions::default()).unwrap();
    assert_eq!(alone.indices, all[1].indices);
    for (x, y) in alone.values.iter().zip(&all[1].values) {
        assert!((x - y).abs() < 1e-5);
    }
}

#[test]
fn rerank_sorts_passages_by_the_cross_encoder_score() {
    let rr = Reranker::load(seeded_dir("seqcls"), LoadOptions::default()).unwrap();
    let passages = [
        "Paris is in France.",
        "Cats sleep a lot.",
        "The capital of France is Paris.",
    ];
    let ranked = rr.run_one(("capital of France", &passages), &()).unwrap();
    assert_eq!(ranked.len(), 3);
    assert!(ranked.windows(2).all(|w| w[0].score >= w[1].score));
    let clf = TextClassification::load(seeded_dir("seqcls"), LoadOptions::default()).unwrap();
    let last = clf.bert.dir.config.id2label.last().unwrap().clone();
    for r in &ranked {
        let labels = clf
            .run_one(
                ("capital of France", Some(passages[r.index])),
                &Default::default(),
            )
            .unwrap();
        let want = labels.iter().find(|l| l.label == last).unwrap().score;
        assert_eq!(r.score, want);
    }
}

#[test]
fn cli_sparse_embed_and_rerank() {
    let (code, out, err) = bert(&[
        "embed",
        "--sparse",
        "--top-k",
        "5",
        "The Eiffel Tower is in Paris.",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["sparse"]["indices"].as_array().unwrap().len(), 5, "{out}");
    let seqcls = seeded_dir("seqcls");
    let (code, out, err) = bert(&[
        "rerank",
        "--model",
        seqcls.to_str().unwrap(),
        "--query",
        "capital of France",
        "Cats sleep a lot.",
        "Paris is the capital of France.",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2, "{out}");
    assert!(v[0]["score"].as_f64().unwrap() >= v[1]["score"].as_f64().unwrap());
}
