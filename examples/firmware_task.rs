//! Packs the task of the STM32F405 student firmware (firmware/stm32f405-student) with the
//! host's answers, computed by the same core code the device runs (the device blob read in
//! place, the low-RAM forward, `bert_core::intent`, `bert_core::train::linear_head`), so the
//! device must give the same bits:
//! - intent matching: each intent's anchor embedding, and the nearest anchor and its cosine
//!   for every held-out question;
//! - a head trained on the device: the labelled training sentences, the training settings, and
//!   the head's weights, losses and held-out predictions after those steps.
//!
//!     cargo run --example firmware_task -- STUDENT.bin INTENTS.tsv OUT.bin
//!
//! Sections (container `BERTTASK`, `bert_core::device_blob::write_sections`): 0 intent names
//! (lines); 1 anchor embeddings (f32 LE, a row per intent); 2 held-out questions (lines:
//! intent index, tab, sentence); 3 per question the pick (u32) and cosine (f32 bits); 4 training
//! sentences (lines as 2); 5 steps (u32), learning rate and weight decay (f32); 6 the trained
//! head's weight and bias (f32), its loss at every step (f32), and its pick per question (u32).

use bert_core::device_blob::{write_sections, DeviceModel};
use bert_core::intent::{nearest, normalize};
use bert_core::model::low_ram::LowRamPlan;
use bert_core::train::linear_head::{HeadTraining, LinearHead};

/// Tokens the firmware embeds at most (its RAM budget is for this many).
const MAX_TOKENS: usize = 64;
/// The head's training: full-batch AdamW steps from zero weights.
const STEPS: u32 = 80;
const LR: f32 = 0.05;
const WEIGHT_DECAY: f32 = 0.01;

fn fail(msg: String) -> ! {
    eprintln!("firmware_task: {msg}");
    std::process::exit(1);
}

/// `intent<TAB>split<TAB>sentence` rows, comments and blank lines skipped.
fn rows(path: &str) -> Vec<[String; 3]> {
    let tsv = std::fs::read_to_string(path).unwrap_or_else(|e| fail(format!("{path}: {e}")));
    tsv.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| match l.split('\t').collect::<Vec<_>>()[..] {
            [a, b, c] => [a.to_string(), b.to_string(), c.to_string()],
            _ => fail(format!("{path}: not intent<TAB>split<TAB>sentence: {l:?}")),
        })
        .collect()
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [student, intents, out] = args.as_slice() else {
        fail("usage: firmware_task STUDENT.bin INTENTS.tsv OUT.bin".into());
    };
    let blob = std::fs::read(student).unwrap_or_else(|e| fail(format!("{student}: {e}")));
    let model = DeviceModel::parse(&blob).unwrap_or_else(|e| fail(format!("{student}: {e}")));
    let encoder = model.encoder().unwrap_or_else(|e| fail(e.to_string()));
    let mut arena = vec![0.0f32; LowRamPlan::of(&model.config, MAX_TOKENS).arena_len()];
    let mut embed = |text: &str| -> Vec<f32> {
        let mean = model.embed(&encoder, text, MAX_TOKENS, &mut arena);
        mean.unwrap_or_else(|e| fail(format!("{text:?}: {e}")))
            .to_vec()
    };
    let rows = rows(intents);
    let names: Vec<&str> = rows
        .iter()
        .filter(|r| r[1] == "anchor")
        .map(|r| r[0].as_str())
        .collect();
    let label = |name: &str| {
        names
            .iter()
            .position(|n| *n == name)
            .unwrap_or_else(|| fail(format!("{name}: no anchor")))
    };
    let split = |which: &str| -> Vec<(usize, &str)> {
        rows.iter()
            .filter(|r| r[1] == which)
            .map(|r| (label(&r[0]), r[2].as_str()))
            .collect()
    };
    let anchors: Vec<f32> = split("anchor").iter().flat_map(|(_, s)| embed(s)).collect();
    let (tests, train) = (split("test"), split("train"));
    if train.len() > 64 {
        fail(format!(
            "{} training sentences: the device trains on at most 64",
            train.len()
        ));
    }

    // Intent matching.
    let (mut expected, mut right) = (Vec::new(), 0);
    for (label, sentence) in &tests {
        let (pick, cos) =
            nearest(&anchors, &embed(sentence)).unwrap_or_else(|| fail("no intents".into()));
        right += usize::from(pick == *label);
        expected.extend((pick as u32).to_le_bytes());
        expected.extend(cos.to_bits().to_le_bytes());
    }
    eprintln!(
        "host: {} intents; nearest anchor: {right}/{} held-out questions right ({:.1}%)",
        names.len(),
        tests.len(),
        100.0 * right as f64 / tests.len() as f64
    );

    // The head, trained on normalized embeddings of the training sentences.
    let unit = |text: &str, embed: &mut dyn FnMut(&str) -> Vec<f32>| {
        let mut v = embed(text);
        normalize(&mut v);
        v
    };
    let features: Vec<f32> = train
        .iter()
        .flat_map(|(_, s)| unit(s, &mut embed))
        .collect();
    let labels: Vec<u32> = train.iter().map(|(l, _)| *l as u32).collect();
    let mut head = LinearHead::zeros(model.config.hidden_size, names.len());
    let mut training = HeadTraining::new(&head, WEIGHT_DECAY);
    let losses: Vec<f32> = (0..STEPS)
        .map(|_| {
            training
                .step(&mut head, &features, &labels, LR)
                .unwrap_or_else(|e| fail(e.to_string()))
        })
        .collect();
    let mut logits = vec![0.0; names.len()];
    let picks: Vec<u32> = tests
        .iter()
        .map(|(_, s)| head.predict(&unit(s, &mut embed), &mut logits) as u32)
        .collect();
    let head_right = picks
        .iter()
        .zip(&tests)
        .filter(|(p, (l, _))| **p as usize == *l)
        .count();
    eprintln!(
        "host: head trained on {} sentences, {STEPS} steps (loss {:.3} -> {:.3}): {head_right}/{} held-out questions right ({:.1}%)",
        train.len(),
        losses[0],
        losses[losses.len() - 1],
        tests.len(),
        100.0 * head_right as f64 / tests.len() as f64
    );

    let lines = |v: &[(usize, &str)]| {
        v.iter()
            .map(|(l, s)| format!("{l}\t{s}\n"))
            .collect::<String>()
    };
    let settings: Vec<u8> = [
        STEPS.to_le_bytes(),
        LR.to_bits().to_le_bytes(),
        WEIGHT_DECAY.to_bits().to_le_bytes(),
    ]
    .concat();
    let mut trained = f32s(&head.weight);
    trained.extend(f32s(&head.bias));
    trained.extend(f32s(&losses));
    trained.extend(picks.iter().flat_map(|p| p.to_le_bytes()));
    let names = names.join("\n");
    let task = write_sections(
        b"BERTTASK",
        &[
            names.as_bytes(),
            &f32s(&anchors),
            lines(&tests).as_bytes(),
            &expected,
            lines(&train).as_bytes(),
            &settings,
            &trained,
        ],
    );
    std::fs::write(out, &task).unwrap_or_else(|e| fail(format!("{out}: {e}")));
    eprintln!("wrote {out}: {} bytes", task.len());
}
