//! The route table, and the OpenAPI 3.1 document (`GET /openapi.json`) made from it: each
//! route's handler and the types its handler reads and writes sit in one row, so the router
//! ([`super::router`]) and the document cannot disagree. The schemas are derived
//! (`schemars::JsonSchema`) from the very request and answer types the handlers use.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Json;
use schemars::{generate::SchemaSettings, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::api::ErrorBody;
use super::{embedding, routes, tokens, AppState};
use crate::pipelines::classification::LabelScore;
use crate::pipelines::fill_mask::FillMaskOutput;
use crate::pipelines::ner::Entity;
use crate::pipelines::qa::Answer;

/// A schema of one type, made by a generator (so that named types land in its definitions).
type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

/// One route: where, what it does, what it reads and writes, and its handler.
pub(crate) struct RouteSpec {
    /// The path (`/embed`).
    pub path: &'static str,
    /// `"post"` (a JSON body) or `"get"`.
    pub method: &'static str,
    /// One line for the document.
    pub summary: &'static str,
    /// The JSON body's schema (POST routes).
    pub request: Option<SchemaOf>,
    /// The answer's schema, and its content type.
    pub response: (SchemaOf, &'static str),
    /// The handler.
    pub handler: fn() -> MethodRouter<Arc<AppState>>,
}

macro_rules! schema {
    ($t:ty) => {
        SchemaGenerator::subschema_for::<$t> as SchemaOf
    };
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

/// Every route the server answers, in the order the document lists them.
pub(crate) fn route_specs() -> Vec<RouteSpec> {
    vec![
        RouteSpec {
            path: "/v1/embeddings",
            method: "post",
            summary: "OpenAI's embeddings (`model` picks one of several models).",
            request: Some(schema!(embedding::OpenAiEmbeddingRequest)),
            response: (schema!(embedding::OpenAiResponse), JSON),
            handler: || post(embedding::openai_embeddings),
        },
        RouteSpec {
            path: "/embed",
            method: "post",
            summary: "text-embeddings-inference's pooled embeddings, one vector per input.",
            request: Some(schema!(embedding::EmbedRequest)),
            response: (schema!(Vec<Vec<f32>>), JSON),
            handler: || post(embedding::embed),
        },
        RouteSpec {
            path: "/embed_all",
            method: "post",
            summary: "Every token's vector, per input, special tokens included.",
            request: Some(schema!(embedding::EmbedAllRequest)),
            response: (schema!(Vec<Vec<Vec<f32>>>), JSON),
            handler: || post(embedding::embed_all),
        },
        RouteSpec {
            path: "/embed_sparse",
            method: "post",
            summary: "SPLADE sparse vectors (`--task sparse-embed`): non-zero terms by index.",
            request: Some(schema!(embedding::EmbedSparseRequest)),
            response: (schema!(Vec<Vec<embedding::SparseValue>>), JSON),
            handler: || post(embedding::embed_sparse),
        },
        RouteSpec {
            path: "/similarity",
            method: "post",
            summary: "The cosine of a source sentence with each of several sentences.",
            request: Some(schema!(embedding::SimilarityRequest)),
            response: (schema!(Vec<f32>), JSON),
            handler: || post(embedding::similarity),
        },
        RouteSpec {
            path: "/tokenize",
            method: "post",
            summary: "Tokens with ids and character offsets, per input.",
            request: Some(schema!(tokens::TokenizeRequest)),
            response: (schema!(Vec<Vec<tokens::SimpleToken>>), JSON),
            handler: || post(tokens::tokenize),
        },
        RouteSpec {
            path: "/decode",
            method: "post",
            summary: "Token ids back to text, per list.",
            request: Some(schema!(tokens::DecodeRequest)),
            response: (schema!(Vec<String>), JSON),
            handler: || post(tokens::decode),
        },
        RouteSpec {
            path: "/predict",
            method: "post",
            summary: "Sequence classification of texts or text pairs.",
            request: Some(schema!(routes::PredictRequest)),
            response: (schema!(routes::OneOrAll<Vec<LabelScore>>), JSON),
            handler: || post(routes::predict),
        },
        RouteSpec {
            path: "/rerank",
            method: "post",
            summary: "Texts ranked by a cross-encoder's relevance to a query.",
            request: Some(schema!(routes::RerankRequest)),
            response: (schema!(Vec<routes::Ranked>), JSON),
            handler: || post(routes::rerank),
        },
        RouteSpec {
            path: "/fill-mask",
            method: "post",
            summary: "The most probable tokens for each [MASK].",
            request: Some(schema!(routes::FillMaskRequest)),
            response: (schema!(Vec<FillMaskOutput>), JSON),
            handler: || post(routes::fill_mask),
        },
        RouteSpec {
            path: "/ner",
            method: "post",
            summary: "Named entities (token classification), per input.",
            request: Some(schema!(routes::NerRequest)),
            response: (schema!(Vec<Vec<Entity>>), JSON),
            handler: || post(routes::ner),
        },
        RouteSpec {
            path: "/qa",
            method: "post",
            summary: "Extractive question answering over a context.",
            request: Some(schema!(routes::QaRequest)),
            response: (schema!(routes::OneOrAll<Vec<Answer>>), JSON),
            handler: || post(routes::qa),
        },
        RouteSpec {
            path: "/health",
            method: "get",
            summary: "200 while the model worker runs, else 503.",
            request: None,
            response: (schema!(String), TEXT),
            handler: || get(routes::health),
        },
        RouteSpec {
            path: "/info",
            method: "get",
            summary: "text-embeddings-inference's model and limit fields, and this server's own.",
            request: None,
            response: (schema!(routes::Info), JSON),
            handler: || get(routes::info),
        },
        RouteSpec {
            path: "/metrics",
            method: "get",
            summary: "Prometheus metrics.",
            request: None,
            response: (schema!(String), TEXT),
            handler: || get(routes::metrics),
        },
        RouteSpec {
            path: "/openapi.json",
            method: "get",
            summary: "This document.",
            request: None,
            response: (schema!(Value), JSON),
            handler: || get(openapi_json),
        },
    ]
}

/// The OpenAPI 3.1 document of [`route_specs`]; `models` (when there are several) adds each
/// model's `/NAME/...` copy of every route.
pub(crate) fn document(models: &[String]) -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
    });
    let mut generator = SchemaGenerator::new(settings);
    let error = generator.subschema_for::<ErrorBody>();
    let mut paths = Map::new();
    let prefixes: Vec<String> = if models.len() > 1 {
        std::iter::once(String::new())
            .chain(models.iter().map(|m| format!("/{m}")))
            .collect()
    } else {
        vec![String::new()]
    };
    for spec in route_specs() {
        let mut operation = json!({
            "summary": spec.summary,
            "responses": {
                "200": {"description": "The answer.",
                        "content": {spec.response.1: {"schema": (spec.response.0)(&mut generator)}}},
                "4XX": {"description": "A request the server refuses (JSON error).",
                        "content": {JSON: {"schema": error.clone()}}},
                "5XX": {"description": "An overloaded or failing server (JSON error).",
                        "content": {JSON: {"schema": error.clone()}}},
            },
        });
        if let Some(request) = spec.request {
            operation["requestBody"] = json!({
                "required": true,
                "content": {JSON: {"schema": request(&mut generator)}},
            });
        }
        for prefix in &prefixes {
            paths.insert(
                format!("{prefix}{}", spec.path),
                json!({ spec.method: operation.clone() }),
            );
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "bert serve",
            "description": "Embeddings, classification, reranking, fill-mask, NER and QA over \
                            BERT-family encoders; text-embeddings-inference's and OpenAI's routes.",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}

/// `GET /openapi.json`.
pub(crate) async fn openapi_json(State(state): State<Arc<AppState>>) -> Response {
    Json(document(&state.model_names())).into_response()
}
