//! Several models in one `bert serve`: the first answers at `/`, each at `/NAME/...`, OpenAI's
//! `model` field picks one, each gives its own library's answers while the others are busy, and
//! names that would clash are refused. (Their turns on the one worker are tested beside the
//! scheduler, `server::scheduler`.)
#![cfg(feature = "server")]
mod common;

use std::path::Path;
use std::time::Duration;

use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::server::{app_many, load_model, Background, ServerConfig, Task};
use bert_std::LoadOptions;
use common::*;
use serde_json::{json, Value};

fn tiny() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/roundtrip/base")
}

fn post(url: &str, path: &str, body: &Value) -> (u16, Value) {
    match ureq::post(&format!("{url}{path}"))
        .timeout(Duration::from_secs(120))
        .send_json(body.clone())
    {
        Ok(r) => (r.status(), r.into_json().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_json().unwrap()),
        Err(e) => panic!("{path}: {e}"),
    }
}

fn library(dir: &Path) -> SentenceEmbeddings {
    let mut lib = SentenceEmbeddings::load(dir, LoadOptions::default()).unwrap();
    lib.bert.dir.pooling.normalize = true;
    lib
}

fn close(got: &Value, want: &[f32]) -> bool {
    let got: Vec<f32> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    got.len() == want.len() && got.iter().zip(want).all(|(a, b)| (a - b).abs() <= 1e-5)
}

#[test]
fn two_models_answer_at_their_paths_and_by_name() {
    let models = vec![
        (
            "minilm".to_string(),
            load_model(Task::Embed, &minilm(), LoadOptions::default()).unwrap(),
        ),
        (
            "tiny".to_string(),
            load_model(Task::Embed, &tiny(), LoadOptions::default()).unwrap(),
        ),
    ];
    let server = Background::start_many(ServerConfig::default(), models).unwrap();
    let url = server.url.clone();
    let text = "Several models share one server.";
    let mut want = library(&minilm()).embed(&[text]).unwrap().remove(0);
    bert_std::pipelines::embeddings::l2_normalize(&mut want);
    let mut want_tiny = library(&tiny()).embed(&[text]).unwrap().remove(0);
    bert_std::pipelines::embeddings::l2_normalize(&mut want_tiny);
    assert_ne!(want.len(), want_tiny.len());

    // Both busy at once: each answers with its own model.
    std::thread::scope(|s| {
        for (path, want) in [
            ("/embed", &want),
            ("/minilm/embed", &want),
            ("/tiny/embed", &want_tiny),
        ] {
            let url = &url;
            s.spawn(move || {
                for _ in 0..10 {
                    let (code, v) = post(url, path, &json!({"inputs": [text]}));
                    assert_eq!(code, 200, "{path}: {v}");
                    assert!(close(&v[0], want), "{path}");
                }
            });
        }
    });
    for (model, want) in [("tiny", &want_tiny), ("minilm", &want)] {
        let (code, v) = post(
            &url,
            "/v1/embeddings",
            &json!({"input": text, "model": model}),
        );
        assert_eq!(code, 200, "{v}");
        assert_eq!(v["model"], model);
        assert!(close(&v["data"][0]["embedding"], want), "{model}");
    }
    let (code, v) = post(
        &url,
        "/v1/embeddings",
        &json!({"input": text, "model": "nope"}),
    );
    assert_eq!(code, 404, "{v}");
    assert!(v["error"].as_str().unwrap().contains("minilm, tiny"), "{v}");
    let info: Value = ureq::get(&format!("{url}/tiny/info"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(info["model_id"], "tiny");
    assert_eq!(info["models"], json!(["minilm", "tiny"]));
    server.stop().unwrap();
}

#[test]
fn clashing_model_names_are_refused() {
    for names in [["a", "a"], ["a", "embed"], ["a", "../x"], ["v1", "b"]] {
        let models = names
            .iter()
            .map(|n| {
                let m = load_model(Task::Embed, &tiny(), LoadOptions::default()).unwrap();
                (n.to_string(), m)
            })
            .collect();
        let e = app_many(ServerConfig::default(), models).unwrap_err();
        assert!(e.to_string().contains("model name"), "{names:?}: {e}");
    }
}
