//! The trainer's state after an epoch, for `--resume`: every parameter, AdamW's moments and step
//! count, the losses so far, and the settings that must not change between the two runs. One
//! safetensors file (`trainer_state.safetensors` in the checkpoint directory), written
//! atomically, so a run killed at any moment leaves either the previous state or the new one.

use std::collections::BTreeMap;
use std::path::Path;

use bert_core::safetensors::{serialize, SafeTensors};
use bert_core::train::optim::AdamW;
use bert_core::train::Grads;
use bert_core::Dtype;

use super::options::TrainOptions;
use crate::atomic::write_atomic;
use crate::error::{Error, Result};

/// The state file's name in the checkpoint directory.
pub const STATE_FILE: &str = "trainer_state.safetensors";

/// What must match for a state to be resumed: the run's settings and data size.
fn run_key(o: &TrainOptions, examples: usize) -> BTreeMap<String, String> {
    [
        ("seed", o.seed.to_string()),
        ("epochs", o.epochs.to_string()),
        ("batch_size", o.batch_size.to_string()),
        ("grad_accum", o.grad_accum.to_string()),
        ("max_seq_len", o.max_seq_len.to_string()),
        ("lr", o.lr.to_bits().to_string()),
        ("warmup_ratio", o.warmup_ratio.to_bits().to_string()),
        ("weight_decay", o.weight_decay.to_bits().to_string()),
        ("examples", examples.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Write the state after `epochs_done` epochs (`step` optimizer steps).
#[allow(clippy::too_many_arguments)]
pub(crate) fn save_state(
    path: &Path,
    o: &TrainOptions,
    examples: usize,
    done: (usize, usize),
    grads: &Grads,
    params: &[&mut [f32]],
    opt: &AdamW,
    losses: &[f32],
) -> Result<()> {
    let bytes = state_bytes(o, examples, done, grads, params, opt, losses)?;
    write_atomic(path, &bytes)
}

/// The bytes of a state file after `epochs_done` epochs (`step` optimizer steps): what
/// [`read_state`] reads.
#[allow(clippy::too_many_arguments)]
pub fn state_bytes(
    o: &TrainOptions,
    examples: usize,
    (epochs_done, step): (usize, usize),
    grads: &Grads,
    params: &[&mut [f32]],
    opt: &AdamW,
    losses: &[f32],
) -> Result<Vec<u8>> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, ((name, shape), p)) in grads.layout().zip(params).enumerate() {
        let (m, v) = opt.moments(i);
        owned.push((format!("param.{name}"), shape.to_vec(), bytes(p)));
        owned.push((format!("m.{name}"), shape.to_vec(), bytes(m)));
        owned.push((format!("v.{name}"), shape.to_vec(), bytes(v)));
    }
    owned.push(("losses".into(), vec![losses.len()], bytes(losses)));
    let views: Vec<(&str, Dtype, &[usize], &[u8])> = owned
        .iter()
        .map(|(n, s, b)| (n.as_str(), Dtype::F32, &s[..], &b[..]))
        .collect();
    let mut meta = run_key(o, examples);
    meta.insert("epochs_done".into(), epochs_done.to_string());
    meta.insert("step".into(), step.to_string());
    meta.insert("adamw_steps".into(), opt.steps().to_string());
    let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Ok(serialize(&views, &meta)?)
}

/// Where a resumed run starts.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// Epochs already done.
    pub epochs_done: usize,
    /// Optimizer steps already taken.
    pub step: usize,
    /// Their losses.
    pub losses: Vec<f32>,
}

/// Read the state at `path` into `params` and `opt`, after checking it belongs to this run.
/// `None` when there is no state file.
pub(crate) fn load_state(
    path: &Path,
    o: &TrainOptions,
    examples: usize,
    grads: &Grads,
    params: &mut [&mut [f32]],
    opt: &mut AdamW,
) -> Result<Option<Resumed>> {
    if !path.is_file() {
        return Ok(None);
    }
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    read_state(&data, path, o, examples, grads, params, opt).map(Some)
}

/// Read the bytes of a trainer state (what `--resume` reads) into `params` and `opt`, after
/// checking they belong to this run (settings, data size) and hold every tensor whole; `path`
/// names the file in errors. On an error, `params` and `opt` may hold part of the state: the
/// caller stops.
pub fn read_state(
    data: &[u8],
    path: &Path,
    o: &TrainOptions,
    examples: usize,
    grads: &Grads,
    params: &mut [&mut [f32]],
    opt: &mut AdamW,
) -> Result<Resumed> {
    let st = SafeTensors::parse(data).map_err(|e| Error::file(path, e.to_string()))?;
    let meta = st.metadata();
    for (k, want) in run_key(o, examples) {
        if meta.get(&k) != Some(&want) {
            return Err(Error::file(
                path,
                format!(
                    "this state is from another run ({k} was {:?}, now {want}); remove it or \
                     train without --resume",
                    meta.get(&k)
                ),
            ));
        }
    }
    let number = |k: &str| -> Result<usize> {
        meta.get(k)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::file(path, format!("no {k} in the state")))
    };
    let read = |name: &str, into: &mut [f32]| -> Result<()> {
        match st.tensor_data(name) {
            Some((Dtype::F32, _, b)) if b.len() == into.len() * 4 => {
                for (x, c) in into.iter_mut().zip(b.chunks_exact(4)) {
                    *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
                Ok(())
            }
            _ => Err(Error::file(
                path,
                format!("missing or mis-shaped tensor {name}"),
            )),
        }
    };
    for (i, ((name, _), p)) in grads.layout().zip(params.iter_mut()).enumerate() {
        read(&format!("param.{name}"), p)?;
        let (m, v) = opt.moments_mut(i);
        read(&format!("m.{name}"), m)?;
        read(&format!("v.{name}"), v)?;
    }
    opt.set_steps(number("adamw_steps")? as u32);
    let step = number("step")?;
    // The losses tensor must hold one f32 per step: a huge `step` in a hostile file is refused
    // before it becomes an allocation.
    match st.tensor_data("losses") {
        Some((_, _, b)) if b.len() == step.saturating_mul(4) => {}
        _ => {
            return Err(Error::file(
                path,
                format!("the losses tensor does not hold {step} steps"),
            ))
        }
    }
    let mut losses = vec![0.0; step];
    read("losses", &mut losses)?;
    let epochs_done = number("epochs_done")?;
    if epochs_done >= o.epochs {
        return Err(Error::file(
            path,
            format!(
                "the state says {epochs_done} epochs are done, of {}",
                o.epochs
            ),
        ));
    }
    Ok(Resumed {
        epochs_done,
        step,
        losses,
    })
}
