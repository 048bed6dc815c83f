//! sentence-transformers' `Dense` module: a linear layer (and an activation) after the pooling,
//! read from its folder (`config.json`: `in_features`, `out_features`, `bias`,
//! `activation_function`; `model.safetensors`: `linear.weight`, `linear.bias`).

use std::path::Path;

use bert_core::Weights;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model_dir::read_json;

/// The largest `in_features × out_features` a `Dense` module may have.
const MAX_ELEMENTS: usize = 1 << 26;

/// The activation after the linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseActivation {
    /// `torch.nn.Identity`.
    Identity,
    /// `torch.nn.Tanh` (sentence-transformers' default).
    Tanh,
}

/// A `Dense` module.
#[derive(Clone, PartialEq)]
pub struct Dense {
    /// `[out, in]`.
    pub weight: Vec<f32>,
    /// `[out]`, if the layer has one.
    pub bias: Option<Vec<f32>>,
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
    /// The activation.
    pub activation: DenseActivation,
}

/// Shapes, not values: a model's `Debug` (as `bert info` prints it) stays one line.
impl std::fmt::Debug for Dense {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Dense {{ {} -> {}, bias: {}, activation: {:?} }}",
            self.in_features,
            self.out_features,
            self.bias.is_some(),
            self.activation
        )
    }
}

impl Dense {
    /// Read the module in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let cfg = read_json(&cfg_path)?;
        let size = |k: &str| {
            cfg.get(k)
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .filter(|&n| n > 0)
                .ok_or_else(|| Error::file(&cfg_path, format!("{k} must be a positive integer")))
        };
        let (n_in, n_out) = (size("in_features")?, size("out_features")?);
        if n_in.saturating_mul(n_out) > MAX_ELEMENTS {
            return Err(Error::file(&cfg_path, "the layer is too large"));
        }
        let has_bias = cfg.get("bias").and_then(Value::as_bool).unwrap_or(true);
        let act = cfg
            .get("activation_function")
            .and_then(Value::as_str)
            .unwrap_or("torch.nn.modules.activation.Tanh");
        let activation = match act.rsplit('.').next() {
            Some("Identity") => DenseActivation::Identity,
            Some("Tanh") => DenseActivation::Tanh,
            _ => {
                return Err(Error::file(
                    &cfg_path,
                    format!("activation_function {act:?}: Identity or Tanh are supported"),
                ))
            }
        };
        let path = dir.join("model.safetensors");
        if !path.is_file() {
            return Err(Error::file(
                dir,
                "no model.safetensors (a pytorch_model.bin cannot be read: save with safetensors)",
            ));
        }
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        // Through the core's loader: f32, or f16 / bf16 / int8 as `bert quantize` writes them,
        // widened to f32 here.
        let weights =
            Weights::from_buffers(&[&bytes]).map_err(|e| Error::file(&path, e.to_string()))?;
        let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let storage = weights
                .tensor(name, shape)
                .map_err(|e| Error::file(&path, e.to_string()))?;
            let mut out = vec![0.0f32; shape.iter().product()];
            storage.read_f32(0, &mut out);
            Ok(out)
        };
        Ok(Dense {
            weight: read("linear.weight", &[n_out, n_in])?,
            bias: has_bias
                .then(|| read("linear.bias", &[n_out]))
                .transpose()?,
            in_features: n_in,
            out_features: n_out,
            activation,
        })
    }

    /// The layer on one vector (`in_features` long; an error otherwise).
    pub fn forward(&self, x: &[f32]) -> Result<Vec<f32>> {
        if x.len() != self.in_features {
            return Err(Error::Input(format!(
                "the Dense module takes {} values, the pooling gave {}",
                self.in_features,
                x.len()
            )));
        }
        Ok(self
            .weight
            .chunks_exact(self.in_features)
            .enumerate()
            .map(|(o, row)| {
                let b = self.bias.as_ref().map_or(0.0, |b| b[o]);
                let y = row.iter().zip(x).map(|(w, v)| w * v).sum::<f32>() + b;
                match self.activation {
                    DenseActivation::Identity => y,
                    DenseActivation::Tanh => y.tanh(),
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_is_linear_then_activation() {
        let d = Dense {
            weight: vec![1.0, 2.0, 0.0, -1.0],
            bias: Some(vec![0.5, 0.0]),
            in_features: 2,
            out_features: 2,
            activation: DenseActivation::Identity,
        };
        assert_eq!(d.forward(&[1.0, 1.0]).unwrap(), [3.5, -1.0]);
        assert!(d.forward(&[1.0]).is_err());
        let t = Dense {
            activation: DenseActivation::Tanh,
            ..d
        };
        assert_eq!(t.forward(&[1.0, 1.0]).unwrap()[1], (-1.0f32).tanh());
    }
}
