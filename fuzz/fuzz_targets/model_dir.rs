//! Arbitrary bytes as the JSON files of a model directory, read as a checkpoint is read:
//! `config.json`, the shard map `model.safetensors.index.json`, sentence-transformers'
//! `modules.json`, `1_Pooling/config.json` and `sentence_bert_config.json`. Layout: a first
//! byte whose bits say which of the last four files exist, then the files' bytes separated by
//! 0xFF. The directory opens or gives a clear error, never a panic; the weight files it names
//! are inside the directory.
#![no_main]
use std::path::PathBuf;
use std::sync::OnceLock;

use bert_std::ModelDir;
use libfuzzer_sys::fuzz_target;

const FILES: [&str; 4] = [
    "model.safetensors.index.json",
    "modules.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
];

/// A folder of this process's own (on a RAM disk where there is one).
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("bert-fuzz-model-dir-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&present, rest)) = data.split_first() else { return };
    let dir = dir();
    let mut parts = rest.split(|&b| b == 0xFF);
    std::fs::write(dir.join("config.json"), parts.next().unwrap_or_default()).unwrap();
    for (i, name) in FILES.iter().enumerate() {
        let path = dir.join(name);
        match parts.next() {
            Some(bytes) if present & (1 << i) != 0 => std::fs::write(&path, bytes).unwrap(),
            _ => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    if let Ok(model) = ModelDir::open(dir) {
        for file in &model.weight_files {
            assert_eq!(file.parent(), Some(dir.as_path()), "{}", file.display());
        }
    }
});
