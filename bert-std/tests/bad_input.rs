//! Bad input gets a clear error, never a panic.
mod common;

use std::fs;

use bert_std::pipelines::embeddings::SentenceEmbeddings;
use bert_std::pipelines::fill_mask::{FillMask, FillMaskOptions};
use bert_std::pipelines::qa::{QaOptions, QuestionAnswering};
use bert_std::{Bert, Error, LoadOptions, ModelDir, Pipeline, Task};
use common::*;

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("bad-{name}"))
}

fn err_text<T: std::fmt::Debug>(r: bert_std::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

#[test]
fn missing_directory_and_files() {
    let e = err_text(ModelDir::open("/definitely/not/here"));
    assert!(e.contains("not a directory"), "{e}");
    let d = scratch("empty");
    let e = err_text(ModelDir::open(&d));
    assert!(e.contains("config.json: not found"), "{e}");
    fs::copy(minilm().join("config.json"), d.join("config.json")).unwrap();
    let e = err_text(ModelDir::open(&d));
    assert!(e.contains("no model.safetensors"), "{e}");
    fs::write(d.join("pytorch_model.bin"), b"").unwrap();
    let e = err_text(ModelDir::open(&d));
    assert!(
        e.contains("pytorch_model.bin") && e.contains("safetensors"),
        "{e}"
    );
}

#[test]
fn malformed_json_and_wrong_model_type() {
    let d = scratch("json");
    fs::write(d.join("config.json"), "{\"hidden_size\": 384,").unwrap();
    let e = err_text(ModelDir::open(&d));
    assert!(
        e.contains("config.json") && e.contains("invalid JSON"),
        "{e}"
    );
    let gpt2 = r#"{"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "vocab_size": 50257}"#;
    fs::write(d.join("config.json"), gpt2).unwrap();
    let e = err_text(ModelDir::open(&d));
    assert!(e.contains("model_type") && e.contains("gpt2"), "{e}");
}

#[test]
fn truncated_weights_name_the_file() {
    let d = scratch("truncated");
    for f in ["config.json", "tokenizer.json"] {
        fs::copy(minilm().join(f), d.join(f)).unwrap();
    }
    let bytes = fs::read(minilm().join("model.safetensors")).unwrap();
    fs::write(d.join("model.safetensors"), &bytes[..bytes.len() / 3]).unwrap();
    let e = err_text(Bert::load(&d, Task::Base, LoadOptions::default()));
    assert!(e.contains("truncated"), "{e}");
}

#[test]
fn no_tokenizer_is_an_error() {
    let d = scratch("notok");
    fs::copy(minilm().join("config.json"), d.join("config.json")).unwrap();
    std::os::unix::fs::symlink(
        minilm().join("model.safetensors"),
        d.join("model.safetensors"),
    )
    .unwrap();
    let e = err_text(Bert::load(&d, Task::Base, LoadOptions::default()));
    assert!(e.contains("no tokenizer.json or vocab.txt"), "{e}");
}

#[test]
fn empty_text_no_mask_and_wrong_head() {
    let st = SentenceEmbeddings::load(minilm(), LoadOptions::default()).unwrap();
    let input_error = |r: bert_std::Result<Vec<Vec<f32>>>, at: usize| match r {
        Err(Error::Item { index, source }) => index == at && matches!(*source, Error::Input(_)),
        _ => false,
    };
    assert!(input_error(st.embed(&[""]), 0));
    assert!(
        input_error(st.embed(&["ok", "   "]), 1),
        "the bad input is named"
    );
    assert!(
        st.embed::<&str>(&[]).unwrap().is_empty(),
        "a zero-size batch is fine and empty"
    );
    let fm = FillMask::load(splade(), LoadOptions::default()).unwrap();
    let e = err_text(fm.run_one("there is no mask here", &Default::default()));
    assert!(e.contains("no [MASK]"), "{e}");
    let e = err_text(fm.run_one("a [MASK] here", &FillMaskOptions { top_k: 0 }));
    assert!(e.contains("top_k"), "{e}");
    // MiniLM has no MLM head: loading it as a masked LM names the missing tensor.
    let e = err_text(FillMask::load(minilm(), LoadOptions::default()));
    assert!(e.contains("cls.predictions"), "{e}");
}

#[test]
fn over_long_text_is_truncated_and_a_mask_past_the_limit_is_an_error() {
    let long = "word ".repeat(2000);
    let st = SentenceEmbeddings::load(minilm(), LoadOptions::default()).unwrap();
    assert_eq!(st.embed(&[&long]).unwrap()[0].len(), 384);
    let fm = FillMask::load(splade(), LoadOptions::default()).unwrap();
    let e = err_text(fm.run_one(&format!("{long} [MASK]"), &FillMaskOptions { top_k: 1 }));
    assert!(e.contains("no [MASK]") && e.contains("truncation"), "{e}");
    let out = fm
        .run_one(&format!("[MASK] {long}"), &FillMaskOptions { top_k: 1 })
        .unwrap();
    assert_eq!(out.masks.len(), 1);
}

#[test]
fn qa_bad_options_and_empty_inputs() {
    let qa = QuestionAnswering::load(seeded_dir("qa"), LoadOptions::default()).unwrap();
    let o = QaOptions::default();
    let bad_input = |r: bert_std::Result<_>| matches!(r.map_err(|e: Error| e.without_index().to_string()), Err(m) if !m.is_empty());
    assert!(bad_input(qa.run_one(("", "context"), &o)));
    assert!(bad_input(qa.run_one(("q?", " "), &o)));
    let bad = QaOptions {
        doc_stride: Some(400),
        max_seq_len: Some(384),
        ..o
    };
    let e = err_text(qa.run_one(("q?", "context"), &bad));
    assert!(
        e.contains("doc_stride (400) must be smaller than max_seq_len (384)"),
        "{e}"
    );
    let too_long = QaOptions {
        max_seq_len: Some(100_000),
        ..o
    };
    let e = err_text(qa.run_one(("q?", "context"), &too_long));
    assert!(e.contains("max_seq_len = 100000 is over the limit"), "{e}");
    let huge_question = "why ".repeat(500);
    let e = err_text(qa.run_one((&huge_question, "short context"), &o));
    assert!(e.contains("question"), "{e}");
}

#[test]
#[cfg(not(feature = "hub"))]
fn hub_ids_without_the_hub_feature_say_how_to_get_it() {
    let e = err_text(bert_std::runtime::model_path(std::path::Path::new(
        "hf:bert-base-uncased",
    )));
    assert!(e.contains("without the `hub` feature"), "{e}");
}
