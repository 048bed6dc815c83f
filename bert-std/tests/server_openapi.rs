//! `GET /openapi.json`: every route the server answers is in the document with its method,
//! every POST route's body schema names exactly the fields its request type reads (a request
//! with all of them is answered), every `$ref` resolves, and several models add their
//! `/NAME/...` copies.
#![cfg(feature = "server")]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use bert_std::server::{load_model, Background, ServerConfig, Task, GET_ROUTES, POST_ROUTES};
use serde_json::{json, Value};

fn tiny() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/roundtrip/base")
}

fn get_json(url: &str) -> Value {
    ureq::get(url)
        .timeout(Duration::from_secs(60))
        .call()
        .unwrap()
        .into_json()
        .unwrap()
}

/// Follow `$ref`s (to `#/components/schemas/...`) until a schema with content.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("a $ref outside the components: {r}"));
            let target = &doc["components"]["schemas"][name];
            assert!(!target.is_null(), "{r} does not resolve");
            resolve(doc, target)
        }
        None => schema,
    }
}

/// Every `$ref` anywhere in `v` resolves in `doc`.
fn all_refs_resolve(doc: &Value, v: &Value) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(_)) = m.get("$ref") {
                resolve(doc, v);
            }
            m.values().for_each(|x| all_refs_resolve(doc, x));
        }
        Value::Array(a) => a.iter().for_each(|x| all_refs_resolve(doc, x)),
        _ => {}
    }
}

/// One request per POST route with every field its type reads.
fn full_requests() -> Vec<(&'static str, Value)> {
    vec![
        (
            "/v1/embeddings",
            json!({"input": "a", "model": "m", "encoding_format": "float", "dimensions": 8,
                   "truncate": true, "truncation_direction": "left", "prompt_name": null}),
        ),
        (
            "/embed",
            json!({"inputs": ["a"], "normalize": true, "dimensions": 8, "truncate": true,
                   "truncation_direction": "right", "prompt_name": null}),
        ),
        (
            "/embed_all",
            json!({"inputs": "a", "truncate": true, "truncation_direction": "right",
                   "prompt_name": null}),
        ),
        (
            "/embed_sparse",
            json!({"inputs": "a", "truncate": true, "truncation_direction": "right",
                   "prompt_name": null}),
        ),
        (
            "/similarity",
            json!({"inputs": {"source_sentence": "a", "sentences": ["b"]},
                   "parameters": {"truncate": true}}),
        ),
        (
            "/tokenize",
            json!({"inputs": "a", "add_special_tokens": true, "prompt_name": null}),
        ),
        (
            "/decode",
            json!({"ids": [1, 2], "skip_special_tokens": true}),
        ),
        (
            "/predict",
            json!({"inputs": "a", "top_k": 1, "raw_scores": false, "truncate": true,
                   "truncation_direction": "right"}),
        ),
        (
            "/rerank",
            json!({"query": "q", "texts": ["a"], "return_text": true, "truncate": true,
                   "truncation_direction": "right", "raw_scores": false}),
        ),
        ("/fill-mask", json!({"inputs": "a [MASK]", "top_k": 5})),
        ("/ner", json!({"inputs": "a", "aggregation": "simple"})),
        (
            "/qa",
            json!({"question": "q", "context": "c", "inputs": null, "top_k": 1,
                   "max_answer_len": 15, "handle_impossible_answer": false}),
        ),
    ]
}

#[test]
fn every_route_is_documented_with_the_fields_its_type_reads() {
    let model = load_model(Task::Embed, &tiny(), Default::default()).unwrap();
    let server = Background::start(ServerConfig::default(), model, "tiny".into()).unwrap();
    let doc = get_json(&format!("{}/openapi.json", server.url));
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let documented: BTreeSet<&str> = paths.keys().map(String::as_str).collect();
    let served: BTreeSet<&str> = POST_ROUTES.iter().chain(GET_ROUTES).copied().collect();
    assert_eq!(
        documented, served,
        "the document's paths and the routes differ"
    );
    for route in GET_ROUTES {
        assert!(paths[*route]["get"].is_object(), "{route}: no GET");
    }
    all_refs_resolve(&doc, &doc);

    let requests = full_requests();
    let listed: BTreeSet<&str> = requests.iter().map(|(r, _)| *r).collect();
    assert_eq!(listed, POST_ROUTES.iter().copied().collect());
    for (route, body) in &requests {
        let op = &paths[*route]["post"];
        let schema = resolve(
            &doc,
            &op["requestBody"]["content"]["application/json"]["schema"],
        );
        let props: BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{route}: no properties in {schema}"))
            .keys()
            .map(String::as_str)
            .collect();
        let sent: BTreeSet<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            props, sent,
            "{route}: documented fields vs the request type's"
        );
        let answer = resolve(
            &doc,
            &op["responses"]["200"]["content"]["application/json"]["schema"],
        );
        assert!(answer.is_object(), "{route}: no answer schema");
    }
    // The embedding server answers its documented full requests.
    for (route, body) in requests.iter().filter(|(r, _)| {
        [
            "/embed",
            "/v1/embeddings",
            "/embed_all",
            "/similarity",
            "/tokenize",
            "/decode",
        ]
        .contains(r)
    }) {
        let status = match ureq::post(&format!("{}{route}", server.url)).send_json(body.clone()) {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(c, r)) => panic!("{route}: {c} {}", r.into_string().unwrap()),
            Err(e) => panic!("{route}: {e}"),
        };
        assert_eq!(status, 200, "{route}");
    }
    // Errors have one documented shape, and it is what a refused request gets.
    let error = resolve(
        &doc,
        &paths["/embed"]["post"]["responses"]["4XX"]["content"]["application/json"]["schema"],
    );
    let fields: BTreeSet<&str> = error["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(fields, BTreeSet::from(["error", "error_type"]));
    let refused: Value =
        match ureq::post(&format!("{}/embed", server.url)).send_json(json!({"inputs": []})) {
            Err(ureq::Error::Status(422, r)) => r.into_json().unwrap(),
            other => panic!("expected 422, got {other:?}"),
        };
    let got: BTreeSet<&str> = refused
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(got, fields);
    server.stop().unwrap();
}

#[test]
fn several_models_document_their_prefixed_routes() {
    let models = ["a", "b"]
        .into_iter()
        .map(|n| {
            (
                n.to_string(),
                load_model(Task::Embed, &tiny(), Default::default()).unwrap(),
            )
        })
        .collect();
    let server = Background::start_many(ServerConfig::default(), models).unwrap();
    let doc = get_json(&format!("{}/b/openapi.json", server.url));
    let paths = doc["paths"].as_object().unwrap();
    for route in POST_ROUTES.iter().chain(GET_ROUTES) {
        for prefix in ["", "/a", "/b"] {
            assert!(
                paths.contains_key(&format!("{prefix}{route}")),
                "{prefix}{route}"
            );
        }
    }
    server.stop().unwrap();
}
