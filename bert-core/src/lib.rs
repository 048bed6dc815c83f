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
//! A whole forward pass, here on a tiny model built in memory (a real one comes from the bytes
//! of a HF checkpoint's `config.json` and `model.safetensors` in exactly the same way):
//!
//! ```
//! use bert_core::{safetensors, Batch, BertConfig, BertModel, Dtype, Weights};
//!
//! let config = BertConfig::from_json(r#"{"model_type": "bert", "vocab_size": 16,
//!     "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
//!     "intermediate_size": 16, "max_position_embeddings": 32}"#)?;
//! # let mut tensors: Vec<(String, Vec<usize>)> = vec![
//! #     ("embeddings.word_embeddings.weight".into(), vec![16, 8]),
//! #     ("embeddings.position_embeddings.weight".into(), vec![32, 8]),
//! #     ("embeddings.token_type_embeddings.weight".into(), vec![2, 8]),
//! #     ("embeddings.LayerNorm.weight".into(), vec![8]),
//! #     ("embeddings.LayerNorm.bias".into(), vec![8]),
//! # ];
//! # let l = "encoder.layer.0";
//! # for (name, shape) in [
//! #     ("attention.self.query", [8, 8]), ("attention.self.key", [8, 8]),
//! #     ("attention.self.value", [8, 8]), ("attention.output.dense", [8, 8]),
//! #     ("intermediate.dense", [16, 8]), ("output.dense", [8, 16]),
//! # ] {
//! #     tensors.push((format!("{l}.{name}.weight"), shape.to_vec()));
//! #     tensors.push((format!("{l}.{name}.bias"), vec![shape[0]]));
//! # }
//! # for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
//! #     tensors.push((format!("{l}.{ln}.weight"), vec![8]));
//! #     tensors.push((format!("{l}.{ln}.bias"), vec![8]));
//! # }
//! # let data: Vec<Vec<u8>> = tensors.iter().enumerate().map(|(t, (_, shape))| {
//! #     let n: usize = shape.iter().product();
//! #     (0..n).flat_map(|i| (((i * 7 + t * 3) % 11) as f32 / 10.0 - 0.5).to_le_bytes()).collect()
//! # }).collect();
//! # let views: Vec<(&str, Dtype, &[usize], &[u8])> = tensors.iter().zip(&data)
//! #     .map(|((n, s), d)| (n.as_str(), Dtype::F32, &s[..], &d[..])).collect();
//! # let model_safetensors = safetensors::serialize(&views, &[])?;
//! // `model_safetensors`: the bytes of a model.safetensors file (built above, hidden).
//! let weights = Weights::from_buffers(&[&model_safetensors])?;
//! let model = BertModel::load(&config, &weights)?;
//! let mut ws = model.workspace(1, 8)?; // every buffer, allocated once
//! let out = model.forward(&Batch::single(&[1, 5, 7, 2]), &mut ws)?;
//! assert_eq!(out.last_hidden_state.len(), 4 * 8);
//! assert!(out.last_hidden_state.iter().all(|x| x.is_finite()));
//! # Ok::<(), bert_core::Error>(())
//! ```
//!
//! Modules, in dependency order: [`tensor`] and [`activation`] (leaves), [`error`],
//! [`safetensors`], [`config`], [`weights`], [`kernels`], [`nn`], [`model`], [`heads`],
//! [`pretraining`]. See `ARCHITECTURE.md`.
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
pub mod arch;
pub mod config;
pub mod device_blob;
pub mod error;
pub mod families;
pub mod heads;
pub mod intent;
pub mod kernels;
pub mod model;
pub mod nn;
pub mod parallel;
pub mod pretraining;
pub mod quantize;
pub mod rng;
pub mod safetensors;
pub mod sparse;
pub mod tensor;
pub mod train;
pub mod vocab_prune;
pub mod weights;
pub mod wordpiece;

pub use arch::{Architecture, Family};
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
