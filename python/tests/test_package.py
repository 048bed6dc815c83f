"""The Python package: results equal to the reference, Arrow input without a copy, errors as
BertError, and the GIL released while the model runs."""
import json
import threading
import time

import numpy as np
import pyarrow as pa
import pytest

import bert_rs


@pytest.fixture(scope="module")
def embedder():
    return bert_rs.Embedder(threads=2)


def test_embeddings_match_sentence_transformers(embedder, st_goldens):
    texts = [r["text"] for r in st_goldens]
    want = np.array([r["embedding"] for r in st_goldens], dtype=np.float32)
    got = embedder.embed(texts)
    assert got.shape == (len(texts), 384) and got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-4
    # The same through Arrow (utf8, large_utf8, chunked), bit for bit.
    assert np.array_equal(embedder.embed(pa.array(texts)), got)
    assert np.array_equal(embedder.embed(pa.array(texts, type=pa.large_string())), got)
    assert np.array_equal(embedder.embed(pa.chunked_array([texts[:2], texts[2:]])), got)
    sliced = pa.array(["x"] + texts)[1:]
    assert np.array_equal(embedder.embed(sliced), got)
    out = embedder.embed_arrow(pa.array(texts))
    assert out.type == pa.list_(pa.float32(), 384) and len(out) == len(texts)


def test_bad_input_raises_bert_error(embedder):
    with pytest.raises(bert_rs.BertError, match="null"):
        embedder.embed(pa.array(["a", None]))
    with pytest.raises(bert_rs.BertError, match="string array"):
        embedder.embed(pa.array([1, 2]))
    with pytest.raises(bert_rs.BertError, match="list of texts"):
        embedder.embed("one string")
    with pytest.raises(bert_rs.BertError, match="dtype"):
        bert_rs.Embedder(dtype="f64")
    with pytest.raises(bert_rs.BertError, match="device"):
        bert_rs.Embedder(device="cuda")
    with pytest.raises(bert_rs.BertError):
        bert_rs.Classifier("/no/such/model")
    assert embedder.embed([]).shape == (0, 384)


def test_fill_mask_and_int8(embedder, st_goldens):
    fm = bert_rs.FillMask()
    out = fm.run(["Paris is the [MASK] of France."], top_k=2)
    assert len(out) == 1 and len(out[0]) == 1
    assert [c["token_str"] for c in out[0][0]["candidates"]] == ["city", "mountains"]
    texts = [r["text"] for r in st_goldens]
    q = bert_rs.Embedder(dtype="int8", threads=2).embed(texts)
    full = embedder.embed(texts)
    cos = (q * full).sum(1) / np.linalg.norm(q, axis=1) / np.linalg.norm(full, axis=1)
    assert cos.min() > 0.99
    # bf16 compute: bf16 products, f32 sums; the bound the Rust test holds on 100 sentences.
    b = bert_rs.Embedder(dtype="bf16", threads=2).embed(texts)
    cos = (b * full).sum(1) / np.linalg.norm(b, axis=1) / np.linalg.norm(full, axis=1)
    assert cos.min() >= 0.9999 and not np.array_equal(b, full)


def test_the_gil_is_released_while_embedding(embedder, passages):
    texts = passages[:300]
    ticks = [0]
    done = threading.Event()

    def work():
        embedder.embed(texts)
        done.set()

    t = threading.Thread(target=work)
    start = time.perf_counter()
    t.start()
    while not done.is_set():
        ticks[0] += 1
    t.join()
    elapsed = time.perf_counter() - start
    # A held GIL would stop this loop for the whole call (seconds); released, it spins on.
    assert elapsed > 0.2 and ticks[0] > 10_000, (elapsed, ticks[0])


def test_task_classes_without_a_model_point_to_the_default_to_prepare(tmp_path, monkeypatch):
    # An empty model cache: the project's own task models are not trained there.
    monkeypatch.setenv("BERT_MODELS_DIR", str(tmp_path))
    for cls in (bert_rs.Classifier, bert_rs.TokenClassifier, bert_rs.QuestionAnswerer):
        with pytest.raises(bert_rs.BertError, match="prepare_default_model"):
            cls()
    with pytest.raises(bert_rs.BertError, match="expected"):
        bert_rs.prepare_default_model("no-such-task")


def test_encode_matches_sentence_transformers(tmp_path):
    """encode(prompt_name=, truncate_dim=, normalize_embeddings=) against sentence-transformers'
    own on all-MiniLM-L6-v2 with two prompts (bert-std/tests/goldens/tei.json)."""
    import os
    import shutil
    from conftest import MODELS, ROOT
    with open(os.path.join(ROOT, "bert-std", "tests", "goldens", "tei.json")) as f:
        golden = json.load(f)
    model = tmp_path / "model"
    shutil.copytree(os.path.join(MODELS, "all-minilm-l6-v2"), model)
    (model / "config_sentence_transformers.json").write_text(
        json.dumps(golden["config_sentence_transformers"]))
    e = bert_rs.Embedder(str(model), threads=2)
    texts = golden["texts"]

    def close(got, want):
        return np.abs(np.asarray(got) - np.asarray(want, dtype=np.float32)).max() <= 1e-4

    assert close(e.encode(texts, normalize_embeddings=True), golden["plain"])
    assert close(e.encode(texts, prompt_name="query", normalize_embeddings=True), golden["query"])
    dims = golden["dimensions"]
    cut = e.encode(texts, truncate_dim=dims, normalize_embeddings=True, batch_size=2,
                   show_progress_bar=True)
    assert cut.shape == (len(texts), dims) and close(cut, golden["truncated"])
    one = e.encode(texts[0])
    assert one.shape == (384,) and close(one, golden["plain"][0])
    listed = e.encode(texts, convert_to_numpy=False)
    assert isinstance(listed, list) and len(listed) == len(texts)
    with pytest.raises(bert_rs.BertError, match="prompt"):
        e.encode(texts, prompt_name="nope")


def test_a_distilled_student_matches_sentence_transformers(tmp_path, monkeypatch):
    """The student `bert train distill` wrote (bert-std/tests/goldens/distill: encoder, mean
    pooling, a Dense projection to 384, normalization) gives sentence-transformers' embeddings;
    model="minilm-student" names the project's own student and says how to make it."""
    import os
    from conftest import ROOT
    golden = os.path.join(ROOT, "bert-std", "tests", "goldens", "distill")
    with open(os.path.join(golden, "sentence_transformers.json")) as f:
        want = np.asarray(json.load(f)["embeddings"], dtype=np.float32)
    with open(os.path.join(golden, "command.json")) as f:
        texts = json.load(f)["texts"]
    e = bert_rs.Embedder(os.path.join(golden, "student"), threads=2)
    assert e.dim == 384
    got = e.encode(texts)
    assert np.abs(got - want).max() <= 1e-5
    monkeypatch.setenv("BERT_MODELS_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(bert_rs.BertError, match="prepare_default_model"):
        bert_rs.Embedder("minilm-student")
