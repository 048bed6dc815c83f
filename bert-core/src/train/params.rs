//! The parameters of a model, mutably and in the order of its [`Grads`](super::Grads), for
//! the optimizer.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::heads::BertForSequenceClassification;
use crate::nn::Linear;

/// Every parameter of `model`, mutably, in the order of
/// [`SeqClsTrainer::grads`](super::seqcls::SeqClsTrainer::grads), for the
/// optimizer. Borrowed weights become owned (one copy, the first time); pre-packed panels are
/// dropped (they would go stale).
pub fn params_mut<'s>(
    model: &'s mut BertForSequenceClassification<'_>,
) -> Result<Vec<&'s mut [f32]>> {
    let BertForSequenceClassification { bert, classifier } = model;
    let mut out = bert_params(bert, true)?;
    linear(classifier, &mut out)?;
    Ok(out)
}

/// Every parameter of a token classifier, mutably, in the order of
/// [`TokClsTrainer::grads`](super::tokcls::TokClsTrainer::grads).
pub fn token_params_mut<'s>(
    model: &'s mut crate::heads::BertForTokenClassification<'_>,
) -> Result<Vec<&'s mut [f32]>> {
    let crate::heads::BertForTokenClassification {
        bert, classifier, ..
    } = model;
    let mut out = bert_params(bert, false)?;
    linear(classifier, &mut out)?;
    Ok(out)
}

/// Every parameter of an extractive-QA model, mutably, in the order of
/// [`QaTrainer::grads`](super::qa::QaTrainer::grads).
pub fn qa_params_mut<'s>(
    model: &'s mut crate::heads::BertForQuestionAnswering<'_>,
) -> Result<Vec<&'s mut [f32]>> {
    let crate::heads::BertForQuestionAnswering {
        bert, qa_outputs, ..
    } = model;
    let mut out = bert_params(bert, false)?;
    linear(qa_outputs, &mut out)?;
    Ok(out)
}

/// Every parameter of a masked-LM model, mutably, in the order of
/// [`PreTrainer::grads`](super::pretrain::PreTrainer::grads).
pub fn masked_lm_params_mut<'s>(
    model: &'s mut crate::heads::BertForMaskedLM<'_>,
) -> Result<Vec<&'s mut [f32]>> {
    let crate::heads::BertForMaskedLM { bert, predictions } = model;
    let mut out = bert_params(bert, false)?;
    prediction_params(predictions, &mut out)?;
    Ok(out)
}

/// Every parameter of an MLM + NSP model, mutably, in the order of
/// [`PreTrainer::grads`](super::pretrain::PreTrainer::grads).
pub fn pretraining_params_mut<'s>(
    model: &'s mut crate::heads::BertForPreTraining<'_>,
) -> Result<Vec<&'s mut [f32]>> {
    let crate::heads::BertForPreTraining {
        bert,
        predictions,
        seq_relationship,
    } = model;
    let mut out = bert_params(bert, true)?;
    prediction_params(predictions, &mut out)?;
    linear(seq_relationship, &mut out)?;
    Ok(out)
}

/// The masked-LM head: transform dense, its LayerNorm, the output bias, an untied decoder.
fn prediction_params<'s>(
    p: &'s mut crate::heads::BertLMPredictionHead<'_>,
    out: &mut Vec<&'s mut [f32]>,
) -> Result<()> {
    let crate::heads::BertLMPredictionHead {
        transform,
        decoder,
        bias,
    } = p;
    linear(&mut transform.dense, out)?;
    norm(&mut transform.layer_norm, out);
    out.push(bias.to_mut().as_mut_slice());
    if let Some(d) = decoder {
        out.push(matrix(d)?);
    }
    Ok(())
}

/// The encoder's parameters, then the pooler's when `with_pooler` (a sentence-level head
/// follows it), as the trainers order them.
fn bert_params<'s>(
    bert: &'s mut crate::model::BertModel<'_>,
    with_pooler: bool,
) -> Result<Vec<&'s mut [f32]>> {
    let crate::model::BertModel {
        embeddings,
        encoder,
        pooler,
        ..
    } = bert;
    let mut out = encoder_params(embeddings, encoder)?;
    if with_pooler {
        let p = pooler.as_mut().ok_or_else(|| Error::MissingTensor {
            tried: vec![String::from("pooler.dense.weight")],
        })?;
        linear(&mut p.dense, &mut out)?;
    }
    Ok(out)
}

/// The encoder's parameters (embeddings, then every layer), as the trainers order them.
fn encoder_params<'s>(
    embeddings: &'s mut crate::model::BertEmbeddings<'_>,
    encoder: &'s mut crate::model::BertEncoder<'_>,
) -> Result<Vec<&'s mut [f32]>> {
    let mut out = Vec::new();
    let crate::model::BertEmbeddings {
        word_embeddings,
        position_embeddings,
        token_type_embeddings,
        layer_norm,
        ..
    } = embeddings;
    out.push(matrix(&mut word_embeddings.weight)?);
    for table in [position_embeddings, token_type_embeddings] {
        let t = table.as_mut().ok_or_else(|| Error::Unsupported {
            field: "model_type",
            value: String::from("no position or token-type table"),
            supported: "BERT's embeddings",
        })?;
        out.push(matrix(&mut t.weight)?);
    }
    norm(layer_norm, &mut out);
    for layer in encoder.layer.iter_mut() {
        let crate::model::BertLayer {
            attention,
            intermediate,
            output,
        } = layer;
        let sa = &mut attention.self_attention;
        linear(&mut sa.query, &mut out)?;
        linear(&mut sa.key, &mut out)?;
        linear(&mut sa.value, &mut out)?;
        linear(&mut attention.output.dense, &mut out)?;
        norm(&mut attention.output.layer_norm, &mut out);
        linear(&mut intermediate.dense, &mut out)?;
        linear(&mut output.dense, &mut out)?;
        norm(&mut output.layer_norm, &mut out);
    }
    Ok(out)
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
fn linear<'s>(l: &'s mut Linear<'_>, out: &mut Vec<&'s mut [f32]>) -> Result<()> {
    l.packed = None;
    let Linear { weight, bias, .. } = l;
    out.push(matrix(weight)?);
    out.push(
        bias.as_mut()
            .ok_or_else(|| Error::MissingTensor {
                tried: vec![String::from("bias")],
            })?
            .to_mut()
            .as_mut_slice(),
    );
    Ok(())
}
fn norm<'s>(n: &'s mut crate::nn::LayerNorm<'_>, out: &mut Vec<&'s mut [f32]>) {
    let crate::nn::LayerNorm { weight, bias, .. } = n;
    out.push(weight.to_mut().as_mut_slice());
    out.push(bias.to_mut().as_mut_slice());
}
