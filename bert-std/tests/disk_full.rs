//! `bert quantize`, `bert index` and `bert train` writing to a full or a read-only file system:
//! a clear one-line error, the earlier output left as it was (every file, byte for byte), and
//! a rerun after space is freed completes (`bert index` resumes from what it had embedded).
//!
//! Real file systems, not mocks: the scenario runs in a child process (this test binary again)
//! in a mount namespace of its own (`unshare --mount`, as a mapped root user where the test is
//! not root), where a small tmpfs is mounted, filled, and remounted read-only. Nothing leaks
//! out of the namespace, whatever happens.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const MOUNT_ENV: &str = "BERT_DISK_TEST_MOUNT";

#[test]
fn full_and_read_only_destinations_keep_earlier_outputs_and_reruns_complete() {
    let scratch = Scratch::new("disk-full");
    let mount = scratch.join("small-fs");
    std::fs::create_dir_all(&mount).unwrap();
    let mut cmd = Command::new("unshare");
    let root = std::env::var("USER").is_ok_and(|u| u == "root")
        || Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        cmd.args(["--user", "--map-root-user"]);
    }
    let out = cmd
        .arg("--mount")
        .arg(std::env::current_exe().unwrap())
        .args([
            "scenario_in_a_mount_namespace",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(MOUNT_ENV, &mount)
        .env("BERT_MODELS_DIR", models_root())
        .output()
        .expect("unshare (util-linux) runs the scenario in a mount namespace");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{log}");
    assert!(log.contains("1 passed"), "the scenario ran: {log}");
}

/// Run `bert args`: (exit code, stderr).
fn run(args: &[&str]) -> (i32, String) {
    let (code, _, err) = bert(args);
    (code, err)
}

/// Every file under `dir`, with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

/// The one `error:` line of a failed run, which names the cause.
fn one_line_error(code: i32, err: &str, cause: &str) {
    assert_ne!(code, 0, "{err}");
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains(cause), "{err}");
}

/// Fill the file system at `dir` until only about `leave` bytes are free (files of 4 KiB, the
/// page size tmpfs counts in).
fn fill(dir: &Path, leave: usize) {
    let filler = dir.join("filler");
    std::fs::create_dir_all(&filler).unwrap();
    let page = vec![7u8; 4096];
    let mut n = 0;
    while std::fs::write(filler.join(n.to_string()), &page).is_ok() {
        n += 1;
    }
    // The last write failed part-way (or its file is empty): free enough pages.
    for i in (0..=n).rev().take(leave.div_ceil(4096) + 1) {
        let _ = std::fs::remove_file(filler.join(i.to_string()));
    }
}

fn free_all(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join("filler"));
}

fn sh(args: &[&str]) {
    let status = Command::new(args[0]).args(&args[1..]).status().unwrap();
    assert!(status.success(), "{args:?}");
}

#[test]
#[ignore = "run by full_and_read_only_destinations_keep_earlier_outputs_and_reruns_complete"]
fn scenario_in_a_mount_namespace() {
    let mount = PathBuf::from(std::env::var_os(MOUNT_ENV).expect("run by the parent test"));
    let m = mount.to_str().unwrap();
    sh(&["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", m]);
    let goldens = repo_root().join("bert-std/tests/goldens/roundtrip");
    let base = goldens.join("base");
    let base = base.to_str().unwrap();

    // Earlier outputs, written while there is room.
    let quant = mount.join("quantized");
    let index = mount.join("docs.index");
    let trained = mount.join("trained");
    let (q, i, t) = (
        quant.to_str().unwrap(),
        index.to_str().unwrap(),
        trained.to_str().unwrap(),
    );
    let corpus = scratch_corpus(&mount);
    let docs = goldens.join("data/docs.txt");
    let data = goldens.join("data/classify.jsonl");
    let train = |data: &Path| -> (i32, String) {
        run(&[
            "train",
            "classify",
            "--model",
            base,
            "--data",
            data.to_str().unwrap(),
            "--out",
            t,
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--max-seq-len",
            "32",
        ])
    };
    assert_eq!(run(&["quantize", "--dtype", "int8", base, q]).0, 0);
    assert_eq!(
        run(&["index", "--model", base, "--out", i, docs.to_str().unwrap()]).0,
        0
    );
    assert_eq!(train(&data).0, 0);
    let earlier = (
        snapshot(&quant),
        std::fs::read(&index).unwrap(),
        snapshot(&trained),
    );

    // Other data with other labels, so that a mixed checkpoint would show.
    let relabelled = mount.join("relabelled.jsonl");
    let lines = std::fs::read_to_string(&data)
        .unwrap()
        .replace("\"pos\"", "\"good\"")
        .replace("\"neg\"", "\"bad\"");
    std::fs::write(&relabelled, lines).unwrap();

    // A full disk: each command fails with one clear line, and leaves the earlier output.
    // Room for the small files of each output but not its weights (or not the whole index), so
    // that a writer replacing files one by one would leave a mixed directory.
    fill(&mount, 24 << 10);
    let full = "No space left on device";
    let (code, err) = run(&["quantize", "--dtype", "f16", base, q]);
    one_line_error(code, &err, full);
    let (code, err) = run(&["index", "--model", base, "--out", i, &corpus]);
    one_line_error(code, &err, full);
    let (code, err) = train(&relabelled);
    one_line_error(code, &err, full);
    assert!(
        snapshot(&quant) == earlier.0,
        "quantize kept the earlier output"
    );
    assert!(
        std::fs::read(&index).unwrap() == earlier.1,
        "index kept the earlier output"
    );
    assert!(
        snapshot(&trained) == earlier.2,
        "train kept the earlier checkpoint"
    );

    // Read-only: the same, with the file system's own error.
    free_all(&mount);
    sh(&["mount", "-o", "remount,ro", m]);
    let ro = "Read-only file system";
    let (code, err) = run(&["quantize", "--dtype", "f16", base, q]);
    one_line_error(code, &err, ro);
    let (code, err) = run(&["index", "--model", base, "--out", i, &corpus]);
    one_line_error(code, &err, ro);
    let (code, err) = train(&relabelled);
    one_line_error(code, &err, ro);
    assert!(snapshot(&quant) == earlier.0);
    assert!(std::fs::read(&index).unwrap() == earlier.1);
    assert!(snapshot(&trained) == earlier.2);

    // Space again: every rerun completes.
    sh(&["mount", "-o", "remount,rw", m]);
    let (code, err) = run(&["quantize", "--dtype", "f16", base, q]);
    assert_eq!(code, 0, "{err}");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(quant.join("config.json")).unwrap()).unwrap();
    assert!(config.is_object());
    let (code, err) = run(&["index", "--model", base, "--out", i, &corpus]);
    assert_eq!(code, 0, "{err}");
    // It resumed: the passages embedded before the disk filled were not embedded again.
    let now: usize = err
        .split("passages (")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!(err.contains("index: 300 passages") && now < 300, "{err}");
    let (code, err) = train(&relabelled);
    assert_eq!(code, 0, "{err}");
    let config = std::fs::read_to_string(trained.join("config.json")).unwrap();
    assert!(
        config.contains("\"good\""),
        "the new checkpoint is whole: {config}"
    );
    let (code, err) = run(&["classify", "--model", t, "a fine film"]);
    assert_eq!(code, 0, "{err}");
    let leftovers: Vec<_> = snapshot(&mount)
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| p.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    sh(&["umount", m]);
}

/// A corpus big enough that its index does not fit in a few kilobytes: 300 passages.
fn scratch_corpus(mount: &Path) -> String {
    let dir = mount.parent().unwrap().join("corpus.txt");
    let text: String = (0..300)
        .map(|i| format!("Passage number {i} is about the weather and the sea.\n\n"))
        .collect();
    std::fs::write(&dir, text).unwrap();
    dir.to_str().unwrap().to_string()
}
