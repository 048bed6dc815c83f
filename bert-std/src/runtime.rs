//! [`Bert`]: one model directory loaded for one task, with its tokenizer and a thread pool —
//! what every pipeline stands on.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bert_core::Workspace;
use tokenizers::Encoding;

use crate::batching::{run_batched, BatchOptions, Padded, RayonJoin};
use crate::error::{Error, Result};
use crate::fetch;
use crate::hub;
use crate::loaded::{Head, LoadedModel, Task, TaskModel};
use crate::model_dir::ModelDir;
use crate::tokenizer::{Side, Tokenizer};

/// The most threads a model may use: four per core of this machine (at least 4). More only
/// costs memory (every thread gets its own matmul scratch) and hand-off time.
pub fn max_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (4 * cores).max(4)
}

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
    /// Read every weight once at load and refuse the model if any value is NaN or infinite
    /// (off by default: it touches every page of the file). Outputs are always checked.
    pub check_weights: bool,
    /// Convert the 2-D weights to this storage at load, in memory (as `bert quantize` does on
    /// disk): int8 (per-output-channel scales), f16 or bf16. `None`: as stored. With bf16 and
    /// [`prepack`](Self::prepack) the encoder's products also run in bf16 (bf16 inputs, f32
    /// sums); without prepacking bf16 weights are widened and products stay f32.
    pub dtype: Option<bert_core::quantize::QuantDtype>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            threads: 0,
            batch: BatchOptions::default(),
            mmap: true,
            prepack: true,
            check_weights: false,
            dtype: None,
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
    if crate::task_models::student::is_named(given) {
        use crate::task_models::student;
        return student::cached().ok_or_else(|| {
            Error::Input(format!(
                "{} is not distilled yet ({}): run `bert embed --model {} --yes TEXT` (or, in \
                 Python, bert_rs.prepare_default_model(\"{}\")) once to make it in the model \
                 cache",
                student::NAME,
                student::ABOUT,
                student::NAME,
                student::NAME
            ))
        });
    }
    match given.to_str() {
        Some(s) if s.starts_with(hub::PREFIX) => hub::download(s, &fetch::models_root()),
        _ => Ok(given.to_path_buf()),
    }
}

/// A loaded model, its tokenizer and a thread pool.
pub struct Bert {
    /// The model directory.
    pub dir: ModelDir,
    /// The model (weights and core model).
    pub loaded: LoadedModel,
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// Batching settings.
    pub batch: BatchOptions,
    pool: rayon::ThreadPool,
    /// Workspaces kept between calls (one per batch that ran at once), each with the extra
    /// head capacity it was made for; grown when a larger batch comes.
    workspaces: Mutex<Vec<(usize, Workspace)>>,
    /// How many workspaces were ever built (for tests and diagnostics).
    workspaces_built: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for Bert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bert")
            .field("dir", &self.dir.root)
            .field("task", &self.loaded.task())
            .field("threads", &self.pool.current_num_threads())
            .finish()
    }
}

impl Bert {
    /// Load a HF model directory for `task`.
    pub fn load(path: impl AsRef<Path>, task: Task, options: LoadOptions) -> Result<Self> {
        if options.threads > max_threads() {
            return Err(Error::Limit {
                what: "threads",
                value: options.threads,
                max: max_threads(),
                hint: "; use 0 for one thread per core".into(),
            });
        }
        options.batch.validate()?;
        let dir = ModelDir::open(path)?;
        if options.check_weights {
            crate::check::check_weights(&dir)?;
        }
        let tokenizer = Tokenizer::from_dir(&dir.root)?;
        let mut loaded = match options.dtype {
            None => LoadedModel::load(&dir, task, options.mmap)?,
            Some(dtype) => LoadedModel::load_converted(&dir, task, dtype)?,
        };
        if options.prepack {
            loaded.prepack_as(match options.dtype {
                Some(bert_core::quantize::QuantDtype::BF16) => bert_core::kernels::Precision::Bf16,
                _ => bert_core::kernels::Precision::Stored,
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(options.threads)
            .build()
            .map_err(|e| Error::Model(format!("cannot start {} threads: {e}", options.threads)))?;
        Ok(Bert {
            dir,
            loaded,
            tokenizer,
            batch: options.batch,
            pool,
            workspaces: Mutex::new(Vec::new()),
            workspaces_built: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// The core model of the task this was loaded for.
    pub fn task_model(&self) -> &TaskModel<'_> {
        self.loaded.model()
    }

    /// How many core workspaces this model has built so far: one per batch that ran at the same
    /// time, plus one each time a batch outgrew them. Calls of shapes seen before build none.
    pub fn workspaces_built(&self) -> usize {
        self.workspaces_built
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Threads in the pool.
    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// The longest input (in tokens) the model takes.
    pub fn max_len(&self) -> usize {
        self.dir.config.max_sequence_length()
    }

    /// Encode a text (or a pair) for a single forward pass: empty text is an error; text longer
    /// than `max_len` tokens is truncated (longest sequence first), as HF's `truncation=True`.
    pub fn encode(&self, text: &str, pair: Option<&str>, max_len: usize) -> Result<Encoding> {
        self.encode_from(text, pair, max_len, Side::Right)
    }

    /// [`encode`](Self::encode), cutting long text at `side`.
    pub fn encode_from(
        &self,
        text: &str,
        pair: Option<&str>,
        max_len: usize,
        side: Side,
    ) -> Result<Encoding> {
        if text.trim().is_empty() || pair.is_some_and(|p| p.trim().is_empty()) {
            return Err(Error::Input("empty text".into()));
        }
        self.tokenizer
            .encode_truncated_from(text, pair, max_len.min(self.max_len()), side)
    }

    /// Encode every input with `encode`, tagging a failure with the input's position
    /// ([`Error::Item`]).
    pub fn encode_all<I>(
        &self,
        inputs: &[I],
        encode: impl Fn(&I) -> Result<Encoding>,
    ) -> Result<Vec<Encoding>> {
        inputs
            .iter()
            .enumerate()
            .map(|(i, x)| encode(x).map_err(|e| e.at(i)))
            .collect()
    }

    /// The one skeleton every pipeline runs: `encodings` in parallel length-bucketed batches
    /// (see [`run_batched`]), each batch with a workspace kept from earlier calls (grown when
    /// needed, never rebuilt per batch) and this pool's threads inside the forward pass. `f`
    /// gets the head `H` of the loaded model, the padded batch, the workspace and the input
    /// index of each row; `extra` says how much head capacity a batch needs beyond its tokens
    /// (the fill-mask positions; 0 for the other heads).
    pub fn forward_batches<'s, H: Head<'s>, T: Send>(
        &'s self,
        encodings: &[Encoding],
        extra: impl Fn(&Padded) -> usize + Sync,
        f: impl Fn(&H, &Padded, &mut Workspace, &[usize]) -> Result<Vec<T>> + Sync,
    ) -> Result<Vec<T>> {
        let model = self.loaded.model();
        let head = H::select(model).ok_or_else(|| {
            Error::Model(format!(
                "this model was loaded as {:?}, which has no {} head",
                self.loaded.task(),
                H::NAME
            ))
        })?;
        self.run_batched(encodings, |padded, idx| {
            let need = extra(padded);
            self.with_workspace(model, padded, need, |ws| f(head, padded, ws, idx))
        })
    }

    /// Take a pooled workspace that holds `padded` (and `extra` head rows), or make one that
    /// holds it and every shape the replaced one held; give it back afterwards.
    fn with_workspace<R>(
        &self,
        model: &TaskModel<'_>,
        padded: &Padded,
        extra: usize,
        f: impl FnOnce(&mut Workspace) -> Result<R>,
    ) -> Result<R> {
        let fits = |(e, ws): &(usize, Workspace)| {
            let (b, s) = ws.capacity();
            b >= padded.rows && s >= padded.seq && *e >= extra
        };
        let taken = {
            let mut pool = self.workspaces.lock().unwrap_or_else(|p| p.into_inner());
            match pool.iter().position(fits) {
                Some(i) => Some(pool.swap_remove(i)),
                None => pool.pop(),
            }
        };
        let (extra_cap, mut ws) = match taken {
            Some(entry) if fits(&entry) => entry,
            other => {
                let ((b, s), e) = other.map_or(((0, 0), 0), |(e, ws)| (ws.capacity(), e));
                let (b, s, e) = (b.max(padded.rows), s.max(padded.seq), e.max(extra));
                self.workspaces_built
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (e, model.workspace(b, s, e)?)
            }
        };
        let threads = rayon::current_num_threads();
        if ws.threads() != threads {
            ws.set_parallelism(threads, &RayonJoin);
        }
        let result = f(&mut ws);
        self.workspaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((extra_cap, ws));
        result
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
