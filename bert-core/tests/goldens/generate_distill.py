#!/usr/bin/env python3
"""Goldens for sentence-embedding distillation (bert_core::train::distill): the real
all-MiniLM-L6-v2 encoder as the student, mean pooling over the real tokens, a seeded Dense
projection (384 -> 48, identity activation, as sentence-transformers' `Dense`), and
`torch.nn.MSELoss()` against seeded teacher embeddings; loss, embeddings and every parameter's
gradient by torch.autograd, dropout off, on a right-padded batch of three sentences.

    python3 -m pip install torch transformers safetensors
    python3 scripts/fetch_models.py
    python3 bert-core/tests/goldens/generate_distill.py

Also writes train_distill_electra.safetensors (see factorized()).

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


def factorized():
    """A seeded tiny ElectraModel with embeddings narrower than the hidden width (16 -> 32,
    `embeddings_project`), mean pooling, a 32 -> 24 projection and MSELoss: every gradient,
    whole. Writes train_distill_electra.safetensors (the model's weights under "model.", the
    rest as above) and config_distill_electra.json."""
    from transformers import ElectraConfig, ElectraModel
    torch.manual_seed(3)
    config = ElectraConfig(vocab_size=50, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=16,
                           type_vocab_size=2, hidden_act="gelu", initializer_range=0.2)
    model = ElectraModel(config).eval()
    with open(os.path.join(HERE, "config_distill_electra.json"), "w") as f:
        f.write(config.to_json_string())
    gen = torch.Generator().manual_seed(11)
    ids = torch.randint(1, 50, (3, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    types = torch.zeros_like(ids)
    types[0, 5:] = 1
    projection = torch.nn.Linear(32, 24)
    with torch.no_grad():
        projection.weight.copy_(torch.randn(24, 32, generator=gen) * 0.1)
        projection.bias.copy_(torch.randn(24, generator=gen) * 0.01)
    targets = torch.randn(3, 24, generator=gen) * 0.3
    hidden = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    m = mask.unsqueeze(-1).to(hidden.dtype)
    emb = projection((hidden * m).sum(1) / m.sum(1))
    loss = torch.nn.MSELoss()(emb, targets)
    loss.backward()
    saved = {"inputs.input_ids": ids, "inputs.attention_mask": mask, "inputs.token_type_ids": types,
             "projection.weight": projection.weight.detach().contiguous(),
             "projection.bias": projection.bias.detach().contiguous(),
             "targets": targets, "loss": loss.detach().reshape(1),
             "embeddings": emb.detach().contiguous()}
    for name, p in model.named_parameters():
        saved[f"model.{name}"] = p.detach().contiguous()
        saved[f"grad.{name}"] = p.grad.detach().contiguous()
    for name, p in projection.named_parameters():
        saved[f"grad.projection.{name}"] = p.grad.detach().contiguous()
    save_file(saved, os.path.join(HERE, "train_distill_electra.safetensors"))


if __name__ == "__main__":
    main()
    factorized()
