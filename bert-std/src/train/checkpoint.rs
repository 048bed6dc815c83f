//! Checkpoints are HF model directories: `model.safetensors` with PyTorch's parameter names,
//! `config.json` with `architectures` and `id2label`, the base model's tokenizer files, and a
//! `loss_curve.svg`. The files are written as one set ([`AtomicFiles`]): every one in full
//! before any replaces its target, so a run that fails (a full disk) or is killed leaves the
//! previous checkpoint whole.

use std::path::Path;

use bert_core::safetensors::serialize;
use bert_core::Dtype;

use crate::atomic::AtomicFiles;
use crate::error::{Error, Result};
use crate::model_dir::ModelDir;

/// The tokenizer files a checkpoint carries over from its base model.
pub(crate) const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// One parameter as a checkpoint holds it: (name, shape), values.
pub type Param<'p> = ((&'p str, &'p [usize]), &'p [f32]);

/// Write `params` ((name, shape), values) as an HF directory at `out`.
pub fn save_checkpoint<'p>(
    out: &Path,
    base: &ModelDir,
    config: &serde_json::Map<String, serde_json::Value>,
    params: impl Iterator<Item = Param<'p>>,
    losses: &[f32],
) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let bytes = f32_safetensors(params)?;
    let mut files = AtomicFiles::default();
    for name in TOKENIZER_FILES {
        let src = base.root.join(name);
        if src.is_file() {
            files.copy(&src, &out.join(name))?;
        }
    }
    let json = serde_json::to_string_pretty(config)
        .map_err(|e| Error::Input(format!("config.json: {e}")))?;
    files.write(out.join("config.json"), json.as_bytes())?;
    files.write(out.join("loss_curve.svg"), loss_svg(losses).as_bytes())?;
    files.write(out.join("model.safetensors"), &bytes)?;
    files.commit()
}

/// `params` as one safetensors file of f32 tensors (`format: pt`, as transformers writes).
pub fn f32_safetensors<'p>(params: impl Iterator<Item = Param<'p>>) -> Result<Vec<u8>> {
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = params
        .map(|((name, shape), values)| {
            let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name.to_string(), shape.to_vec(), bytes)
        })
        .collect();
    let views: Vec<(&str, Dtype, &[usize], &[u8])> = owned
        .iter()
        .map(|(n, s, b)| (n.as_str(), Dtype::F32, &s[..], &b[..]))
        .collect();
    Ok(serialize(&views, &[("format", "pt")])?)
}

/// The loss of every step as an SVG line chart.
pub fn loss_svg(losses: &[f32]) -> String {
    let (w, h, pad) = (640.0f32, 320.0f32, 40.0f32);
    let max = losses.iter().copied().fold(f32::MIN, f32::max).max(1e-6);
    let n = losses.len().max(2) - 1;
    let points: Vec<String> = losses
        .iter()
        .enumerate()
        .map(|(i, &l)| {
            let x = pad + (w - 2.0 * pad) * i as f32 / n as f32;
            let y = h - pad - (h - 2.0 * pad) * (l / max);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\
<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
<line x1=\"{pad}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"black\"/>\
<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{b}\" stroke=\"black\"/>\
<text x=\"{pad}\" y=\"{t}\">training loss (max {max:.3}), {steps} steps</text>\
<polyline fill=\"none\" stroke=\"steelblue\" stroke-width=\"1.5\" points=\"{pts}\"/></svg>\n",
        b = h - pad,
        r = w - pad,
        t = pad - 12.0,
        steps = losses.len(),
        pts = points.join(" ")
    )
}
