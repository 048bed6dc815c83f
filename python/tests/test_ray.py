"""Embedding a corpus on Ray Data (a local two-CPU instance, loopback only): every row comes
back once, equal to a direct call; a worker killed mid-run is replaced, its batch retried, and
the output is still complete and exact."""
import os
import sys
import tempfile

import numpy as np
import pyarrow as pa
import pytest

import bert_rs

ray = pytest.importorskip("ray")
# The test's own classes travel to the workers by value (the workers cannot import this file).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1", configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def embed_with_ray(texts, callable_class, kwargs, batch_size=128):
    items = [{"id": i, "text": t} for i, t in enumerate(texts)]
    ds = ray.data.from_items(items, override_num_blocks=8)
    out = ds.map_batches(callable_class, fn_constructor_kwargs=kwargs, batch_format="pyarrow",
                         batch_size=batch_size, concurrency=2, num_cpus=1)
    table = pa.concat_tables([ray.get(r) for r in out.to_arrow_refs()])
    ids = table.column("id").to_numpy()
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    return ids, vectors


def check_complete_and_exact(texts, ids, vectors):
    assert len(ids) == len(texts), "rows lost or duplicated"
    assert sorted(ids.tolist()) == list(range(len(texts))), "rows lost or duplicated"
    direct = bert_rs.Embedder(threads=2)
    want = np.concatenate([direct.embed(texts[i:i + 128]) for i in range(0, len(texts), 128)])
    got = vectors[np.argsort(ids)].astype(np.float32)
    diff = float(np.abs(got - want).max())
    assert diff <= 1e-6, diff
    return diff


def test_ray_data_embeds_every_row_once_and_exactly(local_ray, passages):
    texts = passages[:3000]
    ids, vectors = embed_with_ray(texts, bert_rs.EmbedBatch, {"column": "text", "threads": 1})
    diff = check_complete_and_exact(texts, ids, vectors)
    print(f"3000 rows through Ray Data: max abs diff vs a direct call {diff:.1e}")


class DiesOnce(bert_rs.EmbedBatch):
    """Kills its own worker process on its first batch, once per test (a marker file)."""

    def __init__(self, marker, **kwargs):
        super().__init__(**kwargs)
        self.marker = marker

    def __call__(self, batch):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return super().__call__(batch)


def test_a_killed_worker_is_retried_and_nothing_is_lost(local_ray, passages):
    texts = passages[:1000]
    marker = os.path.join(tempfile.mkdtemp(), "died")
    ids, vectors = embed_with_ray(texts, DiesOnce,
                                  {"marker": marker, "column": "text", "threads": 1})
    assert os.path.exists(marker), "the worker never died"
    check_complete_and_exact(texts, ids, vectors)
