//! Model directories from the HuggingFace hub, for users with internet access (feature `hub`).
//!
//! `hf:ORG/NAME` (optionally `hf:ORG/NAME@REVISION`) downloads the files a model directory needs
//! — `config.json`, the safetensors weights (single or sharded), the tokenizer files and the
//! sentence-transformers pooling files when present — into `<models root>/hub/ORG--NAME--REV/`,
//! once. `$HF_ENDPOINT` overrides `https://huggingface.co`; `$HF_TOKEN` is sent when set.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model_dir::SIDE_FILES;

/// The prefix that marks a hub model id in `--model`.
pub const PREFIX: &str = "hf:";

fn parse(spec: &str) -> Result<(String, String)> {
    let id = spec.strip_prefix(PREFIX).unwrap_or(spec);
    let (repo, rev) = id.split_once('@').unwrap_or((id, "main"));
    let ok = |s: &str| {
        !s.is_empty()
            && !s.contains("..")
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
    };
    if !ok(repo) || !ok(rev) || repo.starts_with('/') || repo.split('/').count() > 2 {
        return Err(Error::Input(format!(
            "not a hub model id: {spec:?} (expected hf:ORG/NAME[@REVISION])"
        )));
    }
    Ok((repo.to_string(), rev.to_string()))
}

#[cfg(feature = "hub")]
fn get(url: &str) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut req = ureq::get(url);
    if let Ok(token) = std::env::var("HF_TOKEN") {
        req = req.set("Authorization", &format!("Bearer {token}"));
    }
    match req.call() {
        Ok(resp) => {
            let mut body = Vec::new();
            resp.into_reader()
                .take(64 << 30)
                .read_to_end(&mut body)
                .map_err(|e| Error::Fetch(format!("{url}: {e}")))?;
            Ok(Some(body))
        }
        Err(ureq::Error::Status(404, _)) => Ok(None),
        Err(e) => Err(Error::Fetch(format!("{url}: {e}"))),
    }
}

#[cfg(not(feature = "hub"))]
fn get(url: &str) -> Result<Option<Vec<u8>>> {
    Err(Error::Fetch(format!(
        "cannot download {url}: bert-std was built without the `hub` feature \
         (cargo build --features bert-std/hub), or pass --model DIR"
    )))
}

fn save(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    fs::write(&path, bytes).map_err(|e| Error::io(&path, e))
}

/// Download (once) the model directory of `spec` (`hf:ORG/NAME[@REV]`) under `root`.
pub fn download(spec: &str, root: &Path) -> Result<PathBuf> {
    let (repo, rev) = parse(spec)?;
    let name = format!("{}--{}", repo.replace('/', "--"), rev.replace('/', "--"));
    let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
    let url = |file: &str| {
        format!(
            "{}/{repo}/resolve/{rev}/{file}",
            endpoint.trim_end_matches('/')
        )
    };
    crate::cache::install(&root.join("hub"), &name, |staging| {
        let config = get(&url("config.json"))?
            .ok_or_else(|| Error::Fetch(format!("{spec}: the repository has no config.json")))?;
        save(staging, "config.json", &config)?;
        if let Some(w) = get(&url("model.safetensors"))? {
            save(staging, "model.safetensors", &w)?;
        } else if let Some(index) = get(&url("model.safetensors.index.json"))? {
            save(staging, "model.safetensors.index.json", &index)?;
            let json: serde_json::Value = serde_json::from_slice(&index).map_err(|e| {
                Error::Fetch(format!("{spec}: bad model.safetensors.index.json: {e}"))
            })?;
            let mut shards: Vec<String> = json["weight_map"]
                .as_object()
                .map(|m| {
                    m.values()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            shards.sort();
            shards.dedup();
            for shard in shards {
                if shard.contains('/') || shard.contains("..") {
                    return Err(Error::Fetch(format!("{spec}: bad shard name {shard:?}")));
                }
                let bytes = get(&url(&shard))?
                    .ok_or_else(|| Error::Fetch(format!("{spec}: shard {shard} is missing")))?;
                save(staging, &shard, &bytes)?;
            }
        } else {
            return Err(Error::Fetch(format!(
                "{spec}: no model.safetensors in the repository (bert-rs reads safetensors only)"
            )));
        }
        // config.json and the weights are required (above); the side files only when present.
        for file in SIDE_FILES {
            if let Some(bytes) = get(&url(file))? {
                save(staging, file, &bytes)?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_checked() {
        assert_eq!(
            parse("hf:bert-base-uncased").unwrap(),
            ("bert-base-uncased".into(), "main".into())
        );
        assert_eq!(
            parse("hf:org/name@v1.0").unwrap(),
            ("org/name".into(), "v1.0".into())
        );
        for bad in ["hf:", "hf:../etc", "hf:a/b/c", "hf:/abs", "hf:a b"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
