#!/usr/bin/env python3
"""Goldens for bert-std/tests/hf_roundtrip.rs: checkpoints that `bert train` wrote, and what
transformers computes from them.

1. A tiny BERT (2 layers, hidden 16, a small WordPiece vocabulary; random weights N(0, 0.2), seed 0) is
   saved with transformers as the base model: roundtrip/base.
2. `target/release/bert train {classify,ner,qa,pretrain,nsp}` fine-tunes it on a few lines of
   data (roundtrip/data) into roundtrip/<task> (nsp starts from the pretrain checkpoint).
3. transformers loads each checkpoint (its own class for the architecture in config.json) and
   writes its outputs on fixed inputs to roundtrip/<task>/transformers.json:
   classification and tagging probabilities, the QA span scores, the NSP logits.

The Rust test runs `bert` on the same checkpoints and inputs and compares (<= 1e-4); it also
retrains each one and checks that the new checkpoint has the same tensors and config fields.

4. The same for the other families (RoBERTa, XLM-RoBERTa, ELECTRA with narrower
   embeddings, DistilBERT, and ModernBERT's pre-norm block): a tiny base of each in roundtrip/families/<family>/base (the same
   vocabulary; [PAD] at id 1 for the RoBERTa-style ones, as their pad_token_id), trained by
   `bert train classify`, `ner`, `qa` and `pretrain` (the masked LM alone: "mlm") into
   roundtrip/families/<family>-<task>, read back by transformers' Auto classes.

    cargo build --release -p bert-std
    python3 bert-std/tests/goldens/generate_roundtrip.py [--families [FAMILY ...]]

(`--families`: only step 4, the BERT goldens left as they are; with family names, only theirs.)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
from transformers import (AutoModelForMaskedLM, AutoModelForQuestionAnswering,
                          AutoModelForSequenceClassification,
                          AutoModelForTokenClassification,
                          BertConfig, BertForNextSentencePrediction, BertForPreTraining,
                          BertForQuestionAnswering, BertForSequenceClassification,
                          BertForTokenClassification, BertModel, BertTokenizerFast,
                          DistilBertConfig, DistilBertModel, ElectraConfig, ElectraModel,
                          ModernBertConfig, ModernBertModel, RobertaConfig, RobertaModel, XLMRobertaConfig, XLMRobertaModel)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from check_roundtrip import best_span  # noqa: E402  (the QA pipeline's span scoring)
OUT = os.path.join(HERE, "roundtrip")
BERT = os.path.join(ROOT, "target", "release", "bert")

CLASSIFY = [("a wonderful moving film", "pos"), ("dull and far too long", "neg"),
            ("loved every minute of it", "pos"), ("a boring mess", "neg"),
            ("the best film of the year", "pos"), ("i want my time back", "neg"),
            ("great acting and a fine story", "pos"), ("the plot makes no sense", "neg")]
NER = [[("angela", "B-PER"), ("merkel", "I-PER"), ("visited", "O"), ("paris", "B-LOC")],
       [("john", "B-PER"), ("flew", "O"), ("to", "O"), ("berlin", "B-LOC")],
       [("the", "O"), ("film", "O"), ("was", "O"), ("made", "O"), ("in", "O"), ("paris", "B-LOC")],
       [("anna", "B-PER"), ("lives", "O"), ("in", "O"), ("berlin", "B-LOC")]]
QA = [("where was einstein born", "albert einstein was born in ulm in germany", "ulm"),
      ("who wrote the book", "the book was written by a retired sailor", "a retired sailor"),
      ("where does anna live", "anna lives in berlin with her cat", "berlin"),
      ("what did john fly to", "john flew to paris on monday", "paris")]
DOCS = ["anna woke early. she walked to the harbour. the boats were out. she waited.",
        "john flew to berlin. the film was made in paris. he loved the film.",
        "the book was written by a retired sailor. it was a boring mess. nobody read it.",
        "einstein was born in ulm. he lived in berlin. he wrote a book."]
TEXTS = ["a wonderful film", "the plot was dull", "angela visited berlin"]
NER_TEXTS = ["angela merkel visited paris", "john flew to berlin"]
PAIRS = [("anna woke early.", "she walked to the harbour."),
         ("anna woke early.", "the book was written by a retired sailor.")]


def vocab():
    words = set()
    for t, _ in CLASSIFY:
        words.update(t.split())
    for s in NER:
        words.update(w for w, _ in s)
    for q, c, _ in QA:
        words.update((q + " " + c).split())
    for d in DOCS:
        words.update(d.replace(".", " .").split())
    for t in TEXTS:
        words.update(t.split())
    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ","]
    pieces += list(letters) + ["##" + c for c in letters]
    return pieces + sorted(w for w in words if w not in pieces)


def base(path):
    torch.manual_seed(0)
    pieces = vocab()
    os.makedirs(path)
    with open(os.path.join(path, "vocab.txt"), "w") as f:
        f.write("\n".join(pieces) + "\n")
    BertTokenizerFast(os.path.join(path, "vocab.txt"), do_lower_case=True).save_pretrained(path)
    config = BertConfig(vocab_size=len(pieces), hidden_size=16, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=64, initializer_range=0.2)
    BertModel(config).save_pretrained(path)


def data(path):
    os.makedirs(path)
    with open(os.path.join(path, "classify.jsonl"), "w") as f:
        for t, label in CLASSIFY:
            f.write(json.dumps({"text": t, "label": label}) + "\n")
    with open(os.path.join(path, "ner.conll"), "w") as f:
        for s in NER:
            f.write("".join(f"{w} X X {tag}\n" for w, tag in s) + "\n")
    with open(os.path.join(path, "qa.jsonl"), "w") as f:
        for q, c, a in QA:
            f.write(json.dumps({"question": q, "passage": c, "answer": a}) + "\n")
    with open(os.path.join(path, "docs.txt"), "w") as f:
        f.write("\n\n".join(DOCS) + "\n")


# The command that trains each checkpoint (the Rust test runs the same ones).
COMMANDS = {
    "classify": ["classify", "--data", "classify.jsonl", "--lr", "1e-2", "--epochs", "4"],
    "ner": ["ner", "--data", "ner.conll", "--lr", "1e-2", "--epochs", "30"],
    "qa": ["qa", "--data", "qa.jsonl", "--lr", "1e-2", "--epochs", "4"],
    "pretrain": ["pretrain", "--data", "docs.txt", "--lr", "1e-2", "--epochs", "4"],
    "nsp": ["nsp", "--data", "docs.txt", "--lr", "1e-2", "--epochs", "4"],
}
COMMON = ["--batch-size", "4", "--max-seq-len", "32", "--seed", "7"]


def train(task, workdir, start=None, out=None):
    start = start or (os.path.join(OUT, "pretrain") if task == "nsp" else os.path.join(OUT, "base"))
    cmd, out = {**COMMANDS, **FAMILY_COMMANDS}[task], out or os.path.join(OUT, task)
    d = os.path.join(OUT, "data")
    args = [BERT, "train", cmd[0], "--model", start, "--out", out, *COMMON]
    args += [os.path.join(d, cmd[2]) if a == cmd[2] else a for a in cmd[1:]]
    args += ["--eval", os.path.join(d, cmd[2])]
    subprocess.run(args, check=True, cwd=workdir)
    for extra in ("loss_curve.svg", "trainer_state.safetensors"):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))


def softmax(logits):
    return logits.softmax(-1)[0].tolist()


def reference(task, path=None, auto=False):
    path = path or os.path.join(OUT, task)
    if task == "mlm":
        return masked_lm_reference(path)
    tok = BertTokenizerFast.from_pretrained(path)
    cls = {"classify": BertForSequenceClassification, "ner": BertForTokenClassification,
           "qa": BertForQuestionAnswering, "pretrain": BertForPreTraining,
           "nsp": BertForNextSentencePrediction}[task]
    if auto:
        cls = {"classify": AutoModelForSequenceClassification,
               "ner": AutoModelForTokenClassification, "qa": AutoModelForQuestionAnswering}[task]
    model, info = cls.from_pretrained(path, attn_implementation="eager", output_loading_info=True)
    assert not any(info.values()), f"{path}: {info}"
    model.eval()
    out = {}
    with torch.no_grad():
        if task in ("classify", "ner"):
            for t in TEXTS if task == "classify" else NER_TEXTS:
                logits = model(**tok(t, return_tensors="pt")).logits
                out[t] = softmax(logits)
        elif task == "qa":
            for q, c, _ in QA:
                answer, score = best_span(model, tok, q, c)
                out[q] = {"answer": answer, "score": score}
        else:
            for a, b in PAIRS:
                r = model(**tok(a, b, return_tensors="pt"))
                logits = r.seq_relationship_logits if task == "pretrain" else r.logits
                out[f"{a} || {b}"] = logits[0].tolist()
    labels = {str(k): v for k, v in model.config.id2label.items()}
    with open(os.path.join(path, "transformers.json"), "w") as f:
        json.dump({"id2label": labels, "outputs": out}, f, indent=1)


# The other post-norm families and the tasks `bert train` runs on each of them ("mlm":
# `bert train pretrain`, the masked LM alone where the family has no NSP head).
FAMILY_TASKS = ["classify", "ner", "qa", "mlm"]
FAMILY_COMMANDS = {"mlm": ["pretrain", "--data", "docs.txt", "--lr", "1e-2", "--epochs", "4"]}
MLM_TEXTS = ["anna lives in [MASK] with her cat", "the book was written by a [MASK] sailor"]
TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
            initializer_range=0.2)


def masked_lm_reference(path):
    """transformers' probabilities of the 20 likeliest tokens (by id) at each text's [MASK]."""
    tok = BertTokenizerFast.from_pretrained(path)
    model, info = AutoModelForMaskedLM.from_pretrained(path, attn_implementation="eager",
                                                       output_loading_info=True)
    assert not any(info.values()), f"{path}: {info}"
    model.eval()
    out = {}
    with torch.no_grad():
        for t in MLM_TEXTS:
            enc = tok(t, return_tensors="pt")
            at = enc["input_ids"][0].tolist().index(tok.mask_token_id)
            p = model(**enc).logits[0, at].softmax(-1)
            top = p.topk(20)
            out[t] = {str(i): v for i, v in zip(top.indices.tolist(), top.values.tolist())}
    with open(os.path.join(path, "transformers.json"), "w") as f:
        json.dump({"id2label": {}, "outputs": out}, f, indent=1)


def family_config(family, vocab_size):
    """A tiny config of the family (the RoBERTa-style ones with [PAD] = 1)."""
    if family in ("roberta", "xlm-roberta"):
        cls = RobertaConfig if family == "roberta" else XLMRobertaConfig
        model = RobertaModel if family == "roberta" else XLMRobertaModel
        return model, cls(vocab_size=vocab_size, max_position_embeddings=66, pad_token_id=1,
                          bos_token_id=0, eos_token_id=2, type_vocab_size=1, **TINY)
    if family == "electra":
        return ElectraModel, ElectraConfig(vocab_size=vocab_size, embedding_size=8,
                                           max_position_embeddings=64, **TINY)
    if family == "modernbert":
        # Three layers (the middle one local), a window of 4 on either side: shorter than the
        # 32-token inputs, so the windows matter; no dropout, as its configs default.
        return ModernBertModel, ModernBertConfig(
            vocab_size=vocab_size, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=64, local_attention=8,
            global_attn_every_n_layers=2, pad_token_id=0, cls_token_id=2, sep_token_id=3,
            bos_token_id=2, eos_token_id=3, initializer_range=0.2)
    return DistilBertModel, DistilBertConfig(vocab_size=vocab_size, dim=16, n_layers=2, n_heads=2,
                                             hidden_dim=32, max_position_embeddings=64,
                                             initializer_range=0.2, pad_token_id=0)


def family_base(family, path):
    torch.manual_seed(0)
    pieces = vocab()
    if family in ("roberta", "xlm-roberta"):
        pieces[0], pieces[1] = pieces[1], pieces[0]
    os.makedirs(path)
    with open(os.path.join(path, "vocab.txt"), "w") as f:
        f.write("\n".join(pieces) + "\n")
    # DistilBERT and ModernBERT take no token types (their tokenizers give none).
    names = ["input_ids", "attention_mask"] if family in ("distilbert", "modernbert") else None
    BertTokenizerFast(os.path.join(path, "vocab.txt"), do_lower_case=True,
                      **({"model_input_names": names} if names else {})).save_pretrained(path)
    if family in ("roberta", "xlm-roberta"):
        # One token type, as RoBERTa's own tokenizers give: the pair's second part is type 0.
        tj = os.path.join(path, "tokenizer.json")
        spec = json.load(open(tj))
        for part in spec["post_processor"]["pair"]:
            for piece in part.values():
                piece["type_id"] = 0
        with open(tj, "w") as f:
            json.dump(spec, f, indent=1)
    model, config = family_config(family, len(pieces))
    model(config).save_pretrained(path)


def families(work, only=None):
    root = os.path.join(OUT, "families")
    for family in only or FAMILIES:
        start = os.path.join(root, family, "base")
        family_base(family, start)
        for task in FAMILY_TASKS:
            out = os.path.join(root, f"{family}-{task}")
            train(task, work, start=start, out=out)
            reference(task, path=out, auto=True)


FAMILIES = ["roberta", "xlm-roberta", "electra", "distilbert", "modernbert"]


def main():
    if "--families" in sys.argv:
        # Only the other families' goldens (the BERT ones stay as they are); with names after
        # the flag, only those families'.
        only = sys.argv[sys.argv.index("--families") + 1:]
        root = os.path.join(OUT, "families")
        for family in only or FAMILIES:
            for d in [family] + [f"{family}-{t}" for t in FAMILY_TASKS]:
                shutil.rmtree(os.path.join(root, d), ignore_errors=True)
        with tempfile.TemporaryDirectory() as work:
            families(work, only)
        path = os.path.join(OUT, "commands.json")
        cmds = json.load(open(path))
        cmds.update(families=FAMILIES, family_tasks=FAMILY_TASKS, mlm_texts=MLM_TEXTS)
        cmds["tasks"].update(FAMILY_COMMANDS)
        with open(path, "w") as f:
            json.dump(cmds, f, indent=1)
        return
    shutil.rmtree(OUT, ignore_errors=True)
    base(os.path.join(OUT, "base"))
    data(os.path.join(OUT, "data"))
    with tempfile.TemporaryDirectory() as work:
        for task in COMMANDS:
            train(task, work)
            reference(task)
        families(work)
    with open(os.path.join(OUT, "commands.json"), "w") as f:
        json.dump({"common": COMMON, "tasks": COMMANDS, "texts": TEXTS, "ner_texts": NER_TEXTS, "pairs": PAIRS,
                   "qa": [[q, c] for q, c, _ in QA], "families": FAMILIES,
                   "family_tasks": FAMILY_TASKS}, f, indent=1)


if __name__ == "__main__":
    main()
