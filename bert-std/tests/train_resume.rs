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
    let d = scratch("kill9");
    let data = d.join("train.jsonl");
    let words = ["great", "awful", "fine", "boring", "lovely", "dreadful"];
    let lines: String = (0..200)
        .map(|i| {
            let w = words[i % words.len()];
            let label = if i % 2 == 0 { "pos" } else { "neg" };
            format!("{{\"text\": \"a {w} film, number {i}\", \"label\": \"{label}\"}}\n")
        })
        .collect();
    std::fs::write(&data, lines).unwrap();
    let minilm = minilm();
    let (a, b) = (d.join("a"), d.join("b"));
    let (data, minilm) = (data.to_str().unwrap(), minilm.to_str().unwrap());

    // Uninterrupted.
    let (code, _, err) = bert(&train_args(data, a.to_str().unwrap(), minilm));
    assert_eq!(code, 0, "{err}");
    assert!(
        !a.join("trainer_state.safetensors").exists(),
        "a finished run leaves no state"
    );

    // Killed in epoch 2 (once epoch 1's checkpoint and state are written), then resumed.
    let state = b.join("trainer_state.safetensors");
    kill_after_first_epoch(&train_args(data, b.to_str().unwrap(), minilm), &state);
    // The epoch-1 checkpoint is whole: it loads and runs.
    let (code, _, err) = bert(&["classify", "--model", b.to_str().unwrap(), "fine"]);
    assert_eq!(code, 0, "{err}");

    let mut args = train_args(data, b.to_str().unwrap(), minilm);
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
    let mut args = train_args(data, b.to_str().unwrap(), minilm);
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
