#!/usr/bin/env python3
"""Goldens for the linear head a device trains (bert_core::train::linear_head): seeded
sentence-embedding-like features (12 x 64), labels over 5 classes, `torch.nn.Linear(64, 5)`
and `torch.nn.CrossEntropyLoss()` (mean).

    python3 -m pip install torch safetensors
    python3 bert-core/tests/goldens/generate_linear_head.py

Writes linear_head.safetensors: "features", "labels" (I64), "weight", "bias" (a seeded head),
"loss" and "grad.weight", "grad.bias" (torch.autograd at that head), and "trained.weight",
"trained.bias", "trained.losses" (5 full-batch steps of torch.optim.AdamW from zero weights,
lr 0.05, weight decay 0.01 on the weight only, as HF's Trainer groups them).
"""
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
N, DIM, CLASSES, STEPS, LR, WD = 12, 64, 5, 5, 0.05, 0.01


def main():
    gen = torch.Generator().manual_seed(3)
    features = torch.randn(N, DIM, generator=gen)
    labels = torch.arange(N, dtype=torch.int64) % CLASSES
    head = torch.nn.Linear(DIM, CLASSES)
    with torch.no_grad():
        head.weight.copy_(torch.randn(CLASSES, DIM, generator=gen) * 0.1)
        head.bias.copy_(torch.randn(CLASSES, generator=gen) * 0.1)
    saved = {
        "features": features,
        "labels": labels,
        "weight": head.weight.detach().clone(),
        "bias": head.bias.detach().clone(),
    }
    loss = torch.nn.CrossEntropyLoss()(head(features), labels)
    loss.backward()
    saved["loss"] = loss.detach().reshape(1)
    saved["grad.weight"] = head.weight.grad.clone()
    saved["grad.bias"] = head.bias.grad.clone()

    trained = torch.nn.Linear(DIM, CLASSES)
    with torch.no_grad():
        trained.weight.zero_()
        trained.bias.zero_()
    opt = torch.optim.AdamW(
        [
            {"params": [trained.weight], "weight_decay": WD},
            {"params": [trained.bias], "weight_decay": 0.0},
        ],
        lr=LR,
    )
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        step_loss = torch.nn.CrossEntropyLoss()(trained(features), labels)
        step_loss.backward()
        opt.step()
        losses.append(step_loss.item())
    saved["trained.weight"] = trained.weight.detach().clone()
    saved["trained.bias"] = trained.bias.detach().clone()
    saved["trained.losses"] = torch.tensor(losses)
    save_file({k: v.contiguous() for k, v in saved.items()}, os.path.join(HERE, "linear_head.safetensors"))


if __name__ == "__main__":
    main()
