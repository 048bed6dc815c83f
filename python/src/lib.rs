//! `bert_rs._bert_rs`: the pipelines of bert-std for Python (PyO3, abi3). The Python package
//! (`bert_rs/__init__.py`) wraps these classes: it turns embeddings into NumPy / Arrow arrays
//! and results into dicts. Texts come as a list of `str` or, zero-copy, as an Arrow string
//! array through the Arrow C data interface ([`arrow`]); the GIL is released while the model
//! runs; errors raise `bert_rs.BertError` with the CLI's messages.

mod arrow;

use std::path::{Path, PathBuf};

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyCapsule};

use bert_std::pipelines::classification::{ClassifyOptions, TextClassification};
use bert_std::pipelines::embeddings::{EmbedInput, EmbedOptions, SentenceEmbeddings};
use bert_std::pipelines::fill_mask::{FillMask, FillMaskOptions};
use bert_std::pipelines::ner::{Aggregation, NerOptions, TokenClassification};
use bert_std::pipelines::qa::{QaOptions, QuestionAnswering};
use bert_std::task_models::{DefaultTask, StderrProgress};
use bert_std::{LoadOptions, Pipeline};

create_exception!(
    _bert_rs,
    BertError,
    PyException,
    "An error from bert-rs (bad input, a missing or broken model, a limit)."
);

fn err(e: bert_std::Error) -> PyErr {
    BertError::new_err(e.to_string())
}

/// A model directory from what a user gave: a path, a model in the cache by name, a pinned
/// default name (fetched on first use), or the task's default.
fn resolve(model: Option<&str>, default: Option<&str>) -> PyResult<PathBuf> {
    let name =
        match (model, default) {
            (Some(m), _) => m,
            (None, Some(d)) => d,
            (None, None) => return Err(BertError::new_err(
                "this task needs a model: a model directory, or the name of one in the model cache",
            )),
        };
    let path = Path::new(name);
    if path.exists() || name.starts_with("hf:") || bert_std::task_models::student::is_named(path) {
        return bert_std::runtime::model_path(path).map_err(err);
    }
    let cached = bert_std::fetch::models_root().join(name);
    if cached.join("config.json").is_file() {
        return Ok(cached);
    }
    bert_std::fetch::ensure_model(name).map_err(err)
}

/// The model directory of a task the project trains its own model for: `model` if given, else
/// that model from the model cache (trained there by `prepare_default_model`, the `bert` CLI
/// with `--yes`, or the examples).
fn resolve_task(model: Option<&str>, task: DefaultTask) -> PyResult<PathBuf> {
    if model.is_some() {
        return resolve(model, None);
    }
    task.cached().ok_or_else(|| {
        BertError::new_err(format!(
            "no model given, and the project's own model for this task ({}: {}) is not trained \
             yet: call bert_rs.prepare_default_model(\"{}\") once (it trains it into the model \
             cache), or pass model=DIR",
            task.name(),
            task.about(),
            task_key(task)
        ))
    })
}

/// The name `prepare_default_model` takes for `task`.
fn task_key(task: DefaultTask) -> &'static str {
    match task {
        DefaultTask::Classify => "classify",
        DefaultTask::Ner => "ner",
        DefaultTask::Qa => "qa",
        DefaultTask::Nsp => "nsp",
    }
}

/// Train the project's own model for `task` ("classify", "ner", "qa" or "nsp") into the model
/// cache if it is not there yet (the examples' and the CLI's recipe; minutes, progress on
/// stderr), and return its folder; "minilm-student" distills the project's own small sentence
/// encoder (`Embedder(model="minilm-student")`; under an hour). The GIL is released meanwhile.
#[pyfunction]
fn prepare_default_model(py: Python<'_>, task: &str) -> PyResult<String> {
    if task == bert_std::task_models::student::NAME {
        let dir = py
            .allow_threads(|| bert_std::task_models::student::ensure(&mut StderrProgress::new()))
            .map_err(err)?;
        return Ok(dir.to_string_lossy().into_owned());
    }
    let task = DefaultTask::ALL
        .into_iter()
        .find(|t| task_key(*t) == task)
        .ok_or_else(|| {
            BertError::new_err(format!(
                "task {task:?}: expected \"classify\", \"ner\", \"qa\", \"nsp\" or \"minilm-student\""
            ))
        })?;
    let dir = py
        .allow_threads(|| task.ensure(&mut StderrProgress::new()))
        .map_err(err)?;
    Ok(dir.to_string_lossy().into_owned())
}

/// Load options from the Python arguments.
fn options(threads: usize, dtype: &str, device: &str) -> PyResult<LoadOptions> {
    if device != "cpu" {
        return Err(BertError::new_err(format!(
            "device {device:?}: this wheel runs on the CPU; the CUDA forward is in bert-gpu and is \
             not exposed to Python yet"
        )));
    }
    let dtype = match dtype {
        "f32" | "float32" => None,
        "f16" | "float16" => Some(bert_core::quantize::QuantDtype::F16),
        "int8" => Some(bert_core::quantize::QuantDtype::Int8),
        "bf16" | "bfloat16" => Some(bert_core::quantize::QuantDtype::BF16),
        other => {
            return Err(BertError::new_err(format!(
                "dtype {other:?}: expected \"f32\", \"f16\", \"bf16\" or \"int8\""
            )))
        }
    };
    let mut o = LoadOptions {
        dtype,
        ..LoadOptions::default()
    };
    if threads > 0 {
        o.threads = threads;
    }
    Ok(o)
}

/// Load a pipeline (`load`) from the Python arguments, with the GIL released while it loads.
fn load<T: Send>(
    py: Python<'_>,
    (model, default): (Option<&str>, Option<&str>),
    (threads, dtype, device): (usize, &str, &str),
    load: fn(&Path, LoadOptions) -> bert_std::Result<T>,
) -> PyResult<T> {
    let dir = resolve(model, default)?;
    load_dir(py, &dir, (threads, dtype, device), load)
}

/// Load a pipeline from the model directory `dir`, with the GIL released while it loads.
fn load_dir<T: Send>(
    py: Python<'_>,
    dir: &Path,
    (threads, dtype, device): (usize, &str, &str),
    load: fn(&Path, LoadOptions) -> bert_std::Result<T>,
) -> PyResult<T> {
    let o = options(threads, dtype, device)?;
    py.allow_threads(|| load(dir, o)).map_err(err)
}

fn json<T: serde::Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string(value).map_err(|e| BertError::new_err(e.to_string()))
}

/// Sentence embeddings (the model's pooling and normalization, as sentence-transformers).
#[pyclass(frozen, module = "bert_rs._bert_rs")]
struct Embedder {
    inner: SentenceEmbeddings,
}

impl Embedder {
    fn run(&self, py: Python<'_>, texts: &[&str]) -> PyResult<(Py<PyBytes>, usize, usize)> {
        self.run_with(py, texts, &EmbedOptions::default())
    }

    fn run_with(
        &self,
        py: Python<'_>,
        texts: &[&str],
        options: &EmbedOptions,
    ) -> PyResult<(Py<PyBytes>, usize, usize)> {
        let inputs: Vec<EmbedInput<'_>> = texts.iter().map(|t| EmbedInput::Text(t)).collect();
        let rows = py
            .allow_threads(|| self.inner.embed_inputs(&inputs, options))
            .map_err(err)?;
        let dim = rows.first().map_or(self.dim(), Vec::len);
        let mut bytes = Vec::with_capacity(rows.len() * dim * 4);
        for r in &rows {
            bytes.extend(r.iter().flat_map(|x| x.to_le_bytes()));
        }
        Ok((PyBytes::new(py, &bytes).unbind(), rows.len(), dim))
    }
}

#[pymethods]
impl Embedder {
    #[new]
    #[pyo3(signature = (model=None, threads=0, dtype="f32", device="cpu"))]
    fn new(
        py: Python<'_>,
        model: Option<&str>,
        threads: usize,
        dtype: &str,
        device: &str,
    ) -> PyResult<Self> {
        let inner = load(
            py,
            (model, Some(bert_std::fetch::MINILM)),
            (threads, dtype, device),
            |dir, o| SentenceEmbeddings::load(dir, o),
        )?;
        Ok(Embedder { inner })
    }

    /// The embedding width.
    #[getter]
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    /// Embed a list of `str`: (little-endian f32 bytes, rows, dim).
    fn embed_list(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
    ) -> PyResult<(Py<PyBytes>, usize, usize)> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.run(py, &refs)
    }

    /// Embed a list of texts with one of the model's prompts (by name; `None`: its default
    /// prompt, if any), as sentence-transformers' `encode(prompt_name=...)`.
    #[pyo3(signature = (texts, prompt_name=None))]
    fn embed_prompted(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        prompt_name: Option<String>,
    ) -> PyResult<(Py<PyBytes>, usize, usize)> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let options = EmbedOptions {
            prompt_name,
            ..EmbedOptions::default()
        };
        self.run_with(py, &refs, &options)
    }

    /// Embed an Arrow string array given as the C data interface's capsules (from
    /// `__arrow_c_array__`), without copying the strings.
    fn embed_arrow(
        &self,
        py: Python<'_>,
        schema: &Bound<'_, PyCapsule>,
        array: &Bound<'_, PyCapsule>,
    ) -> PyResult<(Py<PyBytes>, usize, usize)> {
        let texts = arrow::strings(schema, array)?;
        self.run(py, &texts)
    }
}

/// Fill-mask: candidates for every `[MASK]`.
#[pyclass(frozen, module = "bert_rs._bert_rs")]
struct FillMasker {
    inner: FillMask,
}

#[pymethods]
impl FillMasker {
    #[new]
    #[pyo3(signature = (model=None, threads=0, dtype="f32", device="cpu"))]
    fn new(
        py: Python<'_>,
        model: Option<&str>,
        threads: usize,
        dtype: &str,
        device: &str,
    ) -> PyResult<Self> {
        let inner = load(
            py,
            (model, Some(bert_std::fetch::SPLADE_TINY)),
            (threads, dtype, device),
            |dir, o| FillMask::load(dir, o),
        )?;
        Ok(FillMasker { inner })
    }

    /// The results as JSON (one list of candidates per mask, per text).
    #[pyo3(signature = (texts, top_k=5))]
    fn run_json(&self, py: Python<'_>, texts: Vec<String>, top_k: usize) -> PyResult<String> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let o = FillMaskOptions { top_k };
        let out = py
            .allow_threads(|| self.inner.run(&refs, &o))
            .map_err(err)?;
        json(&out)
    }
}

/// Text (or text-pair) classification.
#[pyclass(frozen, module = "bert_rs._bert_rs")]
struct Classifier {
    inner: TextClassification,
}

#[pymethods]
impl Classifier {
    #[new]
    #[pyo3(signature = (model=None, threads=0, dtype="f32", device="cpu"))]
    fn new(
        py: Python<'_>,
        model: Option<&str>,
        threads: usize,
        dtype: &str,
        device: &str,
    ) -> PyResult<Self> {
        let dir = resolve_task(model, DefaultTask::Classify)?;
        let inner = load_dir(py, &dir, (threads, dtype, device), |dir, o| {
            TextClassification::load(dir, o)
        })?;
        Ok(Classifier { inner })
    }

    /// Labels with scores per text, best first, as JSON.
    #[pyo3(signature = (texts, pairs=None, top_k=None))]
    fn run_json(
        &self,
        py: Python<'_>,
        texts: Vec<String>,
        pairs: Option<Vec<String>>,
        top_k: Option<usize>,
    ) -> PyResult<String> {
        if pairs.as_ref().is_some_and(|p| p.len() != texts.len()) {
            return Err(BertError::new_err("pairs must have one entry per text"));
        }
        let inputs: Vec<(&str, Option<&str>)> = texts
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), pairs.as_ref().map(|p| p[i].as_str())))
            .collect();
        let o = ClassifyOptions {
            top_k,
            ..Default::default()
        };
        let out = py
            .allow_threads(|| self.inner.run(&inputs, &o))
            .map_err(err)?;
        json(&out)
    }
}

/// Token classification (NER).
#[pyclass(frozen, module = "bert_rs._bert_rs")]
struct TokenClassifier {
    inner: TokenClassification,
}

#[pymethods]
impl TokenClassifier {
    #[new]
    #[pyo3(signature = (model=None, threads=0, dtype="f32", device="cpu"))]
    fn new(
        py: Python<'_>,
        model: Option<&str>,
        threads: usize,
        dtype: &str,
        device: &str,
    ) -> PyResult<Self> {
        let dir = resolve_task(model, DefaultTask::Ner)?;
        let inner = load_dir(py, &dir, (threads, dtype, device), |dir, o| {
            TokenClassification::load(dir, o)
        })?;
        Ok(TokenClassifier { inner })
    }

    /// Entities per text as JSON; `aggregation` as HF's (`none`, `simple`, `first`,
    /// `average`, `max`).
    #[pyo3(signature = (texts, aggregation="simple"))]
    fn run_json(&self, py: Python<'_>, texts: Vec<String>, aggregation: &str) -> PyResult<String> {
        let aggregation = match aggregation {
            "none" => Aggregation::None,
            "simple" => Aggregation::Simple,
            "first" => Aggregation::First,
            "average" => Aggregation::Average,
            "max" => Aggregation::Max,
            other => {
                return Err(BertError::new_err(format!(
                    "aggregation {other:?}: expected none, simple, first, average or max"
                )))
            }
        };
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let o = NerOptions { aggregation };
        let out = py
            .allow_threads(|| self.inner.run(&refs, &o))
            .map_err(err)?;
        json(&out)
    }
}

/// Extractive question answering.
#[pyclass(frozen, module = "bert_rs._bert_rs")]
struct QuestionAnswerer {
    inner: QuestionAnswering,
}

#[pymethods]
impl QuestionAnswerer {
    #[new]
    #[pyo3(signature = (model=None, threads=0, dtype="f32", device="cpu"))]
    fn new(
        py: Python<'_>,
        model: Option<&str>,
        threads: usize,
        dtype: &str,
        device: &str,
    ) -> PyResult<Self> {
        let dir = resolve_task(model, DefaultTask::Qa)?;
        let inner = load_dir(py, &dir, (threads, dtype, device), |dir, o| {
            QuestionAnswering::load(dir, o)
        })?;
        Ok(QuestionAnswerer { inner })
    }

    /// The best answers per (question, context), as JSON.
    #[pyo3(signature = (questions, contexts, top_k=1))]
    fn run_json(
        &self,
        py: Python<'_>,
        questions: Vec<String>,
        contexts: Vec<String>,
        top_k: usize,
    ) -> PyResult<String> {
        if questions.len() != contexts.len() {
            return Err(BertError::new_err(
                "questions and contexts must have the same length",
            ));
        }
        let inputs: Vec<(&str, &str)> = questions
            .iter()
            .zip(&contexts)
            .map(|(q, c)| (q.as_str(), c.as_str()))
            .collect();
        let o = QaOptions {
            top_k,
            ..QaOptions::default()
        };
        let out = py
            .allow_threads(|| self.inner.run(&inputs, &o))
            .map_err(err)?;
        json(&out)
    }
}

#[pymodule]
fn _bert_rs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("BertError", m.py().get_type::<BertError>())?;
    m.add_class::<Embedder>()?;
    m.add_class::<FillMasker>()?;
    m.add_class::<Classifier>()?;
    m.add_class::<TokenClassifier>()?;
    m.add_class::<QuestionAnswerer>()?;
    m.add_function(wrap_pyfunction!(prepare_default_model, m)?)?;
    Ok(())
}
