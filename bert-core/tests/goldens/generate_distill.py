#!/usr/bin/env python3
"""Goldens for sentence-embedding distillation (bert_core::train::distill): the real
all-MiniLM-L6-v2 encoder as the student, mean pooling over the real tokens, a seeded Dense
projection (384 -> 48, identity activation, as sentence-transformers' `Dense`), and
`torch.nn.MSELoss()` against seeded teacher embeddings; loss, embeddings and every parameter's
gradient by torch.autograd, dropout off, on a right-padded batch of three sentences.

    python3 -m pip install torch transformers safetensors
    python3 scripts/fetch_models.py
    python3 bert-core/tests/goldens/generate_distill.py

Writes train_distill.safetensors: "inputs.*" (I64), "projection.weight", "projection.bias",
"targets", "loss", "embeddings", and per parameter (PyTorch's names; the projection as
"projection.*") its gradient's norm and sum and 512 seeded values (the word embeddings: the used
rows), as generate_train.py writes them.
"""
import os

import torch
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertModel

from generate_train import HERE, MINILM, sampled

WIDTH = 48


def main():
    torch.manual_seed(0)
    model = BertModel.from_pretrained(MINILM, add_pooling_layer=False)
    model.eval()  # dropout off; gradients still flow
    tok = AutoTokenizer.from_pretrained(MINILM)
    texts = ["A wonderful, moving film.", "Dull.", "The plot was fine but the acting was not."]
    enc = tok(texts, padding=True, return_tensors="pt")
    inputs = {k: enc[k].to(torch.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
    gen = torch.Generator().manual_seed(7)
    projection = torch.nn.Linear(384, WIDTH)
    with torch.no_grad():
        projection.weight.copy_(torch.randn(WIDTH, 384, generator=gen) * 0.05)
        projection.bias.copy_(torch.randn(WIDTH, generator=gen) * 0.01)
    targets = torch.randn(len(texts), WIDTH, generator=gen) * 0.1
    hidden = model(**inputs).last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    emb = projection(pooled)
    loss = torch.nn.MSELoss()(emb, targets)
    loss.backward()
    saved = {f"inputs.{k}": v.contiguous() for k, v in inputs.items()}
    saved["projection.weight"] = projection.weight.detach().contiguous()
    saved["projection.bias"] = projection.bias.detach().contiguous()
    saved["targets"] = targets.contiguous()
    saved["loss"] = loss.detach().reshape(1)
    saved["embeddings"] = emb.detach().contiguous()

    class Both(torch.nn.Module):  # PyTorch's names for the encoder, then the projection's
        def __init__(self):
            super().__init__()
            self.bert, self.projection = model, projection

        def named_parameters(self):
            yield from model.named_parameters()
            yield from (("projection." + n, p) for n, p in projection.named_parameters())

    sampled(saved, "", Both(), inputs["input_ids"])
    save_file(saved, os.path.join(HERE, "train_distill.safetensors"))


if __name__ == "__main__":
    main()
