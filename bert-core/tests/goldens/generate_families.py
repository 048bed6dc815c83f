#!/usr/bin/env python3
"""Goldens for the encoder families other than BERT: seeded random-init models with unusual
configs, built and run by HuggingFace transformers (PyTorch, CPU, float32).

    python3 -m pip install torch transformers safetensors
    python3 bert-core/tests/goldens/generate_families.py

Writes families/<name>/{config.json, model.safetensors} (the model as `save_pretrained` writes
it) and families/outputs.safetensors: for each family, a right-padded batch of ids
("<name>.input_ids", "<name>.token_type_ids", "<name>.attention_mask", I64) and the model's
"<name>.last_hidden_state" (and "<name>.pooler_output" where the family has a pooler).
Each family's task heads (masked LM, sequence / token classification, QA) are saved the same
way under families/<name>-<head>/, with their logits as "<name>-<head>.logits" (QA:
".start_logits", ".end_logits") on the same batch.
"""
import os

import torch
from safetensors.torch import save_file
import transformers
from transformers import (DistilBertConfig, DistilBertModel, ElectraConfig, ElectraModel,
                          ModernBertConfig, ModernBertModel, RobertaConfig, RobertaModel,
                          XLMRobertaConfig, XLMRobertaModel)

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "families")
torch.set_grad_enabled(False)

COMMON = dict(vocab_size=123, hidden_size=48, num_hidden_layers=2, num_attention_heads=3,
              intermediate_size=80, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

FAMILIES = {
    # RoBERTa: positions offset by the padding index (pad id 1 -> positions start at 2).
    "roberta": (RobertaModel, RobertaConfig(**COMMON, max_position_embeddings=42, pad_token_id=1,
                                            type_vocab_size=1, hidden_act="gelu_new",
                                            layer_norm_eps=1e-5)),
    "xlm-roberta": (XLMRobertaModel, XLMRobertaConfig(**COMMON, max_position_embeddings=40,
                                                      pad_token_id=1, type_vocab_size=1,
                                                      hidden_act="gelu", layer_norm_eps=1e-5)),
    # ELECTRA discriminator encoder: embedding_size < hidden_size (embeddings_project).
    "electra": (ElectraModel, ElectraConfig(**COMMON, embedding_size=24, max_position_embeddings=40,
                                            type_vocab_size=3, hidden_act="relu")),
    # DistilBERT: its own key names, no token types, no pooler.
    "distilbert": (DistilBertModel, DistilBertConfig(vocab_size=123, dim=48, n_layers=2, n_heads=3,
                                                      hidden_dim=80, max_position_embeddings=40,
                                                      dropout=0.0, attention_dropout=0.0,
                                                      activation="gelu", pad_token_id=0)),
    # ModernBERT: pre-norm, rotary positions (two thetas), GeGLU, no biases, every third
    # layer global and the others local (window of 8 here: |i - j| <= 4), final norm.
    "modernbert": (ModernBertModel, ModernBertConfig(vocab_size=123, hidden_size=48,
                                                      intermediate_size=40, num_hidden_layers=4,
                                                      num_attention_heads=3,
                                                      max_position_embeddings=64,
                                                      hidden_activation="gelu", norm_eps=1e-5,
                                                      local_attention=8,
                                                      global_attn_every_n_layers=3,
                                                      global_rope_theta=160000.0,
                                                      local_rope_theta=10000.0, pad_token_id=0,
                                                      attn_implementation="eager")),
}


WORDS = ("the a cat dog sat on mat rug quick brown fox jumps over lazy tiny model runs rust "
         "code in encoder family test text with words and some more of them here").split()


def roberta_tokenizer(path):
    """A word-level tokenizer.json in RoBERTa's shape (<s> text </s>, <pad> = 1), small enough
    for the seeded model's 123-token vocabulary; bert-std's end-to-end test loads it."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    vocab = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>"] + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tok.save(os.path.join(path, "tokenizer.json"))
    return tok


HEADS = {"mlm": "ForMaskedLM", "seqcls": "ForSequenceClassification",
         "tokcls": "ForTokenClassification", "qa": "ForQuestionAnswering"}


def heads(name, base_cls, config, kwargs, out, seed):
    family = base_cls.__name__[:-len("Model")]
    for j, (head, suffix) in enumerate(HEADS.items()):
        cls = getattr(transformers, family + suffix)
        cfg = config.__class__(**config.to_dict())
        cfg.num_labels = {"seqcls": 3, "tokcls": 4}.get(head, 2)
        if name == "modernbert" and head == "seqcls":
            cfg.classifier_pooling = "mean"  # exercise mean pooling
        torch.manual_seed(seed + j)
        model = cls(cfg).eval()
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.save_pretrained(os.path.join(HERE, f"{name}-{head}"), safe_serialization=True)
        r = model(**kwargs)
        if head == "qa":
            out[f"{name}-{head}.start_logits"] = r.start_logits.contiguous()
            out[f"{name}-{head}.end_logits"] = r.end_logits.contiguous()
        else:
            out[f"{name}-{head}.logits"] = r.logits.contiguous()


TOKENIZER_TEXTS = ["The quick brown fox jumps over the lazy dog.",
                   "Café naïve résumé — unicode, digits 12345 and emoji 🙂!",
                   "  leading spaces and  double  spaces  "]


def subword_tokenizers(out):
    """A byte-level BPE in RoBERTa's shape and a SentencePiece-style Unigram in XLM-R's, trained
    on a few sentences (tiny vocabularies), with the ids the Python tokenizers give: bert-std
    must give the same through the Rust crate."""
    from tokenizers import (Tokenizer, decoders, models, normalizers, pre_tokenizers,
                            processors, trainers)
    corpus = TOKENIZER_TEXTS * 3 + [" ".join(WORDS)] * 3
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    uni = Tokenizer(models.Unigram())
    uni.normalizer = normalizers.NFKC()
    uni.pre_tokenizer = pre_tokenizers.Metaspace()
    uni.decoder = decoders.Metaspace()
    uni.train_from_iterator(corpus, trainers.UnigramTrainer(
        vocab_size=120, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        unk_token="<unk>"))
    uni.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    for name, tok in [("bpe", bpe), ("unigram", uni)]:
        folder = os.path.join(HERE, f"tokenizer-{name}")
        os.makedirs(folder, exist_ok=True)
        tok.save(os.path.join(folder, "tokenizer.json"))
        for i, text in enumerate(TOKENIZER_TEXTS):
            out[f"tokenizer-{name}.{i}"] = torch.tensor(tok.encode(text).ids, dtype=torch.int64)


def main():
    out = {}
    subword_tokenizers(out)
    for i, (name, (cls, config)) in enumerate(FAMILIES.items()):
        torch.manual_seed(1000 + i)
        model = cls(config).eval()
        # Larger weights than the init's 0.02 std, so that errors would show.
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
        model.save_pretrained(os.path.join(HERE, name), safe_serialization=True)
        pad = config.pad_token_id
        lengths = [14, 5, 9] if name == "modernbert" else [9, 5, 7]
        seq = max(lengths)
        ids = torch.full((len(lengths), seq), pad, dtype=torch.int64)
        mask = torch.zeros((len(lengths), seq), dtype=torch.int64)
        types = torch.zeros((len(lengths), seq), dtype=torch.int64)
        g = torch.Generator().manual_seed(7 + i)
        for b, n in enumerate(lengths):
            ids[b, :n] = torch.randint(3, config.vocab_size, (n,), generator=g)
            mask[b, :n] = 1
            if getattr(config, "type_vocab_size", 1) > 1:
                types[b, n // 2:n] = 1 + b % (config.type_vocab_size - 1)
        kwargs = dict(input_ids=ids, attention_mask=mask)
        if name not in ("distilbert", "modernbert"):
            kwargs["token_type_ids"] = types
        result = model(**kwargs)
        out[f"{name}.input_ids"] = ids
        out[f"{name}.token_type_ids"] = types
        out[f"{name}.attention_mask"] = mask
        out[f"{name}.last_hidden_state"] = result.last_hidden_state.contiguous()
        pooled = getattr(result, "pooler_output", None)
        if pooled is not None:
            out[f"{name}.pooler_output"] = pooled.contiguous()
        heads(name, cls, config, kwargs, out, 2000 + 10 * i)
    # End to end for bert-std: text -> RoBERTa tokenizer -> model -> mean pooling.
    tok = roberta_tokenizer(os.path.join(HERE, "roberta"))
    model = RobertaModel.from_pretrained(os.path.join(HERE, "roberta")).eval()
    texts = ["the quick brown fox jumps over the lazy dog", "a tiny rust encoder"]
    encs = [tok.encode(t).ids for t in texts]
    seq = max(len(e) for e in encs)
    ids = torch.full((len(encs), seq), 1, dtype=torch.int64)
    mask = torch.zeros((len(encs), seq), dtype=torch.int64)
    for b, e in enumerate(encs):
        ids[b, :len(e)] = torch.tensor(e)
        mask[b, :len(e)] = 1
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    m = mask.unsqueeze(-1).float()
    out["roberta.text_mean_embedding"] = ((hidden * m).sum(1) / m.sum(1)).contiguous()
    out["roberta.text_ids"] = ids
    save_file(out, os.path.join(HERE, "outputs.safetensors"))


if __name__ == "__main__":
    main()
