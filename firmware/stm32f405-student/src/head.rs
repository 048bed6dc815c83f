//! The head trained on the device: the student embeds the labelled training sentences, a
//! linear head learns the intents from them with the core's backward and AdamW
//! (`bert_core::train::linear_head`), then classifies the held-out questions. Its weights,
//! losses and picks must equal the host's bit for bit.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use bert_core::device_blob::DeviceModel;
use bert_core::intent::normalize;
use bert_core::train::linear_head::{HeadTraining, LinearHead};
use bert_core::BertModel;
use cortex_m_semihosting::hprint;

use crate::task::{le_f32s, le_u32, Task};
use crate::MAX_TOKENS;

/// The unit-length embedding of `text`.
fn unit(
    student: &DeviceModel<'_>,
    encoder: &BertModel<'_>,
    text: &str,
    arena: &mut [f32],
) -> Result<Vec<f32>, String> {
    let mut v = student
        .embed(encoder, text, MAX_TOKENS, arena)
        .map_err(|e| format!("{e}"))?
        .to_vec();
    normalize(&mut v);
    Ok(v)
}

/// Trains, classifies and compares with the host. Returns whether every bit agreed.
pub fn train_and_classify(
    student: &DeviceModel<'_>,
    encoder: &BertModel<'_>,
    task: &Task<'_>,
    arena: &mut [f32],
) -> Result<bool, String> {
    let mut features = Vec::with_capacity(task.train.len() * student.config.hidden_size);
    for (_, sentence) in &task.train {
        features.extend(unit(student, encoder, sentence, arena)?);
    }
    let labels: Vec<u32> = task.train.iter().map(|(l, _)| *l as u32).collect();
    let mut head = LinearHead::zeros(student.config.hidden_size, task.names.len());
    let mut training = HeadTraining::new(&head, task.weight_decay);
    let mut losses = Vec::with_capacity(task.steps as usize);
    for _ in 0..task.steps {
        let loss = training.step(&mut head, &features, &labels, task.lr);
        losses.push(loss.map_err(|e| format!("{e}"))?);
    }
    let mut logits = vec![0.0f32; head.classes];
    let (mut right, mut picks) = (0, Vec::with_capacity(task.questions.len()));
    for (label, sentence) in &task.questions {
        let pick = head.predict(&unit(student, encoder, sentence, arena)?, &mut logits);
        right += usize::from(pick == *label);
        picks.push(pick as u32);
    }
    let want: Vec<f32> = le_f32s(task.expected_head).collect();
    let (w, b) = (head.weight.len(), head.bias.len());
    let got = head.weight.iter().chain(&head.bias).chain(&losses);
    let same_numbers = want.len() >= w + b + losses.len()
        && got.zip(&want).all(|(g, h)| g.to_bits() == h.to_bits());
    let want_picks = task
        .expected_head
        .get(4 * (w + b + losses.len())..)
        .unwrap_or(&[]);
    let same_picks = want_picks.len() == 4 * picks.len()
        && picks
            .iter()
            .zip(want_picks.chunks_exact(4))
            .all(|(p, h)| *p == le_u32(h));
    hprint!(
        "head trained on the device: {} sentences, {} AdamW steps, loss {} -> {}; held-out \
         accuracy {}/{}; weights, losses and picks == host: {}\n",
        labels.len(),
        task.steps,
        crate::Fixed4(losses.first().copied().unwrap_or(0.0)),
        crate::Fixed4(losses.last().copied().unwrap_or(0.0)),
        right,
        task.questions.len(),
        same_numbers && same_picks
    );
    Ok(same_numbers && same_picks)
}
