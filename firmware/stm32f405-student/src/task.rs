//! The task blob (examples/firmware_task.rs), read in place from flash: intents and their
//! anchor embeddings, held-out questions, the training sentences and settings, and the host's
//! answers to compare with.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use bert_core::device_blob::read_sections;

/// A little-endian u32 at the start of `b`.
pub fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Little-endian f32 values.
pub fn le_f32s(b: &[u8]) -> impl Iterator<Item = f32> + '_ {
    b.chunks_exact(4).map(|w| f32::from_bits(le_u32(w)))
}

/// The task, borrowed from the blob.
pub struct Task<'a> {
    /// Intent names, in label order.
    pub names: Vec<&'a str>,
    /// One anchor embedding per intent, back to back.
    pub anchors: Vec<f32>,
    /// Held-out questions: (label, sentence).
    pub questions: Vec<(usize, &'a str)>,
    /// Per question the host's pick (u32) and cosine (f32 bits).
    pub expected_matches: &'a [u8],
    /// Labelled training sentences.
    pub train: Vec<(usize, &'a str)>,
    /// Full-batch AdamW steps, learning rate, weight decay.
    pub steps: u32,
    pub lr: f32,
    pub weight_decay: f32,
    /// The host's trained head (weight, bias), losses per step and picks per question.
    pub expected_head: &'a [u8],
}

fn labelled(text: &str) -> Result<Vec<(usize, &str)>, String> {
    text.lines()
        .map(|line| {
            let (label, sentence) = line.split_once('\t').ok_or("task: a line without label")?;
            let label = label.parse().map_err(|_| "task: a label is not a number")?;
            Ok((label, sentence))
        })
        .collect()
}

impl<'a> Task<'a> {
    /// Reads the blob.
    pub fn parse(blob: &'a [u8]) -> Result<Self, String> {
        let [names, anchors, questions, matches, train, settings, head] =
            read_sections::<7>(blob, b"BERTTASK").map_err(|e| {
                format!("{e} (build with the task blob: scripts/firmware/run_stm32f405.sh)")
            })?;
        let text = |b| core::str::from_utf8(b).map_err(|e| format!("task text: {e}"));
        if settings.len() != 12 {
            return Err("task: the training settings are not 12 bytes".into());
        }
        Ok(Task {
            names: text(names)?.lines().collect(),
            anchors: le_f32s(anchors).collect(),
            questions: labelled(text(questions)?)?,
            expected_matches: matches,
            train: labelled(text(train)?)?,
            steps: le_u32(settings),
            lr: f32::from_bits(le_u32(&settings[4..])),
            weight_decay: f32::from_bits(le_u32(&settings[8..])),
            expected_head: head,
        })
    }
}
