//! Pre-training, as the seed and `BertForPreTraining` define it: the masked-LM loss (the
//! prediction head's transform, then the decoder tied to the word embeddings, cross-entropy at
//! the masked positions only, `-100` elsewhere) plus, with an NSP head, the next-sentence loss
//! on the pooled `[CLS]`; backward by hand. Only the masked rows go through the decoder: the
//! others carry no loss, so their gradient is zero and the result equals HF's full-vocabulary
//! computation.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::encoder::{
    check_trainable, encoder_backward, encoder_forward, encoder_grads, encoder_slots, push_linear,
    push_norm, weight,
};
use super::ops::{activation_backward, layer_norm_save};
use super::pooled::{check_pooler, pooled_backward, pooled_forward, PooledSlots};
use super::slots::{Counter, Pair};
use super::threads;
use super::workspace::TrainWorkspace;
use super::Grads;
use crate::error::{Error, Result};
use crate::heads::{BertForMaskedLM, BertForPreTraining, BertLMPredictionHead};
use crate::kernels::{self, GemmNeeds, MatRef};
use crate::model::ThreadScratch;
use crate::model::{Batch, BertModel};
use crate::nn::Linear;
use crate::parallel::Parallel;
use crate::pretraining::{PreTrainingLoss, IGNORE_INDEX};
use crate::tensor::{Matrix, Storage};

/// Training for [`BertForMaskedLM`] (MLM) and [`BertForPreTraining`] (MLM + NSP).
#[derive(Debug)]
pub struct PreTrainer<'m, 'a> {
    bert: &'m BertModel<'a>,
    predictions: &'m BertLMPredictionHead<'a>,
    seq_relationship: Option<&'m Linear<'a>>,
}

/// Buffers of a pre-training step: the encoder's, and the masked rows' through the head.
#[derive(Debug)]
pub struct PreTrainWorkspace {
    encoder: TrainWorkspace,
    max_masked: usize,
    rows: Vec<usize>,
    targets: Vec<usize>,
    mx: Vec<f32>,
    u: Vec<f32>,
    y: Vec<f32>,
    xhat: Vec<f32>,
    rstd: Vec<f32>,
    logits: Vec<f32>,
    dy: Vec<f32>,
    dmx: Vec<f32>,
    /// One per thread, for the decoder's products (depth up to the vocabulary).
    lanes: Vec<ThreadScratch>,
    needs: GemmNeeds,
}

impl PreTrainWorkspace {
    /// Training-mode dropout in the encoder (see [`TrainWorkspace::set_dropout`]); the
    /// pre-training heads have none, as in HF.
    pub fn set_dropout(&mut self, dropout: Option<super::dropout::Dropout>) {
        self.encoder.set_dropout(dropout);
    }

    /// Run the step's products on `threads` threads (see [`TrainWorkspace::set_threads`]).
    pub fn set_threads(&mut self, threads: usize, parallel: &'static dyn Parallel) {
        self.encoder.set_threads(threads, parallel);
        let threads = threads.clamp(1, 256);
        self.lanes.truncate(threads);
        while self.lanes.len() < threads {
            self.lanes.push(ThreadScratch::for_training(self.needs, 0));
        }
    }
}

fn matrix<'s>(m: &'s Matrix<'_>) -> Result<&'s [f32]> {
    match &m.storage {
        Storage::F32(v) => Ok(v),
        other => Err(Error::Unsupported {
            field: "dtype",
            value: format!("{}", other.dtype()),
            supported: "F32 weights for training",
        }),
    }
}

impl<'m, 'a> PreTrainer<'m, 'a> {
    fn checked(
        bert: &'m BertModel<'a>,
        predictions: &'m BertLMPredictionHead<'a>,
        seq_relationship: Option<&'m Linear<'a>>,
    ) -> Result<Self> {
        check_trainable(bert)?;
        if seq_relationship.is_some() {
            check_pooler(bert)?;
        }
        let t = &predictions.transform;
        if activation_backward(t.transform_act_fn).is_none()
            || t.layer_norm.weight.len() != t.dense.out_features()
        {
            return Err(Error::Unsupported {
                field: "model_type",
                value: format!("{:?}", bert.config.arch.family),
                supported: "training runs a masked-LM head of dense, GELU or ReLU, norm",
            });
        }
        Ok(PreTrainer {
            bert,
            predictions,
            seq_relationship,
        })
    }

    /// A masked-LM trainer.
    pub fn masked_lm(model: &'m BertForMaskedLM<'a>) -> Result<Self> {
        Self::checked(&model.bert, &model.predictions, None)
    }

    /// An MLM + NSP trainer.
    pub fn pretraining(model: &'m BertForPreTraining<'a>) -> Result<Self> {
        Self::checked(
            &model.bert,
            &model.predictions,
            Some(&model.seq_relationship),
        )
    }

    /// The prediction head's width: the hidden width, or the embedding width the decoder
    /// reads (ELECTRA's generator projects down to it).
    fn width(&self) -> usize {
        self.predictions.transform.dense.out_features()
    }

    /// Index of the first head gradient after the encoder's.
    fn head_base(&self) -> usize {
        encoder_slots(self.bert)
    }

    /// The masked-LM head's gradient slots (after the pooler's, with NSP), in the order
    /// [`grads`](Self::grads) pushes them, and the next free slot (NSP's output layer).
    fn mlm_slots(&self) -> (MlmSlots, usize) {
        let nsp = if self.seq_relationship.is_some() {
            2
        } else {
            0
        };
        let mut c = Counter(self.head_base() + nsp);
        let t = &self.predictions.transform;
        let style = &self.bert.config.arch.heads;
        let slots = MlmSlots {
            dense: c.take(t.dense.bias.is_some()),
            norm: c.take(style.norm_bias),
            bias: style.decoder_bias.then(|| c.take(false).weight),
            decoder: self
                .predictions
                .decoder
                .as_ref()
                .map(|_| c.take(false).weight),
        };
        (slots, c.0)
    }

    /// The gradient buffers, named as PyTorch names them: the encoder's, the pooler's (NSP),
    /// the prediction head's transform and bias, the decoder's when it is not tied to the word
    /// embeddings, and `cls.seq_relationship` (NSP).
    pub fn grads(&self) -> Grads {
        let c = &self.bert.config;
        let f = crate::families::names(c.arch.family);
        let n = &f.masked_lm;
        let (h, e) = (c.hidden_size, self.width());
        let mut g = Grads::default();
        encoder_grads(self.bert, &mut g);
        if self.seq_relationship.is_some() {
            g.push(format!("{}pooler.dense.weight", f.prefix), &[h, h]);
            g.push(format!("{}pooler.dense.bias", f.prefix), &[h]);
        }
        let t = &self.predictions.transform;
        push_linear(&mut g, n.dense, &t.dense, t.dense.bias.is_some());
        push_norm(&mut g, n.norm, e, c.arch.heads.norm_bias);
        if c.arch.heads.decoder_bias {
            g.push(String::from(n.bias[0]), &[c.vocab_size]);
        }
        if self.predictions.decoder.is_some() {
            g.push(format!("{}.weight", n.decoder), &[c.vocab_size, e]);
        }
        if self.seq_relationship.is_some() {
            g.push(String::from("cls.seq_relationship.weight"), &[2, h]);
            g.push(String::from("cls.seq_relationship.bias"), &[2]);
        }
        g
    }

    /// Buffers for up to `max_batch` sequences of up to `max_seq` tokens, at most `max_masked`
    /// of them masked per step.
    pub fn workspace(
        &self,
        max_batch: usize,
        max_seq: usize,
        max_masked: usize,
    ) -> Result<PreTrainWorkspace> {
        let c = &self.bert.config;
        let (h, v) = (c.hidden_size.max(self.width()), c.vocab_size);
        let max_masked = max_masked.min(max_batch.saturating_mul(max_seq));
        if max_masked.saturating_mul(v) > crate::model::MAX_BUFFER_ELEMENTS {
            return Err(Error::ResourceLimit {
                what: format!("{max_masked} masked tokens x {v} vocabulary logits"),
                limit: crate::model::MAX_BUFFER_ELEMENTS,
            });
        }
        let needs = GemmNeeds {
            rows: max_masked,
            depth: v.max(h).max(max_masked),
            int8: false,
        };
        Ok(PreTrainWorkspace {
            encoder: TrainWorkspace::new(self.bert, 2, max_batch, max_seq)?,
            max_masked,
            rows: vec![0; max_masked],
            targets: vec![0; max_masked],
            mx: vec![0.0; max_masked * h],
            u: vec![0.0; max_masked * h],
            y: vec![0.0; max_masked * h],
            xhat: vec![0.0; max_masked * h],
            rstd: vec![0.0; max_masked],
            logits: vec![0.0; max_masked * v],
            dy: vec![0.0; max_masked * h],
            dmx: vec![0.0; max_masked * h],
            lanes: vec![ThreadScratch::for_training(needs, 0)],
            needs,
        })
    }

    /// The loss of `batch` (`mlm_labels` `[batch · seq]`: the original id at masked positions,
    /// `-100` elsewhere; `nsp_labels` `[batch]`, 0 = B follows A, with an NSP head) and every
    /// parameter's gradient, added to `grads`. `nsp` is 0 without an NSP head.
    pub fn loss_and_grads(
        &self,
        batch: &Batch<'_>,
        mlm_labels: &[i64],
        nsp_labels: Option<&[i64]>,
        ws: &mut PreTrainWorkspace,
        grads: &mut Grads,
    ) -> Result<PreTrainingLoss> {
        self.run(batch, mlm_labels, nsp_labels, ws, Some(grads))
    }

    /// The loss alone (the forward; no gradient), e.g. on held-out data.
    pub fn loss(
        &self,
        batch: &Batch<'_>,
        mlm_labels: &[i64],
        nsp_labels: Option<&[i64]>,
        ws: &mut PreTrainWorkspace,
    ) -> Result<PreTrainingLoss> {
        self.run(batch, mlm_labels, nsp_labels, ws, None)
    }

    fn run(
        &self,
        batch: &Batch<'_>,
        mlm_labels: &[i64],
        nsp_labels: Option<&[i64]>,
        ws: &mut PreTrainWorkspace,
        grads: Option<&mut Grads>,
    ) -> Result<PreTrainingLoss> {
        let c = &self.bert.config;
        batch.validate(c)?;
        let (h, v) = (c.hidden_size, c.vocab_size);
        let bsz = batch.batch_size;
        let enc = &mut ws.encoder;
        if bsz > enc.max_batch || batch.seq_len > enc.max_seq {
            return Err(Error::WorkspaceTooSmall {
                needed: (bsz, batch.seq_len),
                capacity: (enc.max_batch, enc.max_seq),
            });
        }
        if mlm_labels.len() != bsz * batch.seq_len {
            return Err(Error::LengthMismatch {
                what: "MLM labels",
                len: mlm_labels.len(),
                expected: bsz * batch.seq_len,
            });
        }
        let nsp = match (self.seq_relationship, nsp_labels) {
            (Some(head), Some(labels)) => Some((head, labels)),
            (None, None) => None,
            _ => {
                return Err(Error::InvalidInput(String::from(
                    "NSP labels go with an NSP head (BertForPreTraining), and only with one",
                )))
            }
        };
        let t = encoder_forward(self.bert, batch, enc)?;
        // The masked rows, their targets, and a check that no label sits on padding.
        let mut m = 0;
        for r in 0..t {
            let label = mlm_labels[enc.packed[r] as usize];
            if label == IGNORE_INDEX {
                continue;
            }
            let target = usize::try_from(label)
                .ok()
                .filter(|&l| l < v)
                .ok_or(Error::LabelOutOfRange { label, classes: v })?;
            if m == ws.max_masked {
                return Err(Error::ResourceLimit {
                    what: format!("more than {} masked tokens in one step", ws.max_masked),
                    limit: ws.max_masked,
                });
            }
            ws.rows[m] = r;
            ws.targets[m] = target;
            m += 1;
        }
        let padding = |i: usize| batch.attention_mask.is_some_and(|mask| mask[i] == 0);
        if let Some(i) =
            (0..mlm_labels.len()).find(|&i| padding(i) && mlm_labels[i] != IGNORE_INDEX)
        {
            return Err(Error::InvalidInput(format!(
                "MLM label at padding position {i} (use -100 there)"
            )));
        }
        if m == 0 {
            return Err(Error::InvalidInput(String::from(
                "no masked token in the batch: the MLM loss would be NaN",
            )));
        }
        let mlm = self.mlm_forward(m, ws)?;
        let enc = &mut ws.encoder;
        let nsp_loss = match nsp {
            Some((head, labels)) => pooled_forward(self.bert, head, labels, bsz, false, enc)?,
            None => 0.0,
        };
        let loss = PreTrainingLoss {
            total: mlm + nsp_loss,
            mlm,
            nsp: nsp_loss,
        };
        let Some(grads) = grads else {
            return Ok(loss);
        };
        // Backward: the heads into dx, then the encoder.
        enc.dx[..t * h].fill(0.0);
        self.mlm_backward(m, ws, grads)?;
        let enc = &mut ws.encoder;
        if let Some((head, labels)) = nsp {
            let (p, sr) = (self.head_base(), self.mlm_slots().1);
            let slots = PooledSlots::separate(p, sr);
            pooled_backward(self.bert, head, labels, bsz, false, &slots, enc, grads)?;
        }
        encoder_backward(self.bert, batch, enc, grads)?;
        Ok(loss)
    }

    /// The decoder's weight: its own, or the word embeddings it is tied to.
    fn decoder(&self) -> Result<&[f32]> {
        matrix(
            self.predictions
                .decoder
                .as_ref()
                .unwrap_or(&self.bert.embeddings.word_embeddings.weight),
        )
    }

    /// Transform and decode the `m` (≥ 1) masked rows; the mean cross-entropy. Leaves `(softmax − onehot) / m` in `ws.logits`.
    fn mlm_forward(&self, m: usize, ws: &mut PreTrainWorkspace) -> Result<f32> {
        let c = &self.bert.config;
        let (h, e, v) = (c.hidden_size, self.width(), c.vocab_size);
        let tr = &self.predictions.transform;
        for (k, &r) in ws.rows[..m].iter().enumerate() {
            ws.mx[k * h..(k + 1) * h].copy_from_slice(&ws.encoder.x[r * h..(r + 1) * h]);
        }
        let par = ws.encoder.par;
        threads::linear_forward(par, &tr.dense, &ws.mx, m, &mut ws.u, &mut ws.encoder.lanes);
        ws.y[..m * e].copy_from_slice(&ws.u[..m * e]);
        kernels::activate_in_place(tr.transform_act_fn, &mut ws.y[..m * e]);
        let n = &tr.layer_norm;
        layer_norm_save(
            &mut ws.y[..m * e],
            &n.weight,
            &n.bias,
            n.eps,
            &mut ws.xhat[..m * e],
            &mut ws.rstd[..m],
        );
        threads::matmul_rows(
            par,
            &mut ws.logits,
            &ws.y,
            MatRef::dense(self.decoder()?, v, e).t(),
            m,
            false,
            &mut ws.lanes,
        );
        let bias = &self.predictions.bias;
        let mut total = 0.0f64;
        for (row, &target) in ws.logits[..m * v].chunks_exact_mut(v).zip(&ws.targets) {
            row.iter_mut().zip(bias.iter()).for_each(|(x, b)| *x += b);
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = row.iter().map(|&x| libm::exp(x as f64 - max)).sum();
            total += max + libm::log(sum) - row[target] as f64;
            for (j, x) in row.iter_mut().enumerate() {
                let p = libm::exp(*x as f64 - max) / sum;
                let y = if j == target { 1.0 } else { 0.0 };
                *x = ((p - y) / m as f64) as f32;
            }
        }
        Ok((total / m as f64) as f32)
    }

    /// The backward of [`mlm_forward`](Self::mlm_forward) into the head's gradients, the
    /// decoder's (or the word embeddings') and the masked rows of `dx`.
    fn mlm_backward(&self, m: usize, ws: &mut PreTrainWorkspace, grads: &mut Grads) -> Result<()> {
        let c = &self.bert.config;
        let (h, e, v) = (c.hidden_size, self.width(), c.vocab_size);
        let (slots, _) = self.mlm_slots();
        let dlogits = &ws.logits[..m * v];
        if let Some(bias) = slots.bias {
            for row in dlogits.chunks_exact(v) {
                let g = grads.slot(bias);
                g.iter_mut().zip(row).for_each(|(b, g)| *b += g);
            }
        }
        // The decoder: dE += dlogitsᵀ y (into the word embeddings when tied); dy = dlogits E.
        let decoder_slot = slots.decoder.unwrap_or(0);
        let par = ws.encoder.par;
        threads::weight_grad(
            par,
            grads.slot(decoder_slot),
            dlogits,
            (0, v, v),
            &ws.y,
            m,
            e,
            &mut ws.lanes,
        );
        threads::matmul_rows(
            par,
            &mut ws.dy,
            dlogits,
            MatRef::dense(self.decoder()?, v, e),
            m,
            false,
            &mut ws.lanes,
        );
        let tr = &self.predictions.transform;
        {
            let (gw, gb) = slots.norm.of(grads);
            threads::layer_norm_backward(
                par,
                1,
                (&ws.dy[..m * e], &ws.xhat[..m * e], &ws.rstd[..m]),
                &tr.layer_norm.weight,
                &mut ws.dmx[..m * e],
                false,
                gw,
                gb,
            );
        }
        // dmx now holds d(act(u)); through the activation into dy (reused as du).
        let act = activation_backward(tr.transform_act_fn).ok_or_else(|| Error::Unsupported {
            field: "hidden_act",
            value: format!("{:?}", tr.transform_act_fn),
            supported: "gelu, gelu_new or relu in the masked-LM head",
        })?;
        ws.dy[..m * e].copy_from_slice(&ws.dmx[..m * e]);
        act(&mut ws.dy[..m * e], &ws.u[..m * e]);
        let (gw, gb) = slots.dense.of(grads);
        threads::linear_backward(
            par,
            &ws.mx,
            weight(&tr.dense)?,
            &ws.dy,
            (m, h, e),
            Some((&mut ws.dmx, false)),
            gw,
            gb,
            &mut ws.encoder.lanes,
        );
        for (k, &r) in ws.rows[..m].iter().enumerate() {
            ws.encoder.dx[r * h..(r + 1) * h]
                .iter_mut()
                .zip(&ws.dmx[k * h..(k + 1) * h])
                .for_each(|(d, g)| *d += g);
        }
        Ok(())
    }
}

/// Gradient slots of the masked-LM head: the transform's dense layer and norm, the output bias
/// (where the head has one), the decoder (when not tied to the word embeddings).
struct MlmSlots {
    dense: Pair,
    norm: Pair,
    bias: Option<usize>,
    decoder: Option<usize>,
}
