#!/usr/bin/env python3
"""Generate the golden outputs that bert-core's tests compare against.

Reference: HuggingFace transformers (PyTorch, CPU, float32) on the real checkpoints that
scripts/fetch_models.py fetches. Run from the repository root:

    python3 -m pip install torch transformers safetensors
    python3 scripts/fetch_models.py
    python3 bert-core/tests/goldens/generate.py

Writes, beside this script:
- minilm.safetensors       all-MiniLM-L6-v2 BertModel: embeddings output, last_hidden_state,
                           pooler_output for a single sentence, a padded batch and a sentence pair.
- splade_tiny.safetensors  SPLADE-tiny BertForMaskedLM logits (single + padded batch).
- head_<name>.safetensors  seeded head weights (HF names) for the heads no real checkpoint here has,
- config_<name>.json       their configs (MiniLM's encoder config + the head's fields),
- heads.safetensors        those heads' outputs on the real MiniLM encoder, and the pre-training loss.
- activations.safetensors  every supported hidden_act on a grid.
- loss.safetensors         the MLM + NSP cross-entropy on random logits/labels (ignore_index -100).
Inputs (ids, type ids, mask) are stored as I64 next to the outputs under "<case>.<name>".
"""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import (AutoTokenizer, BertConfig, BertForMaskedLM,
                          BertForNextSentencePrediction, BertForPreTraining,
                          BertForQuestionAnswering, BertForSequenceClassification,
                          BertForTokenClassification, BertModel)
from transformers.activations import ACT2FN

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
MODELS = os.environ.get("BERT_MODELS_DIR", os.path.join(ROOT, "models"))
MINILM = os.path.join(MODELS, "all-minilm-l6-v2")
SPLADE = os.path.join(MODELS, "splade-tiny")

torch.set_grad_enabled(False)


def encode(tok, texts, pairs=None):
    enc = tok(texts, pairs, padding=True, truncation=True, max_length=512, return_tensors="pt")
    return {k: enc[k].to(torch.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}


def put(out, case, inputs, **tensors):
    for k, v in inputs.items():
        out[f"{case}.{k}"] = v.clone().contiguous()
    for k, v in tensors.items():
        out[f"{case}.{k}"] = v.detach().to(torch.float32).contiguous()


def minilm_goldens():
    tok = AutoTokenizer.from_pretrained(MINILM)
    model = BertModel.from_pretrained(MINILM).eval()
    cases = {
        "single": (["The cat sat on the mat."], None),
        "batch": (["Hello world!",
                   "A much longer sentence about running BERT inference in Rust on tiny devices.",
                   "Short one."], None),
        "pair": (["The cat sat on the mat.", "Where is the station?"],
                 ["It was very comfortable.", "The station is two blocks north of here."]),
    }
    out = {}
    for case, (texts, pairs) in cases.items():
        inputs = encode(tok, texts, pairs)
        o = model(**inputs)
        emb = model.embeddings(input_ids=inputs["input_ids"], token_type_ids=inputs["token_type_ids"])
        put(out, case, inputs, embeddings=emb, last_hidden_state=o.last_hidden_state,
            pooler_output=o.pooler_output)
    save_file(out, os.path.join(HERE, "minilm.safetensors"))


def splade_goldens():
    tok = AutoTokenizer.from_pretrained(SPLADE)
    model = BertForMaskedLM.from_pretrained(SPLADE).eval()
    out = {}
    for case, texts in {"single": ["The capital of France is [MASK]."],
                        "batch": ["Paris is the [MASK] of France.", "A [MASK] sat on the mat."]}.items():
        inputs = encode(tok, texts)
        put(out, case, inputs, logits=model(**inputs).logits)
    save_file(out, os.path.join(HERE, "splade_tiny.safetensors"))


def seeded_head(cls, config, seed):
    """The real MiniLM encoder under a head whose own weights are seeded random numbers."""
    model = cls.from_pretrained(MINILM, config=config).eval()
    encoder_names = {f"bert.{k}" for k in BertModel.from_pretrained(MINILM).state_dict()}
    gen = torch.Generator().manual_seed(seed)
    head = {}
    for name, p in model.named_parameters():
        if name in encoder_names or name == "bert.embeddings.word_embeddings.weight":
            continue
        if name.startswith("bert."):
            continue
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
        head[name] = p.detach().clone().contiguous()
    if hasattr(model, "cls") and hasattr(model.cls, "predictions"):
        # The decoder must be tied (weight to the word embeddings, bias to cls.predictions.bias):
        # the Rust side rebuilds it from those, as for checkpoints that do not store it.
        dec = model.cls.predictions.decoder
        assert torch.equal(dec.weight, model.bert.embeddings.word_embeddings.weight)
        assert torch.equal(dec.bias, model.cls.predictions.bias)
    # The MLM decoder is tied to the word embeddings; HF saves it, many checkpoints don't.
    head.pop("cls.predictions.decoder.weight", None)
    head.pop("cls.predictions.decoder.bias", None)
    return model, head


def heads_goldens():
    tok = AutoTokenizer.from_pretrained(MINILM)
    base = json.load(open(os.path.join(MINILM, "config.json")))
    pair = encode(tok, ["The cat sat on the mat.", "Who wrote the book?"],
                  ["It was very comfortable.", "The book was written by a retired sailor in 1952."])
    ner_labels = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    specs = {
        "pretraining": (BertForPreTraining, ["BertForPreTraining"], {}),
        "nsp": (BertForNextSentencePrediction, ["BertForNextSentencePrediction"], {}),
        "seqcls": (BertForSequenceClassification, ["BertForSequenceClassification"],
                   {"id2label": {0: "negative", 1: "neutral", 2: "positive"}}),
        "tokcls": (BertForTokenClassification, ["BertForTokenClassification"],
                   {"id2label": dict(enumerate(ner_labels))}),
        "qa": (BertForQuestionAnswering, ["BertForQuestionAnswering"], {}),
    }
    out = {}
    for seed, (name, (cls, arch, extra)) in enumerate(specs.items()):
        cfg = dict(base, architectures=arch, **extra)
        if "id2label" in extra:
            cfg["label2id"] = {v: k for k, v in extra["id2label"].items()}
        config = BertConfig(**cfg)
        model, head = seeded_head(cls, config, seed + 1)
        save_file(head, os.path.join(HERE, f"head_{name}.safetensors"))
        with open(os.path.join(HERE, f"config_{name}.json"), "w") as f:
            f.write(config.to_json_string())
        if name == "pretraining":
            single = encode(tok, ["The cat sat on the [MASK]."], ["It was very comfortable."])
            o = model(**single)
            labels = torch.full_like(single["input_ids"], -100)
            labels[0, 6] = tok.convert_tokens_to_ids("mat")
            labels[0, 2] = tok.convert_tokens_to_ids("cat")
            nsp_label = torch.tensor([0])
            lo = model(**single, labels=labels, next_sentence_label=nsp_label)
            put(out, name, single, prediction_logits=o.prediction_logits,
                seq_relationship_logits=o.seq_relationship_logits, loss=lo.loss.reshape(1))
            out[f"{name}.labels"] = labels
            out[f"{name}.next_sentence_label"] = nsp_label
        elif name == "qa":
            o = model(**pair)
            put(out, name, pair, start_logits=o.start_logits, end_logits=o.end_logits)
        else:
            put(out, name, pair, logits=model(**pair).logits)
    save_file(out, os.path.join(HERE, "heads.safetensors"))


def activation_goldens():
    x = torch.linspace(-8.0, 8.0, 257)
    out = {"x": x}
    for act in ["gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "gelu_fast", "quick_gelu",
                "mish", "tanh"]:
        try:
            out[act] = ACT2FN[act](x.clone())
        except KeyError:
            pass
    save_file(out, os.path.join(HERE, "activations.safetensors"))


def loss_goldens():
    gen = torch.Generator().manual_seed(7)
    mlm_logits = torch.randn(2, 6, 50, generator=gen) * 3
    nsp_logits = torch.randn(2, 2, generator=gen) * 3
    mlm_labels = torch.full((2, 6), -100, dtype=torch.int64)
    mlm_labels[0, 1] = 7
    mlm_labels[0, 4] = 49
    mlm_labels[1, 2] = 0
    nsp_labels = torch.tensor([0, 1])
    ce = torch.nn.CrossEntropyLoss(ignore_index=-100)
    mlm = ce(mlm_logits.view(-1, 50), mlm_labels.view(-1))
    nsp = ce(nsp_logits, nsp_labels)
    save_file({"mlm_logits": mlm_logits, "nsp_logits": nsp_logits, "mlm_labels": mlm_labels,
               "nsp_labels": nsp_labels, "mlm_loss": mlm.reshape(1), "nsp_loss": nsp.reshape(1),
               "total_loss": (mlm + nsp).reshape(1)}, os.path.join(HERE, "loss.safetensors"))


if __name__ == "__main__":
    torch.manual_seed(0)
    minilm_goldens()
    splade_goldens()
    heads_goldens()
    activation_goldens()
    loss_goldens()
    for f in sorted(os.listdir(HERE)):
        print(f, os.path.getsize(os.path.join(HERE, f)))
