#!/usr/bin/env python3
"""Goldens for bert serve's TEI options (bert-std/tests/server_tei.rs): what sentence-transformers'
`encode` gives for all-MiniLM-L6-v2 with prompts (`prompt_name`, as `config_sentence_transformers.json`
declares them), with `include_prompt: false` in the pooling config, and cut to fewer dimensions
(`truncate_dim`, then normalized). The model folders are built here from the pinned MiniLM exactly as
the Rust test builds them (the same extra files, written from this golden), so both sides read
the same model.

Run from the repository root (needs sentence-transformers and torch):
    python3 scripts/fetch_models.py all-minilm-l6-v2
    python3 bert-std/tests/goldens/generate_tei.py
"""
import json
import os
import shutil
import tempfile

import numpy as np
from sentence_transformers import SentenceTransformer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
MODELS = os.environ.get("BERT_MODELS_DIR", os.path.join(CACHE, "bert-rs", "models"))
MINILM = os.path.join(MODELS, "all-minilm-l6-v2")
OUT = os.path.join(ROOT, "bert-std", "tests", "goldens", "tei.json")

# The files the test writes over MiniLM's own.
PROMPTS = {
    "__version__": {"sentence_transformers": "3.4.1"},
    "prompts": {"query": "query: ", "passage": "passage: "},
    "default_prompt_name": None,
    "similarity_fn_name": "cosine",
}
POOLING = {
    "word_embedding_dimension": 384,
    "pooling_mode_cls_token": False,
    "pooling_mode_mean_tokens": True,
    "pooling_mode_max_tokens": False,
    "pooling_mode_mean_sqrt_len_tokens": False,
    "include_prompt": False,
}
TEXTS = [
    "What is the capital of France?",
    "Paris is the capital and largest city of France.",
    "A man is eating food.",
]
DIMS = 128


def model_dir(tmp, name, pooling):
    d = os.path.join(tmp, name)
    shutil.copytree(MINILM, d)
    with open(os.path.join(d, "config_sentence_transformers.json"), "w") as f:
        json.dump(PROMPTS, f)
    if pooling is not None:
        with open(os.path.join(d, "1_Pooling", "config.json"), "w") as f:
            json.dump(pooling, f)
    return d


def rows(a):
    return [[float(x) for x in r] for r in np.asarray(a, dtype=np.float32)]


def main():
    with tempfile.TemporaryDirectory() as tmp:
        plain_dir = model_dir(tmp, "prompts", None)
        prompts = SentenceTransformer(plain_dir, device="cpu")
        # truncate_dim: encode's argument in newer sentence-transformers, the model's here.
        cut = SentenceTransformer(plain_dir, device="cpu", truncate_dim=DIMS)
        excluded = SentenceTransformer(model_dir(tmp, "excluded", POOLING), device="cpu")
        golden = {
            "config_sentence_transformers": PROMPTS,
            "pooling_without_prompt": POOLING,
            "texts": TEXTS,
            "dimensions": DIMS,
            "plain": rows(prompts.encode(TEXTS, normalize_embeddings=True)),
            "query": rows(prompts.encode(TEXTS, prompt_name="query", normalize_embeddings=True)),
            "truncated": rows(cut.encode(TEXTS, normalize_embeddings=True)),
            "query_excluded": rows(
                excluded.encode(TEXTS, prompt_name="query", normalize_embeddings=True)
            ),
        }
    with open(OUT, "w") as f:
        json.dump(golden, f)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
