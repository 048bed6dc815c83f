//! Fine-tuning in Rust on the core's hand-written backward pass ([`bert_core::train`]):
//! classification data ([`data`]), QA data ([`qa_data`]), the tasks ([`classify`], [`ner`],
//! [`qa`], [`pretrain`]) on one shared epoch loop (shuffle, step, clip, schedule, checkpoint) and
//! HF-directory checkpoints ([`checkpoint`]). `bert train classify|ner|qa|pretrain` is
//! the command-line face.
//!
//! Status: sequence classification (single texts or pairs), token classification (NER),
//! extractive QA and MLM + NSP pre-training on BERT-block encoders, on threads, resumable after
//! a kill at any moment (the last finished epoch is redone from its state). Dropout is not done
//! yet.

pub mod checkpoint;
pub mod classify;
mod corpus;
pub mod data;
pub mod distill;
mod epochs;
mod fine_tune;
mod init;
pub mod masked_lm;
pub mod ner;
pub mod nsp;
pub mod options;
pub mod pretrain;
pub mod qa;
pub mod qa_data;
pub mod qa_example;
pub mod squad;
pub mod state;

pub use options::{Step, TrainOptions};
