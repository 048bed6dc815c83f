#!/usr/bin/env python3
"""Checkpoints written by `bert train` load in transformers and give what `bert` gives.

For each directory given, the same inputs go through transformers (eager, CPU, float32) and
through `target/release/bert`; the largest difference is printed and must be <= 1e-4:
  --classify DIR   label probabilities (BertForSequenceClassification)
  --ner DIR        the probability of each token's predicted tag (BertForTokenClassification)
  --qa DIR         the best answer's text and p(start)·p(end) (BertForQuestionAnswering)
  --pretrain DIR   NSP logits (BertForPreTraining)
  --nsp DIR        NSP logits (BertForNextSentencePrediction, from `bert train nsp`)

    python3 -m pip install torch transformers
    cargo build --release -p bert-std
    python3 scripts/check_roundtrip.py --classify M1 --ner M2 --qa M3 --pretrain M4 --nsp M5
"""
import argparse
import json
import os
import subprocess
import sys

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BERT = os.path.join(ROOT, "target", "release", "bert")
TEXTS = ["A wonderful, moving film.", "Dull and far too long.", "Angela Merkel visited Paris.",
         "The committee met in Geneva on Monday to discuss the treaty."]


def ours(*args):
    r = subprocess.run([BERT, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"bert {' '.join(args)}: {r.stderr}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def load(cls, path):
    from transformers import AutoTokenizer
    model = cls.from_pretrained(path, attn_implementation="eager").eval()
    return model, AutoTokenizer.from_pretrained(path)


def label_index(model):
    return {label: int(i) for i, label in model.config.id2label.items()}


def classify(path):
    from transformers import BertForSequenceClassification
    model, tok = load(BertForSequenceClassification, path)
    worst = 0.0
    for text, got in zip(TEXTS, ours("classify", "--model", path, *TEXTS)):
        with torch.no_grad():
            p = model(**tok(text, return_tensors="pt")).logits.softmax(-1)[0]
        for item in got:
            i = label_index(model)[item["label"]]
            worst = max(worst, abs(item["score"] - p[i].item()))
    return worst


def ner(path):
    from transformers import BertForTokenClassification
    model, tok = load(BertForTokenClassification, path)
    worst = 0.0
    for text in TEXTS:
        got = ours("ner", "--model", path, "--aggregation", "none", text)[0]
        with torch.no_grad():
            p = model(**tok(text, return_tensors="pt")).logits.softmax(-1)[0]
        for item in got:
            i = label_index(model)[item["entity"]]
            worst = max(worst, abs(item["score"] - p[item["index"], i].item()))
    return worst


def best_span(model, tok, question, context, longest=15, top_k=1):
    """transformers' best answer to `question` in `context` and its score, scored as the QA
    pipeline scores a window: p(start)·p(end) over context tokens and [CLS] (at most `longest`
    tokens), the best `2·top_k + 10` spans kept, spans of the same text (any case) summed."""
    enc = tok(question, context, return_tensors="pt", return_offsets_mapping=True)
    offsets = enc.pop("offset_mapping")[0]
    with torch.no_grad():
        out = model(**enc)
    ctx = [i for i, s in enumerate(enc.sequence_ids(0)) if s == 1]
    allowed = torch.full_like(out.start_logits[0], -10000.0)
    allowed[ctx] = 0.0
    allowed[0] = 0.0
    ps = (out.start_logits[0] + allowed).softmax(-1)
    pe = (out.end_logits[0] + allowed).softmax(-1)
    ps[0], pe[0] = 0.0, 0.0
    n = ps.shape[0]
    spans = sorted(((-(ps[s] * pe[e]).item(), s, e) for s in range(n)
                    for e in range(s, min(n, s + longest))))[:2 * top_k + 10]
    merged = {}
    for neg, s, e in spans:
        if s in ctx and e in ctx:
            text = context[offsets[s][0]:offsets[e][1]]
            best = merged.setdefault(text.lower(), [text, 0.0])
            best[1] += -neg
    text, score = max(merged.values(), key=lambda a: a[1])
    return text, score


def qa(path):
    from transformers import BertForQuestionAnswering
    model, tok = load(BertForQuestionAnswering, path)
    cases = [("Where was Einstein born?", "Albert Einstein was born in Ulm, Germany in 1879."),
             ("Who wrote the book?", "The book was written by a retired sailor in 1952.")]
    worst = 0.0
    for q, c in cases:
        got = ours("qa", "--model", path, "--question", q, "--context", c)[0][0]
        text, score = best_span(model, tok, q, c)
        if text != got["answer"]:
            sys.exit(f"qa: transformers answers {text!r}, bert {got['answer']!r}")
        worst = max(worst, abs(score - got["score"]))
    return worst


def pretrain(path, cls="BertForPreTraining", output="seq_relationship_logits"):
    import transformers
    model, tok = load(getattr(transformers, cls), path)
    pairs = [("The cat sat on the mat.", "It was very comfortable."),
             ("The cat sat on the mat.", "The sky is blue today.")]
    worst = 0.0
    for a, b in pairs:
        got = ours("nsp", "--model", path, a, b)[0]
        with torch.no_grad():
            logits = getattr(model(**tok(a, b, return_tensors="pt")), output)[0]
        worst = max(worst, max(abs(x - y) for x, y in zip(got["logits"], logits.tolist())))
    return worst


def nsp(path):
    return pretrain(path, "BertForNextSentencePrediction", "logits")


def main():
    ap = argparse.ArgumentParser()
    for task in ("classify", "ner", "qa", "pretrain", "nsp"):
        ap.add_argument(f"--{task}")
    a = ap.parse_args()
    failed = False
    for task, check in (("classify", classify), ("ner", ner), ("qa", qa), ("pretrain", pretrain),
                        ("nsp", nsp)):
        path = getattr(a, task)
        if path:
            d = check(path)
            print(f"{task}: transformers vs bert, max abs diff {d:.2e}")
            failed |= d > 1e-4
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
