#!/usr/bin/env python3
"""Training goldens for the families other than BERT: the loss and every parameter's
gradient, by torch.autograd (dropout off, `model.eval()`), of the seeded tiny task models that
generate_families.py wrote under families/ (RoBERTa, XLM-RoBERTa, ELECTRA, DistilBERT; sequence
and token classification and the masked LM on a right-padded batch, question answering on an unpadded
one, since HF's QA loss also runs its softmax over padding); and ModernBERT's pre-norm block
(`pre_norm`: its heads, both poolings, dropout off as its configs default).

    python3 -m pip install torch transformers safetensors
    python3 bert-core/tests/goldens/generate_train_families.py

With dropout too (`<family>-<head>-dropout` cases, sequence and token classification and QA,
every dropout 0.1): torch's dropout is replaced by the project's masks (SplitMix64 streams, seed
1234), by call order, where each family's modules call it: the embeddings, per layer the
attention probabilities, the attention output (not DistilBERT) and the feed-forward output, then
the head (RoBERTa's, XLM-R's and ELECTRA's classification heads also before their dense layer;
no QA head but DistilBERT's drops out).

Writes train_families.safetensors: for each "<family>-<head>" case, "<case>.inputs.*" (I64),
the labels ("<case>.labels", or "<case>.starts" / "<case>.ends"), "<case>.loss", and per
parameter (PyTorch's names) its gradient's norm, sum and sampled values, as
generate_train.py's `sampled` writes them (prefix "<case>.").
"""
import os

import torch
from safetensors.torch import save_file
from transformers import (AutoModelForMaskedLM, AutoModelForQuestionAnswering,
                          AutoModelForSequenceClassification, AutoModelForTokenClassification)

from generate_train import CLASSIFIER_STREAM, SEED, dropout_factors, sampled

HERE = os.path.dirname(os.path.abspath(__file__))
FAMILIES = ("roberta", "xlm-roberta", "electra", "distilbert")
# Token types where the family has them: ELECTRA's tiny config has three.
TYPES = {"roberta": 1, "xlm-roberta": 1, "electra": 3}


def inputs(family, model, lengths, seq, seed):
    """Random ids (never a special id below 3) right-padded with the model's pad id."""
    g = torch.Generator().manual_seed(seed)
    pad = model.config.pad_token_id
    ids = torch.full((len(lengths), seq), pad, dtype=torch.int64)
    mask = torch.zeros((len(lengths), seq), dtype=torch.int64)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randint(3, model.config.vocab_size, (n,), generator=g)
        mask[b, :n] = 1
    types = torch.zeros_like(ids)
    if TYPES.get(family, 1) > 1:
        types = (torch.arange(seq) >= seq // 2).to(torch.int64).expand(len(lengths), seq) * mask
    return {"input_ids": ids, "token_type_ids": types.contiguous(), "attention_mask": mask}


def save_case(saved, case, model, enc, out, **targets):
    """A case's inputs, targets ("labels", or "starts" / "ends"), loss and sampled gradients."""
    out.loss.backward()
    for k, v in enc.items():
        saved[f"{case}.inputs.{k}"] = v.contiguous()
    for k, v in targets.items():
        saved[f"{case}.{k}"] = v.contiguous()
    saved[f"{case}.loss"] = out.loss.detach().reshape(1)
    sampled(saved, f"{case}.", model, enc["input_ids"])


def run(model, family, enc, **labels):
    args = dict(enc)
    if family in ("distilbert", "modernbert"):
        del args["token_type_ids"]
    return model(**args, **labels)


def token_classification(family, saved, **kw):
    case = f"{family}-tokcls"
    model = AutoModelForTokenClassification.from_pretrained(
        os.path.join(HERE, "families", case), **kw)
    model.eval()
    enc = inputs(family, model, [10, 7], 10, seed=11)
    g = torch.Generator().manual_seed(12)
    labels = torch.randint(0, model.config.num_labels, enc["input_ids"].shape, generator=g)
    labels[enc["attention_mask"] == 0] = -100
    labels[0, 3] = -100
    out = run(model, family, enc, labels=labels)
    save_case(saved, case, model, enc, out, labels=labels)


def sequence_classification(family, saved, case=None, **kw):
    model = AutoModelForSequenceClassification.from_pretrained(
        os.path.join(HERE, "families", f"{family}-seqcls"), **kw)
    case = case or f"{family}-seqcls"
    model.eval()
    enc = inputs(family, model, [10, 6, 8], 10, seed=14)
    labels = torch.tensor([1, 0, model.config.num_labels - 1])
    out = run(model, family, enc, labels=labels)
    save_case(saved, case, model, enc, out, labels=labels)


def masked_lm(family, saved, **kw):
    """The family's masked-LM head (decoder tied to the word embeddings): labels at a few
    positions of a right-padded batch, -100 elsewhere."""
    case = f"{family}-mlm"
    model = AutoModelForMaskedLM.from_pretrained(os.path.join(HERE, "families", case), **kw)
    model.eval()
    enc = inputs(family, model, [10, 7], 10, seed=18)
    g = torch.Generator().manual_seed(19)
    labels = torch.full_like(enc["input_ids"], -100)
    for b, positions in enumerate(([1, 4, 8], [2, 5])):
        for p in positions:
            labels[b, p] = int(torch.randint(3, model.config.vocab_size, (1,), generator=g))
    out = run(model, family, enc, labels=labels)
    save_case(saved, case, model, enc, out, labels=labels)


def question_answering(family, saved, **kw):
    case = f"{family}-qa"
    model = AutoModelForQuestionAnswering.from_pretrained(
        os.path.join(HERE, "families", case), **kw)
    model.eval()
    enc = inputs(family, model, [9, 9], 9, seed=13)
    starts, ends = torch.tensor([2, 5]), torch.tensor([4, 5])
    out = run(model, family, enc, start_positions=starts, end_positions=ends)
    save_case(saved, case, model, enc, out, starts=starts, ends=ends)


CLASSIFIER_INPUT_STREAM = CLASSIFIER_STREAM + 1
DROPOUT = {"hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
           "classifier_dropout": 0.1}
DISTILBERT_DROPOUT = {"dropout": 0.1, "attention_dropout": 0.1, "seq_classif_dropout": 0.1,
                      "qa_dropout": 0.1}
# ModernBERT's four, each its own probability (so that a mask drawn with the wrong one fails).
MODERNBERT_DROPOUT = {"embedding_dropout": 0.05, "attention_dropout": 0.1, "mlp_dropout": 0.15,
                      "classifier_dropout": 0.2}


def streams(family, layers, head):
    """The project's dropout stream of each of torch's dropout calls, in call order."""
    out = [0]
    for l in range(layers):
        b = 1 + 3 * l
        out += [b, b + 2] if family == "distilbert" else [b, b + 1, b + 2]
    if head == "seqcls" and family not in ("distilbert", "modernbert"):
        out.append(CLASSIFIER_INPUT_STREAM)
    if head == "qa" and family not in ("distilbert", "modernbert"):
        return out  # no dropout before qa_outputs but DistilBERT's and ModernBERT's
    return out + [CLASSIFIER_STREAM]


def with_masks(order, run):
    real = torch.nn.functional.dropout
    calls = [0]

    def fake(input, p=0.5, training=True, inplace=False):
        if not training or p == 0:
            return input
        stream = order[calls[0]]
        calls[0] += 1
        return input * dropout_factors(SEED, stream, tuple(input.shape), p)

    torch.nn.functional.dropout = fake
    try:
        out = run()
        assert calls[0] == len(order), f"{calls[0]} dropout calls, {len(order)} expected"
        return out
    finally:
        torch.nn.functional.dropout = real


def with_dropout(family, head, saved):
    case = f"{family}-{head}"
    cls = {"seqcls": AutoModelForSequenceClassification,
           "tokcls": AutoModelForTokenClassification,
           "qa": AutoModelForQuestionAnswering}[head]
    extra = {"distilbert": DISTILBERT_DROPOUT, "modernbert": MODERNBERT_DROPOUT}.get(family, DROPOUT)
    model = cls.from_pretrained(os.path.join(HERE, "families", case),
                                attn_implementation="eager", **extra)
    model.train()
    if head == "qa":
        enc = inputs(family, model, [9, 9], 9, seed=17)
        labels = {"start_positions": torch.tensor([1, 6]), "end_positions": torch.tensor([3, 6])}
        order = streams(family, model.config.num_hidden_layers, head)
        out = with_masks(order, lambda: run(model, family, enc, **labels))
        save_case(saved, f"{case}-dropout", model, enc, out,
                  starts=labels["start_positions"], ends=labels["end_positions"])
        return
    enc = inputs(family, model, [10, 6, 8], 10, seed=15)
    if head == "seqcls":
        labels = torch.tensor([1, 0, model.config.num_labels - 1])
    else:
        g = torch.Generator().manual_seed(16)
        labels = torch.randint(0, model.config.num_labels, enc["input_ids"].shape, generator=g)
        labels[enc["attention_mask"] == 0] = -100
    order = streams(family, model.config.num_hidden_layers, head)
    out = with_masks(order, lambda: run(model, family, enc, labels=labels))
    save_case(saved, f"{case}-dropout", model, enc, out, labels=labels)


def pre_norm(saved):
    """ModernBERT (pre-norm: rotary, local windows of 4 on either side on layers 1 and 2, GeGLU,
    no biases, the prediction head before every classifier), dropout off, eager attention: sequence
    classification with the config's mean pooling and again with first-token pooling
    ("modernbert-seqcls-cls"), token classification, QA and the masked LM, as the post-norm
    cases."""
    eager = {"attn_implementation": "eager"}
    sequence_classification("modernbert", saved, **eager)
    sequence_classification("modernbert", saved, case="modernbert-seqcls-cls",
                            classifier_pooling="cls", **eager)
    token_classification("modernbert", saved, **eager)
    question_answering("modernbert", saved, **eager)
    masked_lm("modernbert", saved, **eager)
    for head in ("seqcls", "tokcls", "qa"):
        with_dropout("modernbert", head, saved)


def main():
    torch.manual_seed(0)
    saved = {}
    for family in FAMILIES:
        sequence_classification(family, saved)
        token_classification(family, saved)
        question_answering(family, saved)
        masked_lm(family, saved)
        for head in ("seqcls", "tokcls", "qa"):
            with_dropout(family, head, saved)
    pre_norm(saved)
    save_file(saved, os.path.join(HERE, "train_families.safetensors"))


if __name__ == "__main__":
    main()
