//! bert-std's pipelines against HF transformers' pipelines (goldens/generate.py): same labels,
//! spans, tokens and words; scores within 1e-4.
mod common;

use bert_std::pipelines::classification::ClassifyOptions;
use bert_std::pipelines::classification::TextClassification;
use bert_std::pipelines::embeddings::{cosine, SentenceEmbeddings};
use bert_std::pipelines::fill_mask::FillMask;
use bert_std::pipelines::ner::{Aggregation, NerOptions, TokenClassification};
use bert_std::pipelines::nsp::NextSentencePrediction;
use bert_std::pipelines::qa::{QaOptions, QuestionAnswering};
use bert_std::{LoadOptions, Pipeline, Tokenizer};
use common::*;

const TOL: f32 = 1e-4;

fn close(what: &str, got: f32, want: f32) {
    assert!((got - want).abs() <= TOL, "{what}: {got} vs {want}");
}

#[test]
fn tokenization_matches_python_tokenizers() {
    let goldens = golden("pipelines.json");
    let dir = minilm();
    let from_json = Tokenizer::from_dir(&dir).unwrap();
    let from_vocab = Tokenizer::from_vocab(&dir.join("vocab.txt"), true, None, true).unwrap();
    for (name, tok) in [("tokenizer_json", &from_json), ("vocab_txt", &from_vocab)] {
        let rows = goldens["tokenization"][name].as_array().unwrap();
        for row in rows {
            let text = row["text"].as_str().unwrap();
            let pair = row["pair"].as_str();
            let enc = tok.encode(text, pair).unwrap();
            let ids: Vec<u32> = serde_json::from_value(row["ids"].clone()).unwrap();
            let types: Vec<u32> = serde_json::from_value(row["type_ids"].clone()).unwrap();
            let offsets: Vec<(usize, usize)> =
                serde_json::from_value(row["offsets"].clone()).unwrap();
            assert_eq!(enc.get_ids(), &ids[..], "{name}: ids of {text:?}");
            assert_eq!(
                enc.get_type_ids(),
                &types[..],
                "{name}: type ids of {text:?}"
            );
            assert_eq!(
                enc.get_offsets(),
                &offsets[..],
                "{name}: offsets of {text:?}"
            );
        }
        assert!(rows.len() >= 13);
    }
}

#[test]
fn fill_mask_matches_hf_pipeline() {
    let fm = FillMask::load(splade(), LoadOptions::default()).unwrap();
    for case in golden("pipelines.json")["fill_mask"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let got = fm.run_one(text, &Default::default()).unwrap();
        let want = case["predictions"].as_array().unwrap();
        assert_eq!(got.masks.len(), want.len(), "{text}: number of masks");
        for (g_mask, w_mask) in got.masks.iter().zip(want) {
            for (g, w) in g_mask.candidates.iter().zip(w_mask.as_array().unwrap()) {
                assert_eq!(g.token, w["token"].as_u64().unwrap() as u32, "{text}");
                assert_eq!(g.token_str, w["token_str"].as_str().unwrap());
                assert_eq!(g.sequence, w["sequence"].as_str().unwrap());
                close(text, g.score, f(&w["score"]));
            }
        }
    }
}

#[test]
fn sentence_embeddings_match_sentence_transformers() {
    let goldens = golden("embeddings.json");
    let st = SentenceEmbeddings::load(minilm(), LoadOptions::default()).unwrap();
    assert_eq!(st.bert.dir.pooling.max_seq_length, Some(256));
    let rows = goldens["rows"].as_array().unwrap();
    let texts: Vec<&str> = rows.iter().map(|r| r["text"].as_str().unwrap()).collect();
    let got = st.embed(&texts).unwrap();
    for (g, r) in got.iter().zip(rows) {
        let want: Vec<f32> = serde_json::from_value(r["embedding"].clone()).unwrap();
        let cos = cosine(g, &want);
        let max = g
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        eprintln!(
            "embedding {:?}: cosine {cos:.7}, max abs diff {max:.2e}",
            &r["text"].as_str().unwrap()[..5]
        );
        assert!(cos >= 0.9999, "cosine {cos}");
        assert!(max <= TOL, "max abs diff {max}");
    }
}

#[test]
fn text_classification_matches_hf_pipeline() {
    let clf = TextClassification::load(seeded_dir("seqcls"), LoadOptions::default()).unwrap();
    for case in golden("pipelines.json")["classification"]
        .as_array()
        .unwrap()
    {
        let text = case["text"].as_str().unwrap();
        let got = clf.run_one((text, None), &Default::default()).unwrap();
        let want = case["labels"].as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.label, w["label"].as_str().unwrap());
            close("classification score", g.score, f(&w["score"]));
        }
        let top = clf
            .run_one(
                (text, None),
                &ClassifyOptions {
                    top_k: Some(1),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(top.len(), 1);
    }
}

#[test]
fn ner_matches_hf_pipeline_for_every_aggregation() {
    let ner = TokenClassification::load(seeded_dir("tokcls"), LoadOptions::default()).unwrap();
    let goldens = golden("pipelines.json");
    for name in ["none", "simple", "first", "average", "max"] {
        let aggregation: Aggregation = name.parse().unwrap();
        for case in goldens["ner"][name].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            let got = ner.run_one(text, &NerOptions { aggregation }).unwrap();
            let want = case["entities"].as_array().unwrap();
            assert_eq!(got.len(), want.len(), "{name}: entity count for {text:?}");
            for (g, w) in got.iter().zip(want) {
                assert_eq!(g.label, w["entity"].as_str().unwrap(), "{name}: {text}");
                assert_eq!(g.word, w["word"].as_str().unwrap(), "{name}");
                assert_eq!(
                    (g.start, g.end),
                    (
                        w["start"].as_u64().unwrap() as usize,
                        w["end"].as_u64().unwrap() as usize
                    )
                );
                assert_eq!(g.index, w["index"].as_u64().map(|i| i as usize));
                close(name, g.score, f(&w["score"]));
                // HF's JSON keys: "entity" for tokens, "entity_group" for grouped entities.
                let json = serde_json::to_value(g).unwrap();
                let key = if name == "none" {
                    "entity"
                } else {
                    "entity_group"
                };
                assert_eq!(json[key].as_str(), Some(g.label.as_str()), "{json}");
                let chars: String = text.chars().skip(g.start).take(g.end - g.start).collect();
                assert!(!chars.is_empty());
            }
        }
    }
}

#[test]
fn nsp_matches_transformers() {
    let nsp = NextSentencePrediction::load(seeded_dir("nsp"), LoadOptions::default()).unwrap();
    for case in golden("pipelines.json")["nsp"].as_array().unwrap() {
        let got = nsp
            .run_one(
                (case["a"].as_str().unwrap(), case["b"].as_str().unwrap()),
                &(),
            )
            .unwrap();
        close("is_next", got.is_next, f(&case["is_next"]));
        close("logit 0", got.logits[0], f(&case["logits"][0]));
        close("logit 1", got.logits[1], f(&case["logits"][1]));
    }
}

#[test]
fn question_answering_matches_hf_pipeline_including_long_contexts() {
    let qa = QuestionAnswering::load(seeded_dir("qa"), LoadOptions::default()).unwrap();
    let mut long_seen = false;
    for case in golden("pipelines.json")["qa"].as_array().unwrap() {
        let o = &case["options"];
        let options = QaOptions {
            top_k: o["top_k"].as_u64().unwrap_or(1) as usize,
            max_answer_len: o["max_answer_len"].as_u64().unwrap_or(15) as usize,
            handle_impossible_answer: o["handle_impossible_answer"].as_bool().unwrap_or(false),
            ..QaOptions::default()
        };
        let context = case["context"].as_str().unwrap();
        long_seen |= context.len() > 3000;
        let got = qa
            .run_one((case["question"].as_str().unwrap(), context), &options)
            .unwrap();
        let want = case["answers"].as_array().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.answer, w["answer"].as_str().unwrap());
            assert_eq!(
                (g.start, g.end),
                (
                    w["start"].as_u64().unwrap() as usize,
                    w["end"].as_u64().unwrap() as usize
                )
            );
            close("qa score", g.score, f(&w["score"]));
        }
    }
    assert!(
        long_seen,
        "a context longer than one 384-token window is covered"
    );
}

#[test]
fn question_answering_batches_questions_like_one_at_a_time() {
    let qa = QuestionAnswering::load(seeded_dir("qa"), LoadOptions::default()).unwrap();
    let cases = golden("pipelines.json")["qa"].as_array().unwrap().clone();
    let inputs: Vec<(&str, &str)> = cases
        .iter()
        .map(|c| {
            (
                c["question"].as_str().unwrap(),
                c["context"].as_str().unwrap(),
            )
        })
        .collect();
    let o = QaOptions::default();
    let batched = qa.run(&inputs, &o).unwrap();
    assert_eq!(batched.len(), inputs.len());
    for (input, got) in inputs.iter().zip(&batched) {
        let alone = qa.run_one(*input, &o).unwrap();
        assert_eq!(alone.len(), got.len());
        for (a, b) in alone.iter().zip(got) {
            assert_eq!((&a.answer, a.start, a.end), (&b.answer, b.start, b.end));
            assert!((a.score - b.score).abs() < 1e-5);
        }
    }
}
