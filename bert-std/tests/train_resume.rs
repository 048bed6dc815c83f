//! `bert train --resume` after a `kill -9` in the middle of an epoch gives the same model, byte
//! for byte, as a run that was never interrupted; the checkpoint left by the killed run is whole.
mod common;

use std::path::Path;

use common::*;

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("resume-{name}"))
}

fn train_args<'a>(data: &'a str, out: &'a str, model: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "classify",
        "--model",
        model,
        "--data",
        data,
        "--out",
        out,
        "--epochs",
        "3",
        "--batch-size",
        "4",
        "--max-seq-len",
        "16",
        "--lr",
        "1e-4",
    ]
}

#[test]
fn resume_after_kill_9_gives_the_uninterrupted_weights() {
    let minilm = minilm();
    resumes_exactly("kill9", minilm.to_str().unwrap(), 200);
}

/// The same for the pre-norm block: ModernBERT (the tiny base of the round-trip goldens), with
/// enough examples that the run is still in its second epoch when it is killed.
#[test]
fn resume_after_kill_9_gives_the_uninterrupted_weights_for_modernbert() {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/goldens/roundtrip/families/modernbert/base");
    resumes_exactly("kill9-modernbert", base.to_str().unwrap(), 3000);
}

/// Train `model` on `examples` labelled lines uninterrupted, and again killed in its second
/// epoch and resumed: the same weights, byte for byte; the killed run's checkpoint whole; a
/// state from other settings refused.
fn resumes_exactly(name: &str, model: &str, examples: usize) {
    let d = scratch(name);
    let data = d.join("train.jsonl");
    let words = ["great", "awful", "fine", "boring", "lovely", "dreadful"];
    let lines: String = (0..examples)
        .map(|i| {
            let w = words[i % words.len()];
            let label = if i % 2 == 0 { "pos" } else { "neg" };
            format!("{{\"text\": \"a {w} film, number {i}\", \"label\": \"{label}\"}}\n")
        })
        .collect();
    std::fs::write(&data, lines).unwrap();
    let (a, b) = (d.join("a"), d.join("b"));
    let data = data.to_str().unwrap();

    // Uninterrupted.
    let (code, _, err) = bert(&train_args(data, a.to_str().unwrap(), model));
    assert_eq!(code, 0, "{err}");
    assert!(
        !a.join("trainer_state.safetensors").exists(),
        "a finished run leaves no state"
    );

    // Killed in epoch 2 (once epoch 1's checkpoint and state are written), then resumed.
    let state = b.join("trainer_state.safetensors");
    kill_after_first_epoch(&train_args(data, b.to_str().unwrap(), model), &state);
    // The epoch-1 checkpoint is whole: it loads and runs.
    let (code, _, err) = bert(&["classify", "--model", b.to_str().unwrap(), "fine"]);
    assert_eq!(code, 0, "{err}");

    let mut args = train_args(data, b.to_str().unwrap(), model);
    args.push("--resume");
    let (code, _, err) = bert(&args);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("resuming from"), "{err}");
    let read = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(
        read(&a) == read(&b),
        "resumed weights differ from the uninterrupted run's"
    );
    assert!(!state.exists());

    // A state from other settings is refused, not silently mixed in.
    let mut args = train_args(data, b.to_str().unwrap(), model);
    let lr = args.len() - 1;
    args[lr] = "2e-4";
    kill_after_first_epoch(&args, &state);
    args[lr] = "1e-4";
    args.push("--resume");
    let (code, _, err) = bert(&args);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("from another run (lr"), "{err}");
}

/// Start `bert args`, wait for the trainer state, then `kill -9` the run.
fn kill_after_first_epoch(args: &[&str], state: &Path) {
    kill_9(start_until_file(args, state));
}
