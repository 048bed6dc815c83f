"""bert-rs from Python: BERT-family encoders in Rust, exact to HuggingFace transformers.

    import bert_rs
    e = bert_rs.Embedder()                      # all-MiniLM-L6-v2, fetched on first use
    vectors = e.embed(["first text", "second"])  # numpy float32 [2, 384]

Every class takes ``model`` (a model directory, a model name in the cache, or a pinned default
name), ``threads`` (0: all cores), ``dtype`` ("f32", "f16", "bf16", "int8") and ``device`` ("cpu").
Batch methods take a list of ``str`` or a pyarrow string array (read without a copy); the GIL is
released while the model runs. Errors raise :class:`BertError` with the CLI's messages.

With no ``model``, :class:`Classifier`, :class:`TokenClassifier` and :class:`QuestionAnswerer`
use the project's own task models (the same as the ``bert`` CLI's and the examples'), which are
trained once into the model cache: ``bert_rs.prepare_default_model("classify")`` (or ``"ner"``,
``"qa"``, ``"nsp"``) trains one, in minutes, and returns its folder.

For cluster engines, :class:`EmbedBatch` is a stateful callable for Ray Data's ``map_batches``
(``batch_format="pyarrow"``), and works the same on any table of pyarrow batches.
"""
import json
import sys

import numpy as np

from ._bert_rs import BertError
from ._bert_rs import Classifier as _Classifier
from ._bert_rs import Embedder as _Embedder
from ._bert_rs import FillMasker as _FillMasker
from ._bert_rs import QuestionAnswerer as _QuestionAnswerer
from ._bert_rs import TokenClassifier as _TokenClassifier
from ._bert_rs import prepare_default_model

__all__ = ["BertError", "Embedder", "FillMask", "Classifier", "TokenClassifier",
           "QuestionAnswerer", "EmbedBatch", "prepare_default_model"]


def _texts(texts):
    if isinstance(texts, str):
        raise BertError("give a list of texts, not one str")
    return [t for t in texts]


class Embedder:
    """Sentence embeddings with the model's pooling and normalization (sentence-transformers)."""

    def __init__(self, model=None, *, threads=0, dtype="f32", device="cpu"):
        self._inner = _Embedder(model, threads, dtype, device)

    @property
    def dim(self):
        """The embedding width."""
        return self._inner.dim

    def embed(self, texts):
        """Embeddings of ``texts`` (a list of str, or a pyarrow string Array / ChunkedArray) as a
        float32 NumPy array ``[len(texts), dim]``."""
        if hasattr(texts, "chunks"):  # a pyarrow ChunkedArray
            parts = [self.embed(c) for c in texts.chunks]
            return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        if hasattr(texts, "__arrow_c_array__"):
            schema, array = texts.__arrow_c_array__()
            raw, rows, dim = self._inner.embed_arrow(schema, array)
        else:
            raw, rows, dim = self._inner.embed_list(_texts(texts))
        return np.frombuffer(raw, dtype=np.float32).reshape(rows, dim)

    def encode(self, sentences, batch_size=32, show_progress_bar=False, convert_to_numpy=True,
               normalize_embeddings=False, prompt_name=None, truncate_dim=None):
        """sentence-transformers' ``SentenceTransformer.encode``, with the same results on the same
        model: one str gives one vector, a list a ``[n, dim]`` float32 array (or, with
        ``convert_to_numpy=False``, a list of 1-D arrays). ``prompt_name`` is one of the model's
        prompts (``config_sentence_transformers.json``; ``None``: its default prompt, if any);
        ``truncate_dim`` keeps the first values (Matryoshka); ``normalize_embeddings`` scales
        to unit length after that. ``batch_size`` texts go to the model at a time;
        ``show_progress_bar`` reports the batches on stderr (with tqdm when it is installed)."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else _texts(sentences)
        if batch_size < 1:
            raise BertError("batch_size must be at least 1")
        if truncate_dim is not None and not 1 <= truncate_dim <= self.dim:
            raise BertError(f"truncate_dim must be in 1..={self.dim}")
        starts = range(0, len(texts), batch_size)
        if show_progress_bar:
            try:
                from tqdm.auto import tqdm
                starts = tqdm(starts, desc="Batches")
            except ImportError:
                pass
        parts = []
        for i, start in enumerate(starts):
            raw, rows, dim = self._inner.embed_prompted(texts[start:start + batch_size],
                                                        prompt_name)
            parts.append(np.frombuffer(raw, dtype=np.float32).reshape(rows, dim))
            if show_progress_bar and isinstance(starts, range):
                print(f"\rBatches {i + 1}/{len(starts)}", end="", file=sys.stderr)
        if show_progress_bar and isinstance(starts, range):
            print(file=sys.stderr)
        out = np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)
        if truncate_dim is not None:
            out = np.ascontiguousarray(out[:, :truncate_dim])
        if normalize_embeddings:
            norms = np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
            out = (out / norms).astype(np.float32)
        if single:
            return out[0]
        return out if convert_to_numpy else list(out)

    def embed_arrow(self, texts):
        """The same as a pyarrow ``FixedSizeListArray`` of float32 (one list per text)."""
        import pyarrow as pa
        vectors = self.embed(texts)
        return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


class FillMask:
    """Candidates for every ``[MASK]`` (default model: SPLADE-tiny)."""

    def __init__(self, model=None, *, threads=0, dtype="f32", device="cpu"):
        self._inner = _FillMasker(model, threads, dtype, device)

    def run(self, texts, top_k=5):
        """Per text, per mask: a list of ``{"score", "token", "token_str", "sequence"}``."""
        return [r["masks"] for r in json.loads(self._inner.run_json(_texts(texts), top_k))]


class Classifier:
    """Text or text-pair classification (a ``...ForSequenceClassification`` model; default: the
    project's own IMDB sentiment model, see :func:`prepare_default_model`)."""

    def __init__(self, model=None, *, threads=0, dtype="f32", device="cpu"):
        self._inner = _Classifier(model, threads, dtype, device)

    def run(self, texts, pairs=None, top_k=None):
        """Per text: ``[{"label", "score"}, ...]``, best first (all labels unless ``top_k``)."""
        pairs = None if pairs is None else _texts(pairs)
        return json.loads(self._inner.run_json(_texts(texts), pairs, top_k))


class TokenClassifier:
    """Token classification (NER) with HF's aggregation strategies (default model: the project's
    own CoNLL-2003 one, see :func:`prepare_default_model`)."""

    def __init__(self, model=None, *, threads=0, dtype="f32", device="cpu"):
        self._inner = _TokenClassifier(model, threads, dtype, device)

    def run(self, texts, aggregation="simple"):
        """Per text: the entities (``entity_group`` with aggregation, ``entity`` without)."""
        return json.loads(self._inner.run_json(_texts(texts), aggregation))


class QuestionAnswerer:
    """Extractive question answering (a ``...ForQuestionAnswering`` model; default: the project's
    own DisflQA/NarrativeQA one, see :func:`prepare_default_model`)."""

    def __init__(self, model=None, *, threads=0, dtype="f32", device="cpu"):
        self._inner = _QuestionAnswerer(model, threads, dtype, device)

    def run(self, questions, contexts, top_k=1):
        """Per question: ``[{"score", "start", "end", "answer"}, ...]``, best first."""
        return json.loads(self._inner.run_json(_texts(questions), _texts(contexts), top_k))


class EmbedBatch:
    """A stateful callable that adds an embedding column to a pyarrow table: the model loads
    once per worker (Ray Data actor), then every batch is embedded without copying its texts.

        ds.map_batches(EmbedBatch, fn_constructor_kwargs={"column": "text"},
                       batch_format="pyarrow", concurrency=2, num_cpus=1)
    """

    def __init__(self, model=None, column="text", output="embedding", threads=0, dtype="f32",
                 device="cpu"):
        self.embedder = Embedder(model, threads=threads, dtype=dtype, device=device)
        self.column, self.output = column, output

    def __call__(self, batch):
        vectors = self.embedder.embed_arrow(batch.column(self.column))
        return batch.append_column(self.output, vectors)
