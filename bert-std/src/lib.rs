//! # bert-std
//!
//! What a desktop or server needs around [`bert_core`]: HF model directories loaded zero-copy
//! from an mmap, the `tokenizers` crate, default models fetched on first use (into
//! `$BERT_MODELS_DIR`, else `~/.cache/bert-rs/models`; see [`fetch`]), threaded
//! length-bucketed batching, and pipelines shaped like HF's, all with one shape
//! ([`Pipeline`]: `run` / `run_one`): [`pipelines::embeddings`], [`pipelines::fill_mask`],
//! [`pipelines::nsp`], [`pipelines::classification`], [`pipelines::ner`], [`pipelines::qa`];
//! semantic search over a corpus ([`index`]). The `bert` binary is the command-line face of the
//! same.
//!
//! ```
//! use bert_std::pipelines::embeddings::{cosine, SentenceEmbeddings};
//!
//! // all-MiniLM-L6-v2, fetched once on first use.
//! let model = SentenceEmbeddings::default_model()?;
//! let v = model.embed(&["A man is eating food.", "A man eats.", "The sky is blue."])?;
//! assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
//! # Ok::<(), bert_std::Error>(())
//! ```
#![warn(missing_docs)]

pub mod atomic;
pub mod batching;
pub mod budget;
pub mod cache;
pub mod check;
pub mod device_export;
pub mod error;
pub mod fetch;
pub mod hub;
pub mod index;
pub mod loaded;
pub mod model_dir;
pub mod pipelines;
pub mod quantize;
pub mod runtime;
#[cfg(feature = "server")]
pub mod server;
pub mod st_dense;
pub mod task_models;
pub mod tokenizer;
pub mod train;
pub mod vocab_prune;

pub use error::{Error, Result};
pub use loaded::{LoadedModel, Task, TaskModel};
pub use model_dir::{ModelDir, Pooling, PoolingMode};
pub use pipelines::Pipeline;
pub use runtime::{resolve_model, Bert, LoadOptions};
pub use tokenizer::Tokenizer;
