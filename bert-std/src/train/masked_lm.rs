//! Continued masked-LM pre-training for the families without an NSP head (RoBERTa, XLM-RoBERTa,
//! ELECTRA's generator, DistilBERT): the same sentence pairs and fresh dynamic masks as
//! [`pretrain`](super::pretrain) (the pairs' NSP labels unused), the MLM loss alone through
//! the core's [`PreTrainer::masked_lm`], the family's own head (drawn as transformers draws
//! it where the base lacks it), written as the family's `*ForMaskedLM` directory, which the
//! fill-mask pipeline and transformers load.

use std::path::{Path, PathBuf};

use bert_core::rng::Rng;
use bert_core::train::pretrain::{PreTrainWorkspace, PreTrainer};
use bert_core::train::Grads;
use bert_core::{BertConfig, BertForMaskedLM, Weights};

use super::fine_tune::{fine_tune, Batch, FineTune, HeadInit};
use super::options::{Step, TrainOptions};
use super::pretrain::{Corpus, MaskedPairs};
use crate::batching::RayonJoin;
use crate::error::Result;
use crate::tokenizer::Tokenizer;

/// What a masked-LM run gives.
#[derive(Debug, Clone)]
pub struct MaskedLmReport {
    /// Every step's MLM loss.
    pub losses: Vec<f32>,
    /// Training pairs.
    pub pairs: usize,
    /// Held-out pairs.
    pub eval_pairs: usize,
    /// Held-out MLM loss (same masks) before and after training.
    pub eval_mlm: (f32, f32),
    /// Where the model was written.
    pub out: PathBuf,
}

/// Continue `base`'s masked-LM pre-training on `train`, score the held-out MLM loss on
/// `eval`, write the model to `out`.
pub fn pretrain_masked_lm(
    base: &Path,
    (train, eval): (&Corpus, &Corpus),
    o: &TrainOptions,
    mlm_probability: f64,
    out: &Path,
    mut progress: impl FnMut(&Step) + Send,
) -> Result<MaskedLmReport> {
    let mut task = MaskedLm {
        data: MaskedPairs::new((train, eval), o, mlm_probability)?,
        eval_mlm: (0.0, 0.0),
    };
    let losses = fine_tune(&mut task, base, o, out, &mut progress)?;
    Ok(MaskedLmReport {
        losses,
        pairs: task.data.items.len(),
        eval_pairs: task.data.held.len(),
        eval_mlm: task.eval_mlm,
        out: out.to_path_buf(),
    })
}

/// The masked LM on the shared loop.
struct MaskedLm<'d> {
    data: MaskedPairs<'d>,
    eval_mlm: (f32, f32),
}

impl MaskedLm<'_> {
    /// Held-out MLM loss on fixed masks.
    fn eval_mlm(&self, model: &BertForMaskedLM<'_>, ws: &mut PreTrainWorkspace) -> Result<f32> {
        let trainer = PreTrainer::masked_lm(model)?;
        self.data
            .eval_mlm(|padded, y, _| Ok(trainer.loss(&padded.core_batch(), y, None, ws)?.mlm))
    }
}

impl FineTune for MaskedLm<'_> {
    type Model<'w> = BertForMaskedLM<'w>;
    type Workspace = PreTrainWorkspace;
    const HEAD: &'static str = "MaskedLM";

    fn labels(&self) -> Vec<String> {
        vec!["LABEL_0".to_string(), "LABEL_1".to_string()]
    }

    fn new_heads(
        &mut self,
        base: &Weights<'_>,
        init: &HeadInit<'_>,
        rng: &mut Rng,
    ) -> Result<Vec<Vec<u8>>> {
        Ok(vec![init.masked_lm_head(rng, base)?])
    }

    /// The decoder stays tied to the word embeddings (as trained) unless the base says it is
    /// not (then the base brings its own decoder, which is trained and written).
    fn config(&self, raw: &mut serde_json::Map<String, serde_json::Value>) {
        if raw.get("tie_word_embeddings") != Some(&serde_json::json!(false)) {
            raw.insert("tie_word_embeddings".into(), serde_json::json!(true));
        }
    }

    fn load<'w>(config: &BertConfig, weights: &Weights<'w>) -> Result<Self::Model<'w>> {
        Ok(BertForMaskedLM::load(config, weights)?)
    }

    fn prepare(&mut self, tok: &Tokenizer, config: &BertConfig, o: &TrainOptions) -> Result<usize> {
        self.data.prepare(tok, config, o)
    }

    fn trainer(
        &self,
        model: &Self::Model<'_>,
        o: &TrainOptions,
    ) -> Result<(Grads, PreTrainWorkspace)> {
        let trainer = PreTrainer::masked_lm(model)?;
        let mut ws = trainer.workspace(o.batch_size, o.max_seq_len, self.data.max_masked)?;
        ws.set_threads(rayon::current_num_threads(), &RayonJoin);
        Ok((trainer.grads(), ws))
    }

    fn before(&mut self, model: &Self::Model<'_>, ws: &mut PreTrainWorkspace) -> Result<()> {
        self.eval_mlm.0 = self.eval_mlm(model, ws)?;
        Ok(())
    }

    fn step(
        &mut self,
        model: &Self::Model<'_>,
        ws: &mut PreTrainWorkspace,
        batch: Batch<'_>,
        grads: &mut Grads,
    ) -> Result<f32> {
        let (padded, y, _) = self.data.step_batch(&batch)?;
        ws.set_dropout(batch.dropout);
        let trainer = PreTrainer::masked_lm(model)?;
        let loss = trainer.loss_and_grads(&padded.core_batch(), &y, None, ws, grads)?;
        Ok(loss.total)
    }

    fn after(&mut self, model: &Self::Model<'_>, ws: &mut PreTrainWorkspace) -> Result<()> {
        ws.set_dropout(None);
        self.eval_mlm.1 = self.eval_mlm(model, ws)?;
        Ok(())
    }
}
