#!/usr/bin/env python3
"""Goldens for training: the loss and every parameter's gradient of BertForSequenceClassification
(the real all-MiniLM-L6-v2 encoder under the seeded head of config_seqcls.json /
head_seqcls.safetensors), computed by torch.autograd with dropout off, on a right-padded batch
of three sentences with labels.

    python3 -m pip install torch transformers safetensors
    python3 scripts/fetch_models.py
    python3 bert-core/tests/goldens/generate_train.py

Also writes train_pretrain.safetensors (masked LM and MLM + NSP; see pretraining_goldens) and
train_dropout.safetensors (training-mode dropout with the project's masks; see dropout_goldens).

Writes train_seqcls.safetensors: "inputs.*" (I64), "loss", "logits", and for every parameter
(PyTorch's names) its gradient's L2 norm and sum ("norm.<name>", "sum.<name>") and 512 of its
values at seeded positions ("idx.<name>" I64, "val.<name>") — all 22 M values would be 90 MB;
the word-embedding gradient is kept whole for the rows the batch uses ("rows.<name>" I64,
"val.<name>").
"""
import json
import os

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import (AutoTokenizer, BertConfig, BertForQuestionAnswering,
                          BertForSequenceClassification, BertForTokenClassification)

HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
MODELS = os.environ.get("BERT_MODELS_DIR", os.path.join(CACHE, "bert-rs", "models"))
MINILM = os.path.join(MODELS, "all-minilm-l6-v2")


def main():
    config = BertConfig(**json.load(open(os.path.join(HERE, "config_seqcls.json"))))
    model = BertForSequenceClassification.from_pretrained(MINILM, config=config)
    model.load_state_dict(load_file(os.path.join(HERE, "head_seqcls.safetensors")), strict=False)
    model.eval()  # dropout off; gradients still flow
    tok = AutoTokenizer.from_pretrained(MINILM)
    texts = ["A wonderful, moving film.", "Dull.", "The plot was fine but the acting was not."]
    enc = tok(texts, padding=True, return_tensors="pt")
    inputs = {k: enc[k].to(torch.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
    labels = torch.tensor([2, 0, 1])
    out = model(**inputs, labels=labels)
    out.loss.backward()
    saved = {f"inputs.{k}": v.contiguous() for k, v in inputs.items()}
    saved["inputs.labels"] = labels
    saved["loss"] = out.loss.detach().reshape(1)
    saved["logits"] = out.logits.detach().contiguous()
    gen = torch.Generator().manual_seed(0)
    for name, p in model.named_parameters():
        g = p.grad.detach().to(torch.float64)
        saved[f"norm.{name}"] = g.norm().reshape(1).to(torch.float32)
        saved[f"sum.{name}"] = g.sum().reshape(1).to(torch.float32)
        flat = p.grad.detach().reshape(-1)
        if name.endswith("word_embeddings.weight"):
            rows = torch.unique(inputs["input_ids"])
            saved[f"rows.{name}"] = rows
            saved[f"val.{name}"] = p.grad.detach()[rows].contiguous()
        else:
            idx = torch.randint(0, flat.numel(), (min(512, flat.numel()),), generator=gen)
            saved[f"idx.{name}"] = idx
            saved[f"val.{name}"] = flat[idx].contiguous()
    saved.update(adamw_steps(config, tok))
    saved.update(token_classification(tok))
    saved.update(question_answering(tok))
    save_file(saved, os.path.join(HERE, "train_seqcls.safetensors"))
    pretraining_goldens()
    dropout_goldens()


SEED = 1234
CLASSIFIER_STREAM = 1 << 20


def splitmix64(z):
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_factors(seed, stream, shape, p):
    """bert_core::train::dropout::factor for every element of a tensor of `shape` (C order):
    1 / (1 - p) where SplitMix64(seed ^ stream * G ^ index * H) / 2^53 >= p, else 0."""
    idx = np.arange(int(np.prod(shape)), dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = splitmix64(np.uint64(seed) ^ (np.uint64(stream) * np.uint64(0x9E3779B97F4A7C15))
                       ^ (idx * np.uint64(0xD1B54A32D192ED03)))
    u = (z >> np.uint64(11)).astype(np.float64) * (1.0 / float(1 << 53))
    p32 = np.float32(p)
    scale = np.float32(1.0) / (np.float32(1.0) - p32)
    f = np.where(u >= float(p32), scale, np.float32(0.0)).astype(np.float32)
    return torch.from_numpy(f.reshape(shape))


def with_dropout_masks(layers, run):
    """Run `run()` with torch's dropout replaced by the project's masks, by call order: the
    embeddings (stream 0), then per layer the attention probabilities, the attention output and
    the feed-forward output (streams 1 + 3 l + 0/1/2), then the classifier."""
    real = torch.nn.functional.dropout
    calls = [0]

    def fake(input, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return input
        k = calls[0]
        calls[0] += 1
        stream = k if k <= 3 * layers else CLASSIFIER_STREAM
        return input * dropout_factors(SEED, stream, tuple(input.shape), p)

    torch.nn.functional.dropout = fake
    try:
        out = run()
        assert calls[0] == 3 * layers + 2, f"{calls[0]} dropout calls"
        return out
    finally:
        torch.nn.functional.dropout = real


def dropout_goldens():
    """train_dropout.safetensors: training-mode dropout (hidden 0.1, attention 0.1, classifier
    0.1, masks from the project's SplitMix64 streams, seed 1234) on sequence classification
    ("seq.") and token classification ("tok."): loss and sampled gradients."""
    tok = AutoTokenizer.from_pretrained(MINILM)
    saved = {}
    for task, prefix, cls in (("seqcls", "seq.", BertForSequenceClassification),
                              ("tokcls", "tok.", BertForTokenClassification)):
        config = BertConfig(**json.load(open(os.path.join(HERE, f"config_{task}.json"))))
        config._attn_implementation = "eager"
        model = cls.from_pretrained(MINILM, config=config, attn_implementation="eager")
        model.load_state_dict(load_file(os.path.join(HERE, f"head_{task}.safetensors")),
                              strict=False)
        model.train()
        enc = tok(["A wonderful, moving film.", "Dull.", "The plot was fine but the acting was not."],
                  padding=True, return_tensors="pt")
        inputs = {k: enc[k].to(torch.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
        if task == "seqcls":
            labels = torch.tensor([2, 0, 1])
        else:
            g = torch.Generator().manual_seed(5)
            labels = torch.randint(0, config.num_labels, inputs["input_ids"].shape, generator=g)
            labels[inputs["attention_mask"] == 0] = -100
        out = with_dropout_masks(config.num_hidden_layers,
                                 lambda: model(**inputs, labels=labels))
        out.loss.backward()
        saved.update({f"{prefix}inputs.{k}": v.contiguous() for k, v in inputs.items()})
        saved[f"{prefix}inputs.labels"] = labels.contiguous()
        saved[f"{prefix}loss"] = out.loss.detach().reshape(1)
        sampled(saved, prefix, model, inputs["input_ids"])
    save_file(saved, os.path.join(HERE, "train_dropout.safetensors"))


def pretraining_goldens():
    """train_pretrain.safetensors: BertForMaskedLM on the real SPLADE-tiny (tied decoder, legacy
    gamma/beta names) under "mlm.", and BertForPreTraining (MiniLM + the seeded heads of
    head_pretraining.safetensors, decoder tied) under "pt.": loss and sampled gradients."""
    saved = {}
    saved.update(masked_lm())
    saved.update(pretraining())
    save_file(saved, os.path.join(HERE, "train_pretrain.safetensors"))


def masked_inputs(tok, texts, pairs=None, every=4):
    """A padded batch with every `every`-th real non-special token masked: [MASK] in the input,
    the original id in the labels (-100 elsewhere)."""
    enc = tok(texts, pairs, padding=True, return_tensors="pt")
    inputs = {k: enc[k].to(torch.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
    ids = inputs["input_ids"]
    special = (ids == tok.cls_token_id) | (ids == tok.sep_token_id) | (inputs["attention_mask"] == 0)
    positions = torch.arange(ids.numel()).reshape(ids.shape)
    chosen = (~special) & (positions % every == 1)
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    inputs["input_ids"] = torch.where(chosen, torch.full_like(ids, tok.mask_token_id), ids)
    return inputs, labels


def masked_lm():
    from transformers import BertForMaskedLM
    splade = os.path.join(MODELS, "splade-tiny")
    tok = AutoTokenizer.from_pretrained(splade)
    model = BertForMaskedLM.from_pretrained(splade)
    model.eval()
    inputs, labels = masked_inputs(tok, ["The capital of France is Paris, a city of art.",
                                         "Dogs bark at night."], every=3)
    out = model(**inputs, labels=labels)
    out.loss.backward()
    saved = {f"mlm.inputs.{k}": v.contiguous() for k, v in inputs.items()}
    saved["mlm.inputs.labels"] = labels.contiguous()
    saved["mlm.loss"] = out.loss.detach().reshape(1)
    sampled(saved, "mlm.", model, inputs["input_ids"])
    return saved


def pretraining():
    from transformers import BertForPreTraining
    config = BertConfig(**json.load(open(os.path.join(HERE, "config_pretraining.json"))))
    model = BertForPreTraining.from_pretrained(MINILM, config=config)
    model.load_state_dict(load_file(os.path.join(HERE, "head_pretraining.safetensors")),
                          strict=False)
    model.tie_weights()
    model.eval()
    tok = AutoTokenizer.from_pretrained(MINILM)
    inputs, labels = masked_inputs(
        tok, ["The man went to the store.", "Penguins are flightless birds."],
        ["He bought a gallon of milk.", "The stock market fell sharply on Monday."])
    nsp = torch.tensor([0, 1])
    out = model(**inputs, labels=labels, next_sentence_label=nsp)
    out.loss.backward()
    saved = {f"pt.inputs.{k}": v.contiguous() for k, v in inputs.items()}
    saved["pt.inputs.labels"] = labels.contiguous()
    saved["pt.inputs.nsp"] = nsp
    saved["pt.loss"] = out.loss.detach().reshape(1)
    sampled(saved, "pt.", model, inputs["input_ids"])
    return saved


def sampled(saved, prefix, model, input_ids):
    """Each gradient's norm, sum and 512 seeded values (word embeddings: the used rows)."""
    gen = torch.Generator().manual_seed(0)
    for name, p in model.named_parameters():
        g = p.grad.detach()
        saved[f"{prefix}norm.{name}"] = g.to(torch.float64).norm().reshape(1).to(torch.float32)
        saved[f"{prefix}sum.{name}"] = g.to(torch.float64).sum().reshape(1).to(torch.float32)
        if name.endswith("word_embeddings.weight"):
            rows = torch.unique(input_ids)
            saved[f"{prefix}rows.{name}"] = rows
            saved[f"{prefix}val.{name}"] = g[rows].contiguous()
        else:
            flat = g.reshape(-1)
            idx = torch.randint(0, flat.numel(), (min(512, flat.numel()),), generator=gen)
            saved[f"{prefix}idx.{name}"] = idx
            saved[f"{prefix}val.{name}"] = flat[idx].contiguous()


def token_classification(tok):
    """BertForTokenClassification (MiniLM + the seeded NER head): per-token labels, -100 on
    special tokens and padding."""
    config = BertConfig(**json.load(open(os.path.join(HERE, "config_tokcls.json"))))
    model = BertForTokenClassification.from_pretrained(MINILM, config=config)
    model.load_state_dict(load_file(os.path.join(HERE, "head_tokcls.safetensors")), strict=False)
    model.eval()
    enc = tok(["Angela Merkel visited Paris in May.", "EU rejects German call."],
              padding=True, return_tensors="pt")
    inputs = {k: enc[k].to(torch.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, config.num_labels, inputs["input_ids"].shape, generator=g)
    special = (inputs["input_ids"] == tok.cls_token_id) | (inputs["input_ids"] == tok.sep_token_id)
    labels[special | (inputs["attention_mask"] == 0)] = -100
    out = model(**inputs, labels=labels)
    out.loss.backward()
    saved = {f"tok.inputs.{k}": v.contiguous() for k, v in inputs.items()}
    saved["tok.inputs.labels"] = labels.contiguous()
    saved["tok.loss"] = out.loss.detach().reshape(1)
    sampled(saved, "tok.", model, inputs["input_ids"])
    return saved


def question_answering(tok):
    """BertForQuestionAnswering (MiniLM + the seeded QA head) on two sequences of the same
    length (HF's loss also runs its softmax over padding; without padding the two agree)."""
    config = BertConfig(**json.load(open(os.path.join(HERE, "config_qa.json"))))
    model = BertForQuestionAnswering.from_pretrained(MINILM, config=config)
    model.load_state_dict(load_file(os.path.join(HERE, "head_qa.safetensors")), strict=False)
    model.eval()
    q, c = "Who wrote the book?", "The book was written by a retired sailor in 1952."
    enc = tok([q, q], [c, c], return_tensors="pt")
    inputs = {k: enc[k].to(torch.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
    starts, ends = torch.tensor([13, 9]), torch.tensor([14, 12])
    out = model(**inputs, start_positions=starts, end_positions=ends)
    out.loss.backward()
    saved = {f"qa.inputs.{k}": v.contiguous() for k, v in inputs.items()}
    saved["qa.starts"], saved["qa.ends"] = starts, ends
    saved["qa.loss"] = out.loss.detach().reshape(1)
    sampled(saved, "qa.", model, inputs["input_ids"])
    return saved


def adamw_steps(config, tok, steps=20):
    """20 steps of AdamW (weight decay 0.01 except biases and LayerNorm weights, HF's groups),
    get_linear_schedule_with_warmup (2 warm-up steps) and clip_grad_norm_(1.0), alternating two
    fixed batches: the loss before each step."""
    from transformers import get_linear_schedule_with_warmup
    model = BertForSequenceClassification.from_pretrained(MINILM, config=config)
    model.load_state_dict(load_file(os.path.join(HERE, "head_seqcls.safetensors")), strict=False)
    model.eval()
    batches = [(["A wonderful, moving film.", "Dull.", "Not bad at all."], [2, 0, 1]),
               (["I want my money back.", "Best thing I saw this year, truly."], [0, 2])]
    decay = [p for n, p in model.named_parameters()
             if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
    sched = get_linear_schedule_with_warmup(opt, 2, steps)
    out = {}
    for i, (texts, labels) in enumerate(batches):
        enc = tok(texts, padding=True, return_tensors="pt")
        for k in ("input_ids", "token_type_ids", "attention_mask"):
            out[f"batch{i}.{k}"] = enc[k].to(torch.int64).contiguous()
        out[f"batch{i}.labels"] = torch.tensor(labels)
    losses = []
    for step in range(steps):
        i = step % 2
        inputs = {k: out[f"batch{i}.{k}"] for k in ("input_ids", "token_type_ids", "attention_mask")}
        loss = model(**inputs, labels=out[f"batch{i}.labels"]).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
    out["steps.losses"] = torch.tensor(losses, dtype=torch.float32)
    return out


if __name__ == "__main__":
    main()
