//! `bert info --budget --max-tokens N`: what a model directory needs to run one sequence of up
//! to N tokens, as it is today: the bytes stored (weights as stored, the vocabulary), the RAM
//! of one forward's workspace (the task head's buffers included), and the weight copies the
//! runtime packs for the kernels by default, which an in-place (memory-mapped, or flash) run
//! does without; and beside them the one arena of the core's low-RAM mode
//! ([`bert_core::model::low_ram`]: weights in place, row blocks, the pooled vector only).
//! Measured from the loaded model, not estimated; the arena is what
//! [`LowRamPlan::arena_bytes`] gives, which the low-RAM forward checks it is handed.

use std::fmt;
use std::fs;
use std::path::Path;

use bert_core::arch::Block;
use bert_core::model::low_ram::LowRamPlan;
use bert_core::quantize::QuantDtype;

use crate::error::{Error, Result};
use crate::loaded::{LoadedModel, Task};
use crate::model_dir::ModelDir;

/// What one sequence of up to `max_tokens` tokens needs (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The sequence length it is for.
    pub max_tokens: usize,
    /// The weight files, as stored (int8, f16 or f32).
    pub weights_stored: u64,
    /// `vocab.txt` if there is one, else `tokenizer.json`.
    pub vocabulary: u64,
    /// A sentence-transformers `Dense` module's weights after the pooling, if any.
    pub dense: u64,
    /// Every buffer of one forward of one sequence (a [`bert_core::Workspace`]).
    pub workspace: usize,
    /// The encoder's weights as packed for the kernels (the runtime's default; `prepack`).
    pub packed: usize,
    /// The low-RAM mode's arena for the encoder and the mean pooling (`None`: a pre-norm
    /// encoder, which that mode does not run).
    pub low_ram: Option<usize>,
    /// The flash a device blob takes (`bert export-device`: config, compiled vocabulary, int8
    /// weights; `None`: not a WordPiece model with a vocab.txt).
    pub device_blob: Option<usize>,
}

impl Budget {
    /// Load the model in `dir` (memory-mapped) and [`measure`](Self::measure) it.
    pub fn of_dir(dir: &Path, max_tokens: usize) -> Result<Budget> {
        let dir = ModelDir::open(dir)?;
        let mut loaded = LoadedModel::load(&dir, Task::of_config(&dir.config)?, true)?;
        Self::measure(&dir, &mut loaded, max_tokens)
    }

    /// What one sequence of up to `max_tokens` tokens of `loaded` (the model of `dir`, as
    /// loaded: not packed yet) needs; packs `loaded`'s weights to count them. An error if
    /// `max_tokens` is 0 or past the model's positions.
    pub fn measure(dir: &ModelDir, loaded: &mut LoadedModel, max_tokens: usize) -> Result<Budget> {
        let longest = dir.config.max_sequence_length();
        if !(1..=longest).contains(&max_tokens) {
            return Err(Error::Input(format!(
                "--max-tokens must be between 1 and {longest} (this model's positions), not \
                 {max_tokens}"
            )));
        }
        let workspace = loaded
            .model()
            .workspace(1, max_tokens, 0)
            .map_err(|e| Error::Input(e.to_string()))?
            .size_in_bytes();
        let weights_stored = dir
            .weight_files
            .iter()
            .map(|p| {
                fs::metadata(p)
                    .map(|m| m.len())
                    .map_err(|e| Error::io(p, e))
            })
            .sum::<Result<u64>>()?;
        let vocabulary = ["vocab.txt", "tokenizer.json"]
            .iter()
            .map(|n| dir.root.join(n))
            .find(|p| p.is_file())
            .map_or(Ok(0), |p| {
                fs::metadata(&p)
                    .map(|m| m.len())
                    .map_err(|e| Error::io(&p, e))
            })?;
        let dense_path = dir.root.join("2_Dense/model.safetensors");
        let dense = match fs::metadata(&dense_path) {
            Ok(m) if !dir.pooling.dense.is_empty() => m.len(),
            _ => 0,
        };
        let low_ram = matches!(dir.config.arch.block, Block::PostNorm)
            .then(|| LowRamPlan::of(&dir.config, max_tokens).arena_bytes());
        let device_blob = crate::device_export::device_blob(&dir.root, Some(QuantDtype::Int8))
            .ok()
            .map(|(_, report)| report.total);
        loaded.prepack();
        let packed = loaded.model().bert().packed_bytes();
        Ok(Budget {
            max_tokens,
            weights_stored,
            vocabulary,
            dense,
            workspace,
            packed,
            low_ram,
            device_blob,
        })
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kb = |b: f64| b / 1024.0;
        writeln!(
            f,
            "budget for one sequence of up to {} tokens:",
            self.max_tokens
        )?;
        writeln!(
            f,
            "  stored (flash): weights {:.1} KB, vocabulary {:.1} KB, total {:.1} KB",
            kb(self.weights_stored as f64),
            kb(self.vocabulary as f64),
            kb((self.weights_stored + self.vocabulary) as f64)
        )?;
        if self.dense > 0 {
            writeln!(
                f,
                "  and a Dense module after the pooling: {:.1} KB",
                kb(self.dense as f64)
            )?;
        }
        writeln!(
            f,
            "  RAM, weights read in place: workspace {:.1} KB",
            kb(self.workspace as f64)
        )?;
        writeln!(
            f,
            "  RAM, the runtime's default (weights packed for the kernels): {:.1} KB more",
            kb(self.packed as f64)
        )?;
        match self.low_ram {
            Some(bytes) => writeln!(
                f,
                "  RAM, low-RAM mode (one arena, weights in place, the mean-pooled vector only): \
                 {:.1} KB",
                kb(bytes as f64)
            )?,
            None => writeln!(f, "  low-RAM mode: not for pre-norm encoders")?,
        }
        match self.device_blob {
            Some(bytes) => write!(
                f,
                "  flash on a microcontroller (bert export-device: config, compiled vocabulary, \
                 int8 weights): {:.1} KB",
                kb(bytes as f64)
            ),
            None => write!(
                f,
                "  no device blob: the device tokenizer needs a vocab.txt"
            ),
        }
    }
}
