//! Fine-tuning in Rust on the core's hand-written backward pass ([`bert_core::train`]):
//! classification data ([`data`]), the training loop ([`classify`]) and HF-directory
//! checkpoints ([`checkpoint`]). `bert train classify` is the command-line face.
//!
//! Status: sequence classification (single texts or pairs) and token classification (NER,
//! [`ner`]) on BERT-block encoders. QA and MLM + NSP training, dropout, resuming and a
//! multi-threaded backward are not done yet.

pub mod checkpoint;
pub mod classify;
pub mod data;
pub mod ner;
