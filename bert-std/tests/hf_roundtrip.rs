//! Checkpoints written by `bert train` are read by transformers as `bert` reads them. The goldens
//! (`tests/goldens/generate_roundtrip.py`) hold, for each task (classify, ner, qa, pretrain,
//! nsp), a checkpoint that `bert train` wrote from a tiny random BERT, and what transformers
//! computes from it on fixed inputs (its own class for the checkpoint's architecture). Here
//! `bert` runs the same checkpoints on the same inputs (≤ 1e-4). Then each is trained again
//! with the same command: the new checkpoint has the same tensors and config fields, and gives
//! the same outputs (within 1e-2: the last bits of a few AdamW steps may drift between kernel
//! versions, while a misnamed or misplaced tensor moves them by far more). And each goes through
//! `bert quantize` (f16, int8) and still gives transformers' f32 outputs within 1e-3 / 1e-2.
mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const TASKS: [&str; 5] = ["classify", "ner", "qa", "pretrain", "nsp"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/roundtrip")
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// One JSON value per input line `bert` printed.
fn run(args: &[&str]) -> Vec<Value> {
    let (code, out, err) = bert(args);
    assert_eq!(code, 0, "bert {args:?}: {err}");
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// (what, bert's value, transformers' value).
type Compared = Vec<(String, f32, f32)>;

/// Every output of `task` the goldens in `golden_dir` hold, compared with `bert`'s on the
/// checkpoint in `dir`, and QA's answer texts (bert's, transformers') on the side.
fn compare(task: &str, dir: &Path, golden_dir: &Path) -> (Compared, Vec<(String, String)>) {
    let cmds = json(&root().join("commands.json"));
    let golden = json(&golden_dir.join("transformers.json"));
    let want = &golden["outputs"];
    let index = |label: &str| -> usize {
        golden["id2label"]
            .as_object()
            .unwrap()
            .iter()
            .find(|(_, l)| l.as_str() == Some(label))
            .map(|(i, _)| i.parse().unwrap())
            .unwrap_or_else(|| panic!("{task}: bert answers with label {label}"))
    };
    let d = dir.to_str().unwrap();
    let (mut values, mut answers) = (Vec::new(), Vec::new());
    match task {
        "classify" => {
            for text in strs(&cmds["texts"]) {
                for item in run(&["classify", "--model", d, &text])[0]
                    .as_array()
                    .unwrap()
                {
                    let label = item["label"].as_str().unwrap();
                    let w = f(&want[&text][index(label)]);
                    values.push((format!("{text} / {label}"), f(&item["score"]), w));
                }
            }
        }
        "ner" => {
            for text in strs(&cmds["ner_texts"]) {
                let got = run(&["ner", "--model", d, "--aggregation", "none", &text]);
                let items = got[0].as_array().unwrap();
                assert!(!items.is_empty(), "ner: no entity in {text:?}");
                for item in items {
                    let (label, token) = (item["entity"].as_str().unwrap(), &item["index"]);
                    let w = f(&want[&text][token.as_u64().unwrap() as usize][index(label)]);
                    values.push((format!("{text} / {token} {label}"), f(&item["score"]), w));
                }
            }
        }
        "qa" => {
            for case in cmds["qa"].as_array().unwrap() {
                let (q, c) = (case[0].as_str().unwrap(), case[1].as_str().unwrap());
                let got = run(&["qa", "--model", d, "--question", q, "--context", c]);
                let best = &got[0][0];
                values.push((q.into(), f(&best["score"]), f(&want[q]["score"])));
                answers.push((
                    best["answer"].as_str().unwrap().to_string(),
                    want[q]["answer"].as_str().unwrap().to_string(),
                ));
            }
        }
        "mlm" => {
            for text in strs(&cmds["mlm_texts"]) {
                let got = run(&["fill-mask", "--model", d, &text]);
                for c in got[0]["masks"][0]["candidates"].as_array().unwrap() {
                    let id = c["token"].as_u64().unwrap().to_string();
                    let w = want[&text].get(&id).map_or(-1.0, f);
                    values.push((format!("{text} / {id}"), f(&c["score"]), w));
                }
            }
        }
        _ => {
            for pair in cmds["pairs"].as_array().unwrap() {
                let (a, b) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
                let got = run(&["nsp", "--model", d, a, b]);
                let w = &want[format!("{a} || {b}")];
                for k in 0..2 {
                    let g = f(&got[0]["logits"][k]);
                    values.push((format!("{a} || {b} / {k}"), g, f(&w[k])));
                }
            }
        }
    }
    assert!(!values.is_empty(), "{task}: nothing compared");
    (values, answers)
}

fn worst(values: &Compared) -> (f32, String) {
    values
        .iter()
        .map(|(what, g, w)| ((g - w).abs(), what.clone()))
        .fold((0.0, String::new()), |a, b| if b.0 > a.0 { b } else { a })
}

#[test]
fn bert_reads_the_checkpoints_it_wrote_as_transformers_does() {
    for task in TASKS {
        let (values, answers) = compare(task, &root().join(task), &root().join(task));
        let (diff, at) = worst(&values);
        eprintln!(
            "{task}: {} outputs, max abs diff {diff:.2e} ({at})",
            values.len()
        );
        assert!(diff <= 1e-4, "{task}: {diff} at {at}");
        for (got, want) in answers {
            assert_eq!(got, want, "{task}: the answer");
        }
    }
}

#[test]
fn training_again_writes_the_same_checkpoint() {
    let scratch = Scratch::new("roundtrip");
    for task in TASKS {
        let start = root().join(if task == "nsp" { "pretrain" } else { "base" });
        train_again(task, &start, &root().join(task), &scratch.join(task));
    }
}

/// `bert train TASK` from `start` with the committed command into `out`: the tensors and head
/// config fields of the `committed` checkpoint, and its outputs within 1e-2.
fn train_again(task: &str, start: &Path, committed: &Path, out: &Path) {
    let cmds = json(&root().join("commands.json"));
    let data = root().join("data");
    let mut args: Vec<String> = vec!["train".into()];
    for a in strs(&cmds["tasks"][task]) {
        let file = data.join(&a);
        args.push(if file.is_file() {
            file.to_str().unwrap().to_string()
        } else {
            a
        });
    }
    let data_file = args[3].clone();
    args.extend(strs(&cmds["common"]));
    for (k, v) in [
        ("--model", start.to_str().unwrap()),
        ("--out", out.to_str().unwrap()),
        ("--eval", &data_file),
    ] {
        args.extend([k.to_string(), v.to_string()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, err) = bert(&refs);
    assert_eq!(code, 0, "bert {args:?}: {err}");

    // The same tensors, and the config fields transformers reads for the head.
    let layout = |dir: &Path| -> Vec<(String, String, Vec<usize>)> {
        let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
        let st = bert_core::safetensors::SafeTensors::parse(&bytes).unwrap();
        let mut names: Vec<String> = st.names().map(String::from).collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let t = st.tensor(&n).unwrap();
                (n, format!("{:?}", t.dtype), t.shape.to_vec())
            })
            .collect()
    };
    assert_eq!(layout(out), layout(committed), "{task}: tensors");
    let (a, b) = (
        json(&out.join("config.json")),
        json(&committed.join("config.json")),
    );
    for key in ["architectures", "id2label", "label2id", "num_labels"] {
        assert_eq!(a[key], b[key], "{task}: config {key}");
    }
    let (values, _) = compare(task, out, committed);
    let (diff, at) = worst(&values);
    eprintln!("{task} trained again: max abs diff {diff:.2e} ({at})");
    assert!(diff <= 1e-2, "{task}: {diff} at {at}");
}

/// RoBERTa, XLM-RoBERTa, ELECTRA and DistilBERT: `bert train classify`, `ner`, `qa` and
/// `pretrain` (the masked LM alone, "mlm") from a bare base of each (the goldens' checkpoints), read back by transformers' Auto classes as
/// `bert` reads them (<= 1e-4), and the same command writes the same checkpoint again.
#[test]
fn every_family_fine_tunes_and_transformers_reads_it() {
    let cmds = json(&root().join("commands.json"));
    let families = root().join("families");
    let scratch = Scratch::new("roundtrip-families");
    for family in strs(&cmds["families"]) {
        for task in strs(&cmds["family_tasks"]) {
            let name = format!("{family}-{task}");
            let committed = families.join(&name);
            let config = json(&committed.join("config.json"));
            assert!(
                config["architectures"][0]
                    .as_str()
                    .unwrap()
                    .ends_with(match task.as_str() {
                        "classify" => "ForSequenceClassification",
                        "ner" => "ForTokenClassification",
                        "mlm" => "ForMaskedLM",
                        _ => "ForQuestionAnswering",
                    }),
                "{name}: {}",
                config["architectures"]
            );
            let (values, answers) = compare(&task, &committed, &committed);
            let (diff, at) = worst(&values);
            eprintln!(
                "{name}: {} outputs, max abs diff {diff:.2e} ({at})",
                values.len()
            );
            assert!(diff <= 1e-4, "{name}: {diff} at {at}");
            for (got, want) in answers {
                assert_eq!(got, want, "{name}: the answer");
            }
            let start = families.join(&family).join("base");
            train_again(&task, &start, &committed, &scratch.join(&name));
        }
    }
}

#[test]
fn trained_checkpoints_go_through_bert_quantize() {
    let scratch = Scratch::new("roundtrip-quantize");
    for task in TASKS {
        for dtype in ["f16", "int8"] {
            let src = root().join(task);
            let dst = scratch.join(format!("{task}-{dtype}"));
            let (code, _, err) = bert(&[
                "quantize",
                src.to_str().unwrap(),
                dst.to_str().unwrap(),
                "--dtype",
                dtype,
            ]);
            assert_eq!(code, 0, "{task} {dtype}: {err}");
            // transformers' f32 outputs, within what the precision allows (measured: f16 at
            // most 6.5e-5, int8 1.1e-3).
            let (values, _) = compare(task, &dst, &src);
            let (diff, at) = worst(&values);
            eprintln!("{task} {dtype}: max abs diff {diff:.2e} ({at})");
            let bound = if dtype == "f16" { 1e-3 } else { 1e-2 };
            assert!(diff <= bound, "{task} {dtype}: {diff} at {at}");
        }
    }
}

/// ModernBERT (pre-norm) does not train yet: `bert train` says so before it draws a head or
/// writes anything.
#[test]
fn modernbert_trains_with_the_dropouts_its_config_sets() {
    // ModernBERT's dropouts are its own keys (0 in every released config): a config that sets
    // them trains with them (different weights from evaluation mode), one that does not trains
    // as `--no-dropout` does.
    let families = root().join("families");
    let scratch = Scratch::new("roundtrip-modernbert-dropout");
    let data = root().join("data/classify.jsonl");
    let train = |name: &str, dropout: Option<f64>, extra: &[&str]| -> Vec<u8> {
        let base = scratch.join(format!("{name}-base"));
        std::fs::create_dir_all(&base).unwrap();
        for f in std::fs::read_dir(families.join("modernbert/base")).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, base.join(f.file_name().unwrap())).unwrap();
        }
        if let Some(p) = dropout {
            let mut config = json(&base.join("config.json"));
            for key in ["embedding_dropout", "attention_dropout", "mlp_dropout"] {
                config[key] = serde_json::json!(p);
            }
            std::fs::write(base.join("config.json"), config.to_string()).unwrap();
        }
        let out = scratch.join(name);
        let (b, d, o) = (
            base.to_str().unwrap(),
            data.to_str().unwrap(),
            out.to_str().unwrap(),
        );
        let mut args = vec!["train", "classify", "--model", b, "--data", d, "--out", o];
        args.extend(["--batch-size", "4", "--epochs", "1", "--seed", "3"]);
        args.extend(extra);
        let (code, _, err) = bert(&args);
        assert_eq!(code, 0, "{name}: {err}");
        std::fs::read(out.join("model.safetensors")).unwrap()
    };
    let with = train("with", Some(0.1), &[]);
    let without = train("without", Some(0.1), &["--no-dropout"]);
    let unset = train("unset", None, &[]);
    assert!(with != without, "the config's dropouts change the training");
    assert!(unset == without, "no dropout set trains as --no-dropout");
}
