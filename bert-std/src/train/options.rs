//! What every fine-tuning run is told ([`TrainOptions`]) and what it reports at each step
//! ([`Step`]): one place for both, whatever the task.

/// Training settings (the seed's defaults: lr 2e-5, weight decay 0.01, 10% warm-up).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainOptions {
    /// Passes over the training set.
    pub epochs: usize,
    /// Peak learning rate.
    pub lr: f32,
    /// Examples per forward and backward pass.
    pub batch_size: usize,
    /// Batches whose gradients are averaged before each optimizer step (gradient
    /// accumulation: an effective batch of `batch_size × grad_accum`).
    pub grad_accum: usize,
    /// Longest input in tokens (longer ones are truncated).
    pub max_seq_len: usize,
    /// Seed of the head's initialization and of the shuffling.
    pub seed: u64,
    /// Share of the steps spent warming up.
    pub warmup_ratio: f32,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f32,
    /// Continue from the trainer state an interrupted run left in the output directory (if
    /// any), with the same settings and data; the result equals an uninterrupted run's.
    pub resume: bool,
    /// Training-mode dropout as config.json sets it (`hidden_dropout_prob`, ...), as HF's
    /// `model.train()`; off: every step in evaluation mode.
    pub dropout: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 3,
            lr: 2e-5,
            batch_size: 16,
            grad_accum: 1,
            max_seq_len: 128,
            seed: 42,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            resume: false,
            dropout: true,
        }
    }
}

/// One training step, for a progress display.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// 1-based step.
    pub step: usize,
    /// Steps in all.
    pub total: usize,
    /// The batch's loss.
    pub loss: f32,
    /// The learning rate used.
    pub lr: f32,
    /// Examples in the batch.
    pub examples: usize,
}
