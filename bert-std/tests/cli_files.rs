//! The `bert` command never loses a user's data: the output file is replaced only by a run that
//! ends well; sizes are bounded; non-finite weights are reported; errors stay short.
mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn bert_cmd(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bert"));
    c.args(args)
        .env("BERT_MODELS_DIR", models_root())
        .env_remove("BERT_MODEL");
    c
}

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("cli-{name}"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_failed_run_leaves_the_output_file_as_it_was() {
    let d = scratch("keep");
    let prev = d.join("prev.jsonl");
    let input = d.join("in.jsonl");
    std::fs::write(&prev, "precious\n").unwrap();
    std::fs::write(&input, "{\"text\": \"a [MASK] b\"}\n").unwrap();
    let splade = splade();
    // No such model, corrupt model, missing input: the output file is untouched.
    let corrupt = d.join("corrupt");
    std::fs::create_dir_all(&corrupt).unwrap();
    for f in ["config.json", "tokenizer.json", "vocab.txt"] {
        if splade.join(f).exists() {
            std::fs::copy(splade.join(f), corrupt.join(f)).unwrap();
        }
    }
    std::fs::write(
        corrupt.join("model.safetensors"),
        b"\x08\x00\x00\x00\x00\x00\x00\x00{}",
    )
    .unwrap();
    for model in ["/nonexistent", s(&corrupt)] {
        let (code, _, err) = bert(&[
            "fill-mask",
            "--model",
            model,
            "--input",
            s(&input),
            "--output",
            s(&prev),
        ]);
        assert_eq!(code, 1, "{err}");
        assert_eq!(
            std::fs::read_to_string(&prev).unwrap(),
            "precious\n",
            "{err}"
        );
    }
    let (code, _, err) = bert(&[
        "fill-mask",
        "--model",
        s(&splade),
        "--input",
        s(&d.join("missing.jsonl")),
        "--output",
        s(&prev),
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(std::fs::read_to_string(&prev).unwrap(), "precious\n");
    // --output equal to --input is refused; the input stays.
    let (code, _, err) = bert(&[
        "fill-mask",
        "--model",
        s(&splade),
        "--input",
        s(&input),
        "--output",
        s(&input),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("is the --input file"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&input).unwrap(),
        "{\"text\": \"a [MASK] b\"}\n"
    );
    // A good run replaces the file; no temporary is left beside it.
    let (code, _, err) = bert(&[
        "fill-mask",
        "--model",
        s(&splade),
        "--input",
        s(&input),
        "--output",
        s(&prev),
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&prev).unwrap().trim()).unwrap();
    assert_eq!(v["line"], 1);
    assert!(
        err.contains(&format!("1 of 1 input written to {}", prev.display())),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&d).unwrap().count(),
        3,
        "prev, in, corrupt/: no temporary left"
    );
}

/// A run stopped by Ctrl-C (exit 130, says so) or killed outright keeps the old output.
#[test]
fn interrupted_or_killed_runs_keep_the_old_output() {
    let d = scratch("kill");
    let input = d.join("in.jsonl");
    let lines: String = (0..20_000)
        .map(|i| format!("{{\"text\": \"sentence number {i} about nothing\"}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let minilm = minilm();
    for signal in ["-INT", "-KILL"] {
        let out = d.join(format!("out{signal}.jsonl"));
        std::fs::write(&out, "old\n").unwrap();
        let child = bert_cmd(&[
            "embed",
            "--model",
            s(&minilm),
            "--input",
            s(&input),
            "--output",
            s(&out),
            "--batch-size",
            "4",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        let sent = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let res = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "old\n",
            "{signal}: {err}"
        );
        if signal == "-INT" {
            assert_eq!(res.status.code(), Some(130), "{err}");
            assert!(err.contains("interrupted"), "{err}");
            assert!(err.contains("left as it was"), "{err}");
        }
    }
}

#[test]
fn sizes_are_bounded_with_clear_errors() {
    let (code, _, err) = bert(&["embed", "--threads", "100000", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("threads = 100000 is over the limit"), "{err}");
    let (code, _, err) = bert(&["embed", "--batch-size", "1000000", "x"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("batch size = 1000000 is over the limit of 4096"),
        "{err}"
    );
}

#[test]
fn error_lines_quote_little_and_name_the_line() {
    let d = scratch("quote");
    let input = d.join("in.jsonl");
    let long = "word ".repeat(10_000);
    std::fs::write(&input, format!("{{\"text\": \"{long}\"}}\n")).unwrap();
    let splade = splade();
    let (code, _, err) = bert(&["fill-mask", "--model", s(&splade), "--input", s(&input)]);
    assert_eq!(code, 1);
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with(&format!("error: {}:1: no [MASK]", input.display())),
        "{first}"
    );
    assert!(first.len() < 300, "{} characters", first.len());
    assert!(first.contains("(50000 characters)"), "{first}");
}

#[test]
fn stdin_input_table_format_and_rounded_floats() {
    let minilm = minilm();
    let mut child = bert_cmd(&["embed", "--model", s(&minilm), "--input", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"text\": \"from stdin\"}\n")
        .unwrap();
    let res = child.wait_with_output().unwrap();
    assert_eq!(res.status.code(), Some(0));
    let out = String::from_utf8(res.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["result"]["embedding"].as_array().unwrap().len(), 384);
    // f32 values printed as f32 (shortest round trip: at most 9 significant digits), not with
    // f64's 17.
    let raw = out.split("\"embedding\":[").nth(1).unwrap();
    for number in raw.trim_end_matches([']', '}', '\n']).split(',') {
        let mantissa = number.split('e').next().unwrap();
        let digits = mantissa
            .trim_start_matches(['-', '0', '.'])
            .replace('.', "");
        assert!(digits.len() <= 9, "{number}");
    }
    let splade = splade();
    let (code, out, _) = bert(&[
        "fill-mask",
        "--model",
        s(&splade),
        "--format",
        "table",
        "--top-k",
        "2",
        "a [MASK] b",
    ]);
    assert_eq!(code, 0);
    assert!(out.starts_with("[MASK] #1"), "{out}");
    assert_eq!(out.lines().count(), 3, "{out}");
}

/// A copy of SPLADE-tiny with one weight set to NaN.
fn nan_model(d: &Path) -> PathBuf {
    let splade = splade();
    let dir = d.join("nan-model");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&splade).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    let mut bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    let (name, entry) = header
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, v)| k.contains("output.LayerNorm") && v["dtype"] == "F32")
        .unwrap();
    let start = 8 + header_len + entry["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[start..start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
    eprintln!("NaN written into {name}");
    dir
}

#[test]
fn non_finite_weights_are_reported_not_printed_as_null() {
    let d = scratch("nan");
    let dir = nan_model(&d);
    let (code, out, err) = bert(&[
        "fill-mask",
        "--model",
        s(&dir),
        "Paris is the [MASK] of France.",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(!out.contains("null"), "{out}");
    assert!(
        err.contains("non-finite values (NaN or infinity) in its logits"),
        "{err}"
    );
    let (code, _, err) = bert(&["info", "--check", "--model", s(&dir)]);
    assert_eq!(code, 1);
    assert!(err.contains("holds 1 non-finite values"), "{err}");
    let (code, _, err) = bert(&["fill-mask", "--check", "--model", s(&dir), "a [MASK]"]);
    assert_eq!(code, 1);
    assert!(err.contains("non-finite values"), "{err}");
    let (code, out, _) = bert(&["info", "--check", "--model", s(&splade())]);
    assert_eq!(code, 0);
    assert!(out.contains("are finite"), "{out}");
}

#[test]
fn index_and_search_a_users_documents() {
    let d = scratch("index");
    let corpus = d.join("docs");
    std::fs::create_dir_all(&corpus).unwrap();
    std::fs::write(
        corpus.join("a.txt"),
        "The Eiffel Tower is in Paris.\n\nPhotosynthesis turns light into chemical energy.\n",
    )
    .unwrap();
    std::fs::write(
        corpus.join("b.jsonl"),
        "{\"id\": \"rust\", \"text\": \"Rust is a systems programming language.\"}\n{\"text\": \"Cats sleep most of the day.\"}\n",
    )
    .unwrap();
    let index = d.join("docs.index");
    let minilm = minilm();
    let (code, _, err) = bert(&[
        "index",
        s(&corpus),
        "--out",
        s(&index),
        "--model",
        s(&minilm),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("index: 4 passages"), "{err}");
    assert!(!d.join("docs.index.partial").exists());
    for approx in [false, true] {
        let mut args = vec![
            "search",
            s(&index),
            "which language is for systems?",
            "where is the tower?",
            "--format",
            "json",
            "--top-k",
            "2",
        ];
        if approx {
            args.push("--approximate");
        }
        let (code, out, err) = bert(&args);
        assert_eq!(code, 0, "{err}");
        let results: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(results[0]["hits"][0]["id"], "rust", "{out}");
        assert!(
            results[1]["hits"][0]["text"]
                .as_str()
                .unwrap()
                .contains("Eiffel"),
            "{out}"
        );
        assert_eq!(results[0]["hits"].as_array().unwrap().len(), 2);
    }
}

#[test]
fn weights_converted_at_load_stay_close() {
    let minilm = minilm();
    let text = "A converted model gives nearly the same embedding.";
    let vector = |dtype: &str| -> Vec<f64> {
        let (code, out, err) = bert(&["embed", "--model", s(&minilm), "--dtype", dtype, text]);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let full = vector("f32");
    for dtype in ["f16", "int8"] {
        let other = vector(dtype);
        let dot: f64 = full.iter().zip(&other).map(|(a, b)| a * b).sum();
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let cos = dot / (norm(&full) * norm(&other));
        eprintln!("{dtype}: cosine {cos:.5}");
        assert!(cos > 0.995, "{dtype}: {cos}");
        assert!(full != other, "{dtype} changed nothing");
    }
}

#[test]
fn train_classify_names_bad_lines_and_writes_a_loadable_model() {
    let d = scratch("train");
    let data = d.join("train.jsonl");
    std::fs::write(
        &data,
        "{\"text\": \"great fun\", \"label\": \"pos\"}\n{\"text\": \"awful\", \"label\": \"neg\"}\nnot json\n{\"text\": \"no label\"}\n{\"text\": \"loved it\", \"label\": \"pos\"}\n{\"text\": \"boring\", \"label\": \"neg\"}\n",
    )
    .unwrap();
    let out = d.join("model");
    let minilm = minilm();
    let (code, _, err) = bert(&[
        "train",
        "classify",
        "--model",
        s(&minilm),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--max-seq-len",
        "16",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(":3: invalid JSON"), "{err}");
    assert!(err.contains(":4: needs \"text\" and \"label\""), "{err}");
    assert!(err.contains("2 lines skipped"), "{err}");
    assert!(err.contains("held-out accuracy"), "{err}");
    let (code, outp, err) = bert(&["classify", "--model", s(&out), "fun"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        outp.contains("\"label\":\"neg\"") && outp.contains("\"label\":\"pos\""),
        "{outp}"
    );
    std::fs::write(&data, "garbage\n").unwrap();
    let (code, _, err) = bert(&["train", "classify", "--data", s(&data), "--out", s(&out)]);
    assert_eq!(code, 1);
    assert!(err.contains("no usable example"), "{err}");
}

#[test]
fn train_ner_on_conll_writes_a_model_that_bert_ner_runs() {
    let d = scratch("ner");
    let data = d.join("train.conll");
    let sent = "-DOCSTART- -X- -X- O\n\nAngela NNP B-NP B-PER\nMerkel NNP I-NP I-PER\nvisited VBD B-VP O\nParis NNP B-NP B-LOC\n. . O O\n\n";
    std::fs::write(&data, sent.repeat(5)).unwrap();
    let out = d.join("model");
    let minilm = minilm();
    let (code, _, err) = bert(&[
        "train",
        "ner",
        "--model",
        s(&minilm),
        "--data",
        s(&data),
        "--out",
        s(&out),
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--max-seq-len",
        "16",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("training on 4 sentences, evaluating on 1"),
        "{err}"
    );
    assert!(err.contains("held-out entity F1"), "{err}");
    let (code, outp, err) = bert(&[
        "ner",
        "--model",
        s(&out),
        "--aggregation",
        "none",
        "Angela visited Paris.",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(outp.starts_with('['), "{outp}");
    std::fs::write(&data, "only-one-column\n").unwrap();
    let (code, _, err) = bert(&["train", "ner", "--data", s(&data), "--out", s(&out)]);
    assert_eq!(code, 1);
    assert!(err.contains("expected `word ... TAG`"), "{err}");
}

#[test]
fn train_nsp_on_plain_text_writes_a_model_that_bert_nsp_runs() {
    let d = scratch("nsp");
    let data = d.join("stories.txt");
    let doc = |name: &str| {
        format!(
            "{name} woke early. {name} walked to the harbour. The boats were already out. \
             {name} waited for the ferry.\n\n"
        )
    };
    std::fs::write(
        &data,
        doc("Anna") + &doc("Boris") + &doc("Clara") + &doc("Dmitri"),
    )
    .unwrap();
    let out = d.join("model");
    let minilm = minilm();
    let (code, _, err) = bert(&[
        "train",
        "nsp",
        "--model",
        s(&minilm),
        "--data",
        s(&data),
        "--eval",
        s(&data),
        "--out",
        s(&out),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--max-seq-len",
        "32",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("held-out NSP accuracy"), "{err}");
    assert!(err.contains("(new head)"), "{err}");
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(config.contains("BertForNextSentencePrediction"), "{config}");
    let (code, outp, err) = bert(&[
        "nsp",
        "--model",
        s(&out),
        "Anna woke early.",
        "Anna walked to the harbour.",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(outp.contains("is_next"), "{outp}");
    // A masked LM has no pooler: it gets a new one, as HF gives it one. Without --eval, 20% of
    // four documents is one: too few for pairs across documents, and the error says so.
    let splade = splade();
    let from_mlm = d.join("from-mlm");
    let mut args = vec![
        "train",
        "nsp",
        "--model",
        s(&splade),
        "--data",
        s(&data),
        "--out",
        s(&from_mlm),
        "--epochs",
        "1",
        "--max-seq-len",
        "32",
    ];
    let (code, _, err) = bert(&args);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the held-out documents cannot make NSP pairs"),
        "{err}"
    );
    args.extend(["--eval", s(&data)]);
    let (code, _, err) = bert(&args);
    assert_eq!(code, 0, "{err}");
    std::fs::write(&data, "One lonely document. With two sentences.\n").unwrap();
    let (code, _, err) = bert(&["train", "nsp", "--data", s(&data), "--out", s(&out)]);
    assert_eq!(code, 1);
    assert!(err.contains("need at least 2 documents"), "{err}");
}

#[test]
fn train_names_held_out_labels_the_training_data_lacks() {
    let d = scratch("unseen");
    let (data, eval) = (d.join("train.jsonl"), d.join("eval.jsonl"));
    std::fs::write(
        &data,
        "{\"text\": \"great fun\", \"label\": \"pos\"}\n{\"text\": \"awful\", \"label\": \"neg\"}\n",
    )
    .unwrap();
    std::fs::write(
        &eval,
        "{\"text\": \"meh\", \"label\": \"neutral\"}\n{\"text\": \"so so\", \"label\": \"neutral\"}\n{\"text\": \"fun\", \"label\": \"pos\"}\n",
    )
    .unwrap();
    let minilm = minilm();
    let out = d.join("model");
    let (code, _, err) = bert(&[
        "train",
        "classify",
        "--model",
        s(&minilm),
        "--data",
        s(&data),
        "--eval",
        s(&eval),
        "--out",
        s(&out),
        "--epochs",
        "1",
        "--max-seq-len",
        "16",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("held-out label \"neutral\" (2 examples) never occurs in the training data"),
        "{err}"
    );
    assert!(!err.contains("\"pos\" ("), "{err}");
}
