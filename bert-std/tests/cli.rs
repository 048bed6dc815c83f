//! The `bert` command: results, one-line errors, exit codes, JSONL partial results.
mod common;

use common::*;

/// A file holding `content` in a scratch folder of its own (removed when the folder drops).
fn tmp(name: &str, content: &[u8]) -> (Scratch, String) {
    let dir = Scratch::new(name);
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    (dir, p.to_string_lossy().into_owned())
}

#[test]
fn fill_mask_and_embed_from_arguments() {
    let splade = splade();
    let (code, out, _) = bert(&[
        "fill-mask",
        "--model",
        splade.to_str().unwrap(),
        "--top-k",
        "2",
        "Paris is the [MASK] of France.",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["masks"][0]["candidates"].as_array().unwrap().len(), 2);
    let minilm = minilm();
    let (code, out, _) = bert(&["embed", "--model", minilm.to_str().unwrap(), "hello world"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["embedding"].as_array().unwrap().len(), 384);
}

#[test]
fn jsonl_keeps_good_lines_and_names_bad_ones() {
    let (_dir, input) = tmp(
        "in.jsonl",
        b"{\"text\": \"a [MASK] b\"}\n{\"text\": \"no mask\"}\n\xff\xfe\n{not json\n\n{\"text\": \"the [MASK] is red\"}\n",
    );
    let splade = splade();
    let (code, out, err) = bert(&[
        "fill-mask",
        "--model",
        splade.to_str().unwrap(),
        "--top-k",
        "1",
        "--input",
        &input,
    ]);
    assert_eq!(code, 1, "a failed line makes the exit code 1");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines
            .iter()
            .map(|l| l["line"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 6]
    );
    assert!(err.contains(":2: no [MASK] token in \"no mask\""), "{err}");
    assert!(err.contains(":3: invalid UTF-8"), "{err}");
    assert!(err.contains(":4: invalid JSON"), "{err}");
    let summary = err.lines().last().unwrap();
    assert!(
        summary.starts_with("fill-mask: 2 of 5 inputs written, 3 failed, 1 blank line(s) skipped;"),
        "{summary}"
    );
    assert_eq!(
        err.lines().count(),
        4,
        "one line per error, then the summary: {err}"
    );
}

#[test]
fn clear_one_line_errors_and_nonzero_exit() {
    let missing = bert(&["embed", "--model", "/no/such/dir", "x"]);
    assert_eq!(missing.0, 1);
    assert_eq!(
        missing.2.trim(),
        "error: /no/such/dir: not a directory (expected a HF model directory)"
    );
    let half = bert(&["qa", "--question", "q"]);
    assert_eq!(half.0, 2);
    assert!(half.2.contains("--context"), "{}", half.2);
    // No --model, and the project's own QA model not trained in this (empty) model cache.
    let empty = Scratch::new("cli-empty-cache");
    let no_model = std::process::Command::new(env!("CARGO_BIN_EXE_bert"))
        .args(["qa", "--question", "q", "--context", "c"])
        .env("BERT_MODELS_DIR", empty.path())
        .env_remove("BERT_MODEL")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&no_model.stderr);
    assert_eq!(no_model.status.code(), Some(1), "{err}");
    assert!(
        err.contains("minilm-qa") && err.contains("--yes") && err.contains("--model DIR"),
        "{err}"
    );
    let no_input = bert(&["embed"]);
    assert_eq!(no_input.0, 1);
    assert!(no_input.2.contains("no input"), "{}", no_input.2);
    let no_file = bert(&["embed", "--input", "/no/such/file.jsonl"]);
    assert_eq!(no_file.0, 1);
    assert!(
        no_file.2.starts_with("error: /no/such/file.jsonl:"),
        "{}",
        no_file.2
    );
    let dir = Scratch::new("gpt2");
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type": "gpt2", "n_embd": 768}"#,
    )
    .unwrap();
    let gpt2 = bert(&["info", "--model", dir.to_str().unwrap()]);
    assert_eq!(gpt2.0, 1);
    assert!(
        gpt2.2.contains("model_type = \"gpt2\" is not supported"),
        "{}",
        gpt2.2
    );
    assert_eq!(gpt2.2.lines().count(), 1);
}

#[test]
fn giant_line_is_processed_truncated() {
    let text = "word ".repeat(200_000);
    let (_dir, input) = tmp(
        "giant.jsonl",
        format!("{{\"text\": \"{text}\"}}\n").as_bytes(),
    );
    let minilm = minilm();
    let (code, out, err) = bert(&[
        "embed",
        "--model",
        minilm.to_str().unwrap(),
        "--input",
        &input,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1);
}
