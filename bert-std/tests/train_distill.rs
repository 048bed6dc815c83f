//! `bert train distill` end to end on a tiny corpus (goldens/distill, from
//! goldens/generate_distill.py): the student it wrote loads in sentence-transformers and gives
//! our embeddings (≤ 1e-5); distilling again with the same command gives the same tensors and,
//! within kernel drift, the same embeddings, with the loss falling; `bert index` and `search`
//! take the student; a run killed in the middle of an epoch resumes to the same bits.
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bert_core::SafeTensors;
use common::*;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/distill")
}

fn command() -> (Vec<String>, Vec<String>) {
    let c = golden("distill/command.json");
    let strs = |k: &str| -> Vec<String> {
        c[k].as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    (strs("args"), strs("texts"))
}

/// `bert train distill` with the golden's arguments (and `extra`) into `out`.
fn distill_args(out: &Path, extra: &[&str]) -> Vec<String> {
    let (args, _) = command();
    let mut v: Vec<String> = ["train", "distill", "--teacher"].map(String::from).to_vec();
    v.push(minilm().to_str().unwrap().to_string());
    v.push("--data".into());
    v.push(root().join("corpus.txt").to_str().unwrap().to_string());
    v.push("--out".into());
    v.push(out.to_str().unwrap().to_string());
    // `extra` pairs replace the golden's own values of the same flags.
    let mut args = args;
    for pair in extra.chunks(2) {
        match args.iter().position(|a| a == pair[0]) {
            Some(i) => args[i + 1] = pair[1].to_string(),
            None => args.extend(pair.iter().map(|s| s.to_string())),
        }
    }
    v.extend(args);
    v
}

fn run(args: &[String]) -> String {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = bert(&refs);
    assert_eq!(code, 0, "bert {args:?}: {err}");
    err
}

/// Our embeddings of the golden texts with the student in `dir`.
fn embed(dir: &Path) -> Vec<Vec<f32>> {
    let (_, texts) = command();
    let mut args = vec!["embed", "--model", dir.to_str().unwrap()];
    args.extend(texts.iter().map(String::as_str));
    let (code, out, err) = bert(&args);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["embedding"].as_array().unwrap().iter().map(f).collect()
        })
        .collect()
}

fn sentence_transformers() -> Vec<Vec<f32>> {
    golden("distill/sentence_transformers.json")["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_array().unwrap().iter().map(f).collect())
        .collect()
}

/// (name, shape) of every tensor of a safetensors file.
fn layout(path: &Path) -> Vec<(String, Vec<usize>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::parse(&bytes).unwrap();
    let mut v: Vec<_> = st
        .names()
        .map(|n| (n.to_string(), st.tensor(n).unwrap().shape.to_vec()))
        .collect();
    v.sort();
    v
}

#[test]
fn the_student_matches_sentence_transformers() {
    let ours = embed(&root().join("student"));
    let d = max_diff(&ours, &sentence_transformers());
    eprintln!("student vs sentence-transformers 3.4.1: max abs diff {d:.2e}");
    assert!(d <= 1e-5, "{d}");
    assert_eq!(
        ours[0].len(),
        384,
        "the Dense module projects to the teacher's width"
    );
}

#[test]
fn distilling_again_gives_the_golden_student() {
    let d = Scratch::new("distill-again");
    let out = d.join("student");
    let err = run(&distill_args(&out, &[]));
    // "loss A -> B": the loss falls.
    let summary = err.lines().find(|l| l.starts_with("distilled")).unwrap();
    let losses = summary.split("loss ").nth(1).unwrap();
    let mut it = losses.split(" -> ");
    let first: f32 = it.next().unwrap().trim().parse().unwrap();
    let last: f32 = it
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(last < first * 0.95, "loss {first} -> {last}: {err}");
    let golden = root().join("student");
    for file in ["model.safetensors", "2_Dense/model.safetensors"] {
        assert_eq!(
            layout(&out.join(file)),
            layout(&golden.join(file)),
            "{file}"
        );
    }
    for file in [
        "config.json",
        "modules.json",
        "1_Pooling/config.json",
        "2_Dense/config.json",
        "vocab.txt",
    ] {
        let read = |d: &Path| std::fs::read_to_string(d.join(file)).unwrap();
        assert_eq!(read(&out), read(&golden), "{file}");
    }
    assert!(!out.join(".distill").exists(), "the work folder is removed");
    assert!(!out.join("trainer_state.safetensors").exists());
    let d = max_diff(&embed(&out), &sentence_transformers());
    assert!(d <= 1e-2, "retrained student drifts by {d}");
}

#[test]
fn index_and_search_take_the_student() {
    let d = Scratch::new("distill-index");
    let student = root().join("student");
    let index = d.join("corpus.index");
    let corpus = root().join("corpus.txt");
    let (code, _, err) = bert(&[
        "index",
        "--model",
        student.to_str().unwrap(),
        corpus.to_str().unwrap(),
        "--out",
        index.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let first = std::fs::read_to_string(&corpus)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    let (code, out, err) = bert(&[
        "search",
        "--model",
        student.to_str().unwrap(),
        index.to_str().unwrap(),
        &first,
        "--top-k",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&first[..20]), "{out}");
}

#[test]
fn a_killed_distillation_resumes_to_the_same_bits() {
    let d = Scratch::new("distill-resume");
    let (a, b) = (d.join("a"), d.join("b"));
    let extra = ["--epochs", "30", "--state-every", "2"];
    run(&distill_args(&a, &extra));
    let args = distill_args(&b, &extra);
    let state = b.join("trainer_state.safetensors");
    let child = start_until_file(&args, &state);
    // Let it go on a little, so the kill lands anywhere in the run.
    std::thread::sleep(Duration::from_millis(150));
    kill_9(child);
    assert!(state.exists(), "the killed run left its state");
    let mut resumed = args.clone();
    resumed.push("--resume".into());
    let err = run(&resumed);
    assert!(err.contains("resuming from"), "{err}");
    assert!(!state.exists(), "a finished run leaves no state");
    let read = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(
        read(&a) == read(&b),
        "resumed student differs from the uninterrupted one: {err}"
    );
    let read = |dir: &Path| std::fs::read(dir.join("2_Dense/model.safetensors")).unwrap();
    assert!(read(&a) == read(&b));
}
