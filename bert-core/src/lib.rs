//! # bert-core
//!
//! A `#![no_std]` + `alloc` BERT that computes what HuggingFace transformers computes, for every
//! BERT head, from safetensors weights borrowed zero-copy from a `&[u8]` (flash, an mmap, a
//! `Vec`).
//!
//! ```text
//! config.json ──BertConfig::from_json──┐
//! model.safetensors ──Weights──────────┴─▶ BertModel / BertFor* ──forward(&Batch, &mut Workspace)──▶ views
//! ```
//!
//! Modules, in dependency order: [`error`], [`safetensors`], [`config`], [`weights`],
//! [`kernels`], [`nn`], [`model`], [`heads`], [`pretraining`]. See `ARCHITECTURE.md`.
//!
//! Feature `std` forwards to dependencies' std features and lets the kernels pick their
//! instruction set at run time (without it, the build's target features decide).
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod activation;
pub mod config;
pub mod error;
pub mod heads;
pub mod kernels;
pub mod model;
pub mod nn;
pub mod parallel;
pub mod pretraining;
pub mod quantize;
pub mod safetensors;
pub mod tensor;
pub mod weights;
pub mod wordpiece;

pub use config::{Activation, BertConfig};
pub use error::{Error, Result};
pub use heads::{
    BertForMaskedLM, BertForNextSentencePrediction, BertForPreTraining, BertForQuestionAnswering,
    BertForSequenceClassification, BertForTokenClassification, Logits, PreTrainingOutput,
    QuestionAnsweringOutput,
};
pub use model::{Batch, BertModel, BertModelOutput, Workspace};
pub use parallel::{Parallel, Sequential};
pub use safetensors::{Dtype, SafeTensors};
pub use weights::Weights;
