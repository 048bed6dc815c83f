//! `bert serve` as text-embeddings-inference: every route and option TEI has, checked against
//! the library on the same model (and, for prompts and dimensions, against sentence-transformers'
//! `encode(..., prompt_name=, truncate_dim=)`, `tests/goldens/tei.json` from
//! `generate_tei.py`): `/embed` (`truncate`, `truncation_direction`, `normalize`, `dimensions`,
//! `prompt_name`, token-id inputs), `/v1/embeddings` (`dimensions`, ids), `/embed_all`,
//! `/embed_sparse`, `/similarity`, `/tokenize`, `/decode`, `/predict` and `/rerank` with
//! `raw_scores`, `/info`'s TEI fields and the timing headers.
#![cfg(feature = "server")]
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bert_std::pipelines::classification::{ClassifyOptions, TextClassification};
use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::pipelines::embeddings::{cosine, l2_normalize, EmbedInput, EmbedOptions};
use bert_std::pipelines::sparse::SparseEmbeddings;
use bert_std::server::{load_model, Background, ServerConfig, Task};
use bert_std::tokenizer::Side;
use bert_std::{LoadOptions, Pipeline};
use common::*;
use serde_json::{json, Value};

fn opts() -> LoadOptions {
    LoadOptions {
        threads: 2,
        ..LoadOptions::default()
    }
}

fn start(task: Task, dir: &Path) -> Background {
    let model = load_model(task, dir, opts()).unwrap();
    let config = ServerConfig {
        task,
        ..ServerConfig::default()
    };
    Background::start(config, model, "test-model".into()).unwrap()
}

/// POST `body`: status, JSON answer and headers.
fn post(url: &str, path: &str, body: &Value) -> (u16, Value, Vec<(String, String)>) {
    let req = ureq::post(&format!("{url}{path}")).timeout(Duration::from_secs(120));
    let (code, r) = match req.send_json(body.clone()) {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(code, r)) => (code, r),
        Err(e) => panic!("{path}: {e}"),
    };
    let headers = r
        .headers_names()
        .into_iter()
        .map(|n| (n.clone(), r.header(&n).unwrap_or_default().to_string()))
        .collect();
    (code, r.into_json().unwrap(), headers)
}

fn ok(url: &str, path: &str, body: Value) -> Value {
    let (code, answer, _) = post(url, path, &body);
    assert_eq!(code, 200, "{path} {body}: {answer}");
    answer
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn rows(v: &Value) -> Vec<Vec<f32>> {
    v.as_array().unwrap().iter().map(floats).collect()
}

/// MiniLM with the prompts of the golden (hard links, and the golden's own config files).
fn minilm_with_prompts(name: &str, pooling: Option<&Value>) -> (Scratch, PathBuf) {
    let golden = golden("tei.json");
    let scratch = Scratch::new(name);
    let dir = scratch.join("model");
    let src = minilm();
    for entry in walk(&src) {
        let to = dir.join(entry.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if std::fs::hard_link(&entry, &to).is_err() {
            std::fs::copy(&entry, &to).unwrap();
        }
    }
    let write = |file: &str, v: &Value| {
        let path = dir.join(file);
        let _ = std::fs::remove_file(&path);
        std::fs::write(path, v.to_string()).unwrap();
    };
    write(
        "config_sentence_transformers.json",
        &golden["config_sentence_transformers"],
    );
    if let Some(p) = pooling {
        write("1_Pooling/config.json", p);
    }
    (scratch, dir)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn embedding_options_match_the_library_and_sentence_transformers() {
    let golden = golden("tei.json");
    let (_keep, dir) = minilm_with_prompts("tei-embed", None);
    let server = start(Task::Embed, &dir);
    let url = server.url.clone();
    // The library as the server runs it: pooled vectors, normalized per request.
    let mut lib = SentenceEmbeddings::load(&dir, opts()).unwrap();
    lib.bert.dir.pooling.normalize = false;
    let texts: Vec<String> = golden["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let inputs: Vec<EmbedInput<'_>> = texts.iter().map(|t| EmbedInput::Text(t)).collect();

    // Plain, normalized: sentence-transformers' vectors.
    let plain = rows(&ok(&url, "/embed", json!({"inputs": texts})));
    assert!(max_diff(&plain, &rows(&golden["plain"])) <= 1e-4);

    // prompt_name: sentence-transformers' encode(prompt_name="query"), and the library's.
    let query = rows(&ok(
        &url,
        "/embed",
        json!({"inputs": texts, "prompt_name": "query"}),
    ));
    let d = max_diff(&query, &rows(&golden["query"]));
    assert!(d <= 1e-4, "prompt_name: {d}");
    let options = EmbedOptions {
        prompt_name: Some("query".into()),
        ..EmbedOptions::default()
    };
    let mut want = lib.embed_inputs(&inputs, &options).unwrap();
    want.iter_mut().for_each(|v| l2_normalize(v));
    assert!(max_diff(&query, &want) <= 1e-6);
    assert!(
        max_diff(&query, &plain) > 1e-3,
        "the prompt changes the vectors"
    );
    let (code, e, _) = post(
        &url,
        "/embed",
        &json!({"inputs": "x", "prompt_name": "nope"}),
    );
    assert_eq!(code, 422, "{e}");
    assert!(
        e["error"].as_str().unwrap().contains("passage, query"),
        "{e}"
    );

    // dimensions: sentence-transformers' encode(truncate_dim=128), unit length again.
    let dims = golden["dimensions"].as_u64().unwrap() as usize;
    let cut = rows(&ok(
        &url,
        "/embed",
        json!({"inputs": texts, "dimensions": dims}),
    ));
    assert!(cut.iter().all(|v| v.len() == dims));
    let d = max_diff(&cut, &rows(&golden["truncated"]));
    assert!(d <= 1e-4, "dimensions: {d}");
    let oa = ok(
        &url,
        "/v1/embeddings",
        json!({"input": texts, "dimensions": dims}),
    );
    let oa: Vec<Vec<f32>> = oa["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| floats(&d["embedding"]))
        .collect();
    assert!(max_diff(&oa, &cut) <= 1e-6);
    let (code, _, _) = post(&url, "/embed", &json!({"inputs": "x", "dimensions": 385}));
    assert_eq!(code, 422);

    // normalize: false gives the pooled vector as it is.
    let raw = rows(&ok(
        &url,
        "/embed",
        json!({"inputs": texts, "normalize": false}),
    ));
    let want = lib.embed_inputs(&inputs, &EmbedOptions::default()).unwrap();
    assert!(max_diff(&raw, &want) <= 1e-6);

    // Token ids are taken as they are: the ids of a text give the text's vector.
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            lib.bert
                .tokenizer
                .encode(t, None)
                .unwrap()
                .get_ids()
                .to_vec()
        })
        .collect();
    let by_ids = rows(&ok(&url, "/embed", json!({"inputs": ids})));
    assert!(max_diff(&by_ids, &plain) <= 1e-6);
    let one = rows(
        &ok(&url, "/v1/embeddings", json!({"input": ids[0]}))["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["embedding"].clone())
            .collect::<Value>(),
    );
    assert!(max_diff(&one, &plain[..1]) <= 1e-6);
    let (code, _, _) = post(&url, "/embed", &json!({"inputs": [[999999]]}));
    assert_eq!(code, 422, "an id outside the vocabulary");

    // truncation_direction: left keeps the end of a long text.
    let long = format!("{} the end of the text is here", "word ".repeat(400));
    for (side, name) in [(Side::Right, "right"), (Side::Left, "left")] {
        let got = rows(&ok(
            &url,
            "/embed",
            json!({"inputs": [&long], "truncate": true, "truncation_direction": name, "normalize": false}),
        ));
        let o = EmbedOptions {
            truncation: side,
            ..EmbedOptions::default()
        };
        let want = lib.embed_inputs(&[EmbedInput::Text(&long)], &o).unwrap();
        assert!(max_diff(&got, &want) <= 1e-6, "{name}");
    }
    let (code, _, _) = post(&url, "/embed", &json!({"inputs": [&long]}));
    assert_eq!(code, 413, "too long without truncate");

    // /embed_all: every token's vector; their mean is the pooled vector (mean pooling).
    let all = ok(&url, "/embed_all", json!({"inputs": texts}));
    let want = lib.embed_tokens(&inputs, &EmbedOptions::default()).unwrap();
    for (i, (got, want)) in all.as_array().unwrap().iter().zip(&want).enumerate() {
        let got = rows(got);
        assert_eq!(got.len(), ids[i].len(), "one vector per token");
        assert!(max_diff(&got, want) <= 1e-6);
        let h = got[0].len();
        let mean: Vec<f32> = (0..h)
            .map(|j| got.iter().map(|r| r[j]).sum::<f32>() / got.len() as f32)
            .collect();
        assert!(max_diff(&[mean], &raw[i..=i]) <= 1e-5);
    }

    // /similarity: cosine of the library's vectors.
    let sims = floats(&ok(
        &url,
        "/similarity",
        json!({"inputs": {"source_sentence": texts[0], "sentences": [texts[1], texts[2]]}}),
    ));
    let v = lib.embed(&texts).unwrap();
    assert!((sims[0] - cosine(&v[0], &v[1])).abs() <= 1e-5);
    assert!((sims[1] - cosine(&v[0], &v[2])).abs() <= 1e-5);
    assert!(sims[0] > sims[1], "the capital question is closer to Paris");

    // /tokenize and /decode.
    let toks = ok(&url, "/tokenize", json!({"inputs": texts[0]}));
    let toks = toks[0].as_array().unwrap();
    let enc = lib.bert.tokenizer.encode(&texts[0], None).unwrap();
    assert_eq!(toks.len(), enc.len());
    for (t, &id) in toks.iter().zip(enc.get_ids()) {
        assert_eq!(t["id"], id);
        if t["special"] == true {
            assert!(t["start"].is_null());
        } else {
            let (s, e) = (t["start"].as_u64().unwrap(), t["stop"].as_u64().unwrap());
            let piece = &texts[0][s as usize..e as usize];
            assert_eq!(t["text"].as_str().unwrap(), piece);
        }
    }
    assert_eq!(toks[0]["text"], "[CLS]");
    let bare = ok(
        &url,
        "/tokenize",
        json!({"inputs": [texts[0]], "add_special_tokens": false}),
    );
    assert_eq!(bare[0].as_array().unwrap().len(), enc.len() - 2);
    let prompted = ok(
        &url,
        "/tokenize",
        json!({"inputs": "x", "prompt_name": "query"}),
    );
    assert_eq!(prompted[0][1]["text"], "query");
    let decoded = ok(&url, "/decode", json!({"ids": enc.get_ids()}));
    assert_eq!(decoded[0], texts[0].to_lowercase());
    let with_specials = ok(
        &url,
        "/decode",
        json!({"ids": [enc.get_ids()], "skip_special_tokens": false}),
    );
    assert!(with_specials[0].as_str().unwrap().starts_with("[CLS]"));

    // /info: TEI's fields; and the timing headers on an inference route.
    let info: Value = ureq::get(&format!("{url}/info"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(info["model_type"]["embedding"]["pooling"], "mean");
    for k in [
        "model_id",
        "model_dtype",
        "max_concurrent_requests",
        "max_input_length",
        "max_batch_tokens",
        "max_client_batch_size",
        "auto_truncate",
        "tokenization_workers",
        "version",
    ] {
        assert!(info.get(k).is_some(), "/info has no {k}: {info}");
    }
    let (_, _, headers) = post(&url, "/embed", &json!({"inputs": texts}));
    for h in [
        "x-compute-time",
        "x-compute-characters",
        "x-compute-tokens",
        "x-total-time",
        "x-tokenization-time",
        "x-queue-time",
        "x-inference-time",
    ] {
        let v = headers
            .iter()
            .find(|(n, _)| n == h)
            .unwrap_or_else(|| panic!("no {h} in {headers:?}"));
        assert!(v.1.parse::<u64>().is_ok(), "{h}: {}", v.1);
    }
    let chars: usize = texts.iter().map(|t| t.chars().count()).sum();
    assert!(headers.contains(&("x-compute-characters".into(), chars.to_string())));
    server.stop().unwrap();
}

#[test]
fn a_prompt_left_out_of_the_pooling_matches_sentence_transformers() {
    let golden = golden("tei.json");
    let (_keep, dir) = minilm_with_prompts("tei-exclude", Some(&golden["pooling_without_prompt"]));
    let server = start(Task::Embed, &dir);
    let got = rows(&ok(
        &server.url,
        "/embed",
        json!({"inputs": golden["texts"], "prompt_name": "query"}),
    ));
    let d = max_diff(&got, &rows(&golden["query_excluded"]));
    assert!(d <= 1e-4, "include_prompt: false: {d}");
    assert!(max_diff(&got, &rows(&golden["query"])) > 1e-3);
    server.stop().unwrap();
}

#[test]
fn sparse_predict_and_rerank_options() {
    // /embed_sparse on SPLADE-tiny: the pipeline's terms, by vocabulary index.
    let server = start(Task::SparseEmbed, &splade());
    let text = "The Eiffel Tower is in Paris.";
    let got = ok(&server.url, "/embed_sparse", json!({"inputs": [text]}));
    let lib = SparseEmbeddings::load(splade(), opts()).unwrap();
    let want = lib.run_one(text, &Default::default()).unwrap();
    let terms = got[0].as_array().unwrap();
    assert_eq!(terms.len(), want.indices.len());
    let mut pairs: Vec<(u32, f32)> = want.indices.iter().copied().zip(want.values).collect();
    pairs.sort_by_key(|p| p.0);
    for (t, (i, v)) in terms.iter().zip(pairs) {
        assert_eq!(t["index"], i);
        assert!((t["value"].as_f64().unwrap() as f32 - v).abs() <= 1e-6);
    }
    server.stop().unwrap();

    // /predict raw_scores: the logits, whose softmax is the default scores.
    let dir = seeded_dir("seqcls");
    let server = start(Task::Classify, &dir);
    let texts = ["a wonderful film", "a dreadful film"];
    let scores = ok(
        &server.url,
        "/predict",
        json!({"inputs": [[texts[0]], [texts[1]]]}),
    );
    let raw = ok(
        &server.url,
        "/predict",
        json!({"inputs": [[texts[0]], [texts[1]]], "raw_scores": true}),
    );
    let lib = TextClassification::load(&dir, opts()).unwrap();
    let o = ClassifyOptions {
        raw_scores: true,
        ..Default::default()
    };
    for (i, t) in texts.iter().enumerate() {
        let want = lib.run_one((t, None), &o).unwrap();
        for (got, want) in raw[i].as_array().unwrap().iter().zip(&want) {
            assert_eq!(got["label"].as_str().unwrap(), want.label);
            assert!((got["score"].as_f64().unwrap() as f32 - want.score).abs() <= 1e-5);
        }
        let logits: Vec<f32> = want.iter().map(|l| l.score).collect();
        let z: f32 = logits.iter().map(|x| (x - logits[0]).exp()).sum();
        let top = scores[i][0]["score"].as_f64().unwrap() as f32;
        assert!((top - 1.0 / z).abs() <= 1e-5, "softmax of the raw scores");
    }
    server.stop().unwrap();

    // /rerank raw_scores and return_text on the same model.
    let server = start(Task::Rerank, &dir);
    let r = ok(
        &server.url,
        "/rerank",
        json!({"query": "film", "texts": texts, "raw_scores": true, "return_text": true}),
    );
    let r = r.as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert!(r[0]["score"].as_f64() >= r[1]["score"].as_f64());
    for item in r {
        let i = item["index"].as_u64().unwrap() as usize;
        assert_eq!(item["text"], texts[i]);
        let want = lib.run_one(("film", Some(texts[i])), &o).unwrap();
        let last = lib.bert.dir.config.id2label.last().unwrap();
        let w = want.iter().find(|l| &l.label == last).unwrap().score;
        assert!((item["score"].as_f64().unwrap() as f32 - w).abs() <= 1e-5);
    }
    server.stop().unwrap();
}
