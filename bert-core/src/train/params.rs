//! The parameters of a model, mutably and in the order of its [`Grads`](super::Grads), for
//! the optimizer: handed one by one to a visitor ([`Parameters::visit_params`], what AdamW's
//! update walks without allocating) or gathered in a list ([`params_mut`] and its siblings, for
//! checkpoints and saved states).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::heads::{
    BertForMaskedLM, BertForPreTraining, BertForQuestionAnswering, BertForSequenceClassification,
    BertForTokenClassification, BertLMPredictionHead,
};
use crate::nn::{LayerNorm, Linear};

/// What receives each parameter in turn.
pub(crate) type Visit<'v, 's> = &'v mut dyn FnMut(&'s mut [f32]);

/// A model whose parameters a trainer updates.
pub trait Parameters {
    /// Hands every parameter to `visit`, mutably, in the order of the model's trainer's
    /// [`Grads`](super::Grads). Borrowed weights become owned (one copy, the first time);
    /// pre-packed panels are dropped (they would go stale). Allocates nothing once the weights
    /// are owned.
    fn visit_params<'s>(&'s mut self, visit: Visit<'_, 's>) -> Result<()>;

    /// Every parameter in a list, in the order [`visit_params`](Self::visit_params) visits
    /// them (for checkpoints and saved states).
    fn param_list(&mut self) -> Result<Vec<&mut [f32]>> {
        let mut out = Vec::new();
        self.visit_params(&mut |p| out.push(p))?;
        Ok(out)
    }
}

impl Parameters for BertForSequenceClassification<'_> {
    fn visit_params<'s>(&'s mut self, visit: Visit<'_, 's>) -> Result<()> {
        let BertForSequenceClassification { bert, classifier } = self;
        bert_params(bert, true, visit)?;
        linear(classifier, visit)
    }
}

impl Parameters for BertForTokenClassification<'_> {
    fn visit_params<'s>(&'s mut self, visit: Visit<'_, 's>) -> Result<()> {
        let BertForTokenClassification {
            bert,
            transform,
            classifier,
        } = self;
        let norm_bias = bert.config.arch.heads.norm_bias;
        bert_params(bert, false, visit)?;
        transform_params(transform.as_mut(), norm_bias, visit)?;
        linear(classifier, visit)
    }
}

impl Parameters for BertForQuestionAnswering<'_> {
    fn visit_params<'s>(&'s mut self, visit: Visit<'_, 's>) -> Result<()> {
        let BertForQuestionAnswering {
            bert,
            transform,
            qa_outputs,
        } = self;
        let norm_bias = bert.config.arch.heads.norm_bias;
        bert_params(bert, false, visit)?;
        transform_params(transform.as_mut(), norm_bias, visit)?;
        linear(qa_outputs, visit)
    }
}

/// A token-level head's prediction head (ModernBERT's `head`: dense, norm), if it has one.
fn transform_params<'s>(
    transform: Option<&'s mut crate::heads::BertPredictionHeadTransform<'_>>,
    norm_bias: bool,
    out: Visit<'_, 's>,
) -> Result<()> {
    if let Some(t) = transform {
        linear(&mut t.dense, out)?;
        norm_with(&mut t.layer_norm, norm_bias, out);
    }
    Ok(())
}

impl Parameters for BertForMaskedLM<'_> {
    fn visit_params<'s>(&'s mut self, visit: Visit<'_, 's>) -> Result<()> {
        let BertForMaskedLM { bert, predictions } = self;
        let style = bert.config.arch.heads;
        bert_params(bert, false, visit)?;
        prediction_params(predictions, style, visit)
    }
}

impl Parameters for BertForPreTraining<'_> {
    fn visit_params<'s>(&'s mut self, visit: Visit<'_, 's>) -> Result<()> {
        let BertForPreTraining {
            bert,
            predictions,
            seq_relationship,
        } = self;
        let style = bert.config.arch.heads;
        bert_params(bert, true, visit)?;
        prediction_params(predictions, style, visit)?;
        linear(seq_relationship, visit)
    }
}

/// Every parameter of a sequence classifier, mutably, in the order of
/// [`SeqClsTrainer::grads`](super::seqcls::SeqClsTrainer::grads), for the
/// optimizer. Borrowed weights become owned (one copy, the first time); pre-packed panels are
/// dropped (they would go stale).
pub fn params_mut<'s>(
    model: &'s mut BertForSequenceClassification<'_>,
) -> Result<Vec<&'s mut [f32]>> {
    model.param_list()
}

/// Every parameter of a token classifier, mutably, in the order of
/// [`TokClsTrainer::grads`](super::tokcls::TokClsTrainer::grads).
pub fn token_params_mut<'s>(
    model: &'s mut BertForTokenClassification<'_>,
) -> Result<Vec<&'s mut [f32]>> {
    model.param_list()
}

/// Every parameter of an extractive-QA model, mutably, in the order of
/// [`QaTrainer::grads`](super::qa::QaTrainer::grads).
pub fn qa_params_mut<'s>(
    model: &'s mut BertForQuestionAnswering<'_>,
) -> Result<Vec<&'s mut [f32]>> {
    model.param_list()
}

/// Every parameter of a masked-LM model, mutably, in the order of
/// [`PreTrainer::grads`](super::pretrain::PreTrainer::grads).
pub fn masked_lm_params_mut<'s>(model: &'s mut BertForMaskedLM<'_>) -> Result<Vec<&'s mut [f32]>> {
    model.param_list()
}

/// Every parameter of an MLM + NSP model, mutably, in the order of
/// [`PreTrainer::grads`](super::pretrain::PreTrainer::grads).
pub fn pretraining_params_mut<'s>(
    model: &'s mut BertForPreTraining<'_>,
) -> Result<Vec<&'s mut [f32]>> {
    model.param_list()
}

/// The masked-LM head: transform dense, its norm, the output bias (where the family's head has
/// one), an untied decoder.
fn prediction_params<'s>(
    p: &'s mut BertLMPredictionHead<'_>,
    style: crate::arch::HeadStyle,
    out: Visit<'_, 's>,
) -> Result<()> {
    let BertLMPredictionHead {
        transform,
        decoder,
        bias,
    } = p;
    linear(&mut transform.dense, out)?;
    norm_with(&mut transform.layer_norm, style.norm_bias, out);
    if style.decoder_bias {
        out(bias.to_mut().as_mut_slice());
    }
    if let Some(d) = decoder {
        out(matrix(d)?);
    }
    Ok(())
}

/// The encoder's parameters (embeddings, every layer, the embeddings' projection if any),
/// then the pooler's when
/// `with_pooler` (a sentence-level head follows it), as the trainers order them.
pub(crate) fn bert_params<'s>(
    bert: &'s mut crate::model::BertModel<'_>,
    with_pooler: bool,
    out: Visit<'_, 's>,
) -> Result<()> {
    let crate::model::BertModel {
        config,
        embeddings,
        encoder,
        pooler,
    } = bert;
    let crate::model::BertEmbeddings {
        word_embeddings,
        position_embeddings,
        token_type_embeddings,
        layer_norm,
        project,
        ..
    } = embeddings;
    out(matrix(&mut word_embeddings.weight)?);
    // The tables the family has (DistilBERT has no token types), in the order of the grads.
    for table in [position_embeddings, token_type_embeddings]
        .into_iter()
        .flatten()
    {
        out(matrix(&mut table.weight)?);
    }
    let norm_bias = match &config.arch.block {
        crate::arch::Block::PostNorm => true,
        crate::arch::Block::PreNorm(pre) => pre.norm_bias,
    };
    norm_with(layer_norm, norm_bias, out);
    for layer in encoder.layer.iter_mut() {
        let crate::model::BertLayer {
            attention,
            intermediate,
            output,
        } = layer;
        let sa = &mut attention.self_attention;
        // The fused Q/K/V product `prepack` built would go stale too.
        sa.fused_qkv = None;
        linear(&mut sa.query, out)?;
        linear(&mut sa.key, out)?;
        linear(&mut sa.value, out)?;
        linear(&mut attention.output.dense, out)?;
        norm(&mut attention.output.layer_norm, out);
        linear(&mut intermediate.dense, out)?;
        linear(&mut output.dense, out)?;
        norm(&mut output.layer_norm, out);
    }
    for layer in encoder.pre_norm.iter_mut() {
        if let Some(n) = &mut layer.attn_norm {
            norm_with(n, norm_bias, out);
        }
        linear(&mut layer.qkv, out)?;
        linear(&mut layer.attention_out, out)?;
        norm_with(&mut layer.mlp_norm, norm_bias, out);
        linear(&mut layer.mlp_in, out)?;
        linear(&mut layer.mlp_out, out)?;
    }
    if let Some(n) = &mut encoder.final_norm {
        norm_with(n, norm_bias, out);
    }
    if let Some(p) = project {
        linear(p, out)?;
    }
    if with_pooler {
        let p = pooler.as_mut().ok_or_else(|| Error::MissingTensor {
            tried: vec![String::from("pooler.dense.weight")],
        })?;
        linear(&mut p.dense, out)?;
        if let Some(n) = &mut p.norm {
            norm_with(n, config.arch.heads.norm_bias, out);
        }
    }
    Ok(())
}

fn matrix<'s>(m: &'s mut crate::tensor::Matrix<'_>) -> Result<&'s mut [f32]> {
    match &mut m.storage {
        crate::tensor::Storage::F32(v) => Ok(v.to_mut().as_mut_slice()),
        other => Err(Error::Unsupported {
            field: "dtype",
            value: format!("{}", other.dtype()),
            supported: "F32 weights for training",
        }),
    }
}
/// A linear layer's weight, then its bias where it has one.
pub(crate) fn linear<'s>(l: &'s mut Linear<'_>, out: Visit<'_, 's>) -> Result<()> {
    l.packed = None;
    let Linear { weight, bias, .. } = l;
    out(matrix(weight)?);
    if let Some(bias) = bias {
        out(bias.to_mut().as_mut_slice());
    }
    Ok(())
}

fn norm<'s>(n: &'s mut LayerNorm<'_>, out: Visit<'_, 's>) {
    norm_with(n, true, out)
}

/// A norm's weight, then its bias when `bias` (a norm loaded without one holds zeros).
fn norm_with<'s>(n: &'s mut LayerNorm<'_>, bias: bool, out: Visit<'_, 's>) {
    let LayerNorm {
        weight, bias: b, ..
    } = n;
    out(weight.to_mut().as_mut_slice());
    if bias {
        out(b.to_mut().as_mut_slice());
    }
}
