//! [`Bert`]: one model directory loaded for one task, with its tokenizer and a thread pool —
//! what every pipeline stands on.

use std::path::{Path, PathBuf};

use tokenizers::Encoding;

use crate::batching::{run_batched, BatchOptions, Padded};
use crate::error::{Error, Result};
use crate::fetch;
use crate::hub;
use crate::loaded::{LoadedModel, Task, TaskModel};
use crate::model_dir::ModelDir;
use crate::tokenizer::Tokenizer;

/// How to load and run a model.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Threads for batched work (0: one per core).
    pub threads: usize,
    /// Batching.
    pub batch: BatchOptions,
    /// Memory-map the weights (default) instead of reading them. A mapped file must not be
    /// rewritten while the model is loaded.
    pub mmap: bool,
    /// Pack the encoder's f32 / f16 weights once at load for the kernels (default): faster,
    /// most of all for single texts, for one more f32 copy of those weights in memory.
    pub prepack: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            threads: 0,
            batch: BatchOptions::default(),
            mmap: true,
            prepack: true,
        }
    }
}

/// The environment variable naming a model directory for the examples and the CLI.
pub const MODEL_ENV: &str = "BERT_MODEL";

/// A model given by the user (a directory, or `hf:ORG/NAME` with the `hub` feature), else the
/// default model (fetched on first use).
pub fn resolve_model(explicit: Option<&Path>, default_name: &str) -> Result<PathBuf> {
    let given = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os(MODEL_ENV).map(PathBuf::from));
    match given {
        Some(p) => model_path(&p),
        None => fetch::ensure_model(default_name),
    }
}

/// A user's `--model` value as a directory: `hf:ORG/NAME` is downloaded from the hub (feature
/// `hub`) into the models cache; anything else is a path.
pub fn model_path(given: &Path) -> Result<PathBuf> {
    match given.to_str() {
        Some(s) if s.starts_with(hub::PREFIX) => hub::download(s, &fetch::models_root()),
        _ => Ok(given.to_path_buf()),
    }
}

/// A loaded model, its tokenizer and a thread pool.
pub struct Bert {
    /// The model directory.
    pub dir: ModelDir,
    /// The model.
    pub model: LoadedModel,
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Batching settings.
    pub batch: BatchOptions,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for Bert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bert")
            .field("dir", &self.dir.root)
            .field("task", &self.model.task())
            .field("threads", &self.pool.current_num_threads())
            .finish()
    }
}

impl Bert {
    /// Load a HF model directory for `task`.
    pub fn load(path: impl AsRef<Path>, task: Task, options: LoadOptions) -> Result<Self> {
        let dir = ModelDir::open(path)?;
        let tokenizer = Tokenizer::from_dir(&dir.root)?;
        let mut model = LoadedModel::load(&dir, task, options.mmap)?;
        if options.prepack {
            model.prepack();
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads)
            .build()
            .map_err(|e| Error::Model(format!("cannot start {} threads: {e}", options.threads)))?;
        Ok(Bert {
            dir,
            model,
            tokenizer,
            batch: options.batch,
            pool,
        })
    }

    /// The core model.
    pub fn model(&self) -> &TaskModel<'_> {
        self.model.model()
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The longest input (in tokens) the model takes.
    pub fn max_len(&self) -> usize {
        self.dir.config.max_position_embeddings
    }

    /// Encode a text (or a pair) for a single forward pass: empty text is an error; text longer
    /// than `max_len` tokens is truncated (longest sequence first), as HF's `truncation=True`.
    pub fn encode(&self, text: &str, pair: Option<&str>, max_len: usize) -> Result<Encoding> {
        if text.trim().is_empty() || pair.is_some_and(|p| p.trim().is_empty()) {
            return Err(Error::Input("empty text".into()));
        }
        self.tokenizer
            .encode_truncated(text, pair, max_len.min(self.max_len()))
    }

    /// Run `f` over `encodings` in parallel length-bucketed batches (see [`run_batched`]).
    pub fn run_batched<T: Send>(
        &self,
        encodings: &[Encoding],
        f: impl Fn(&Padded, &[usize]) -> Result<Vec<T>> + Sync,
    ) -> Result<Vec<T>> {
        run_batched(
            &self.pool,
            self.batch,
            encodings,
            self.tokenizer.special.pad,
            f,
        )
    }
}
