//! # bert-std
//!
//! What a desktop or server needs around [`bert_core`]: HF model directories loaded zero-copy
//! from an mmap, the `tokenizers` crate, default models fetched on first use, threaded
//! length-bucketed batching, and pipelines shaped like HF's: [`pipelines::fill_mask`],
//! [`pipelines::nsp`], [`pipelines::classification`], [`pipelines::ner`], [`pipelines::qa`],
//! [`pipelines::embeddings`]. The `bert` binary is the command-line face of the same.
#![warn(missing_docs)]

pub mod atomic;
pub mod batching;
pub mod check;
pub mod error;
pub mod fetch;
pub mod hub;
pub mod index;
pub mod loaded;
pub mod model_dir;
pub mod peak;
pub mod pipelines;
pub mod quantize;
pub mod runtime;
pub mod tokenizer;

pub use error::{Error, Result};
pub use loaded::{LoadedModel, Task, TaskModel};
pub use model_dir::{ModelDir, Pooling, PoolingMode};
pub use pipelines::Pipeline;
pub use runtime::{resolve_model, Bert, LoadOptions};
pub use tokenizer::Tokenizer;
