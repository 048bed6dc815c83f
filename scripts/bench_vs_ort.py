#!/usr/bin/env python3
"""bert-rs vs OpenVINO (f32 and bf16), ONNX Runtime (f32 and dynamic int8) and PyTorch, same
model, inputs and threads, in one run; prints seq/s and each precision's ratio against its best
peer, and the machine's FMA peak. Engines are interleaved over --rounds rounds (each round a
median of timed repetitions); each figure is the median round.

Ratios: ours f32 against the best of OpenVINO f32, ORT f32 and PyTorch; ours bf16 (bf16
products, f32 sums) against OpenVINO bf16; ours int8 against the best of ORT int8 and OpenVINO
bf16 (the strongest reduced-precision peers).

Models: all-minilm-l6-v2 (real weights, fetched like the tests do) and the bert-base shape
(12 layers, hidden 768; random weights from a seeded `transformers.BertModel`). Cases: batch 1
of 16 tokens, batch 1 and batch 32 of 128 tokens, and a mixed batch of 32 sequences of 8..128
tokens (right-padded to 128 for the peers, which compute the padding; bert-rs removes it, and
its padded path is measured too).

    python3 scripts/bench_vs_ort.py [--threads 2] [--iters 10] [--models minilm,bert-base]
    python3 scripts/bench_vs_ort.py --scaling [--models minilm]   # 1, 2, 4, .. all cores

`--scaling` prints, instead, a thread-scaling table (batch 32 x 128, seq/s per engine at 1, 2,
4, ... threads up to the machine's cores, and each engine's parallel efficiency
`rate(N) / (N * rate(1))`).

Needs: `pip install openvino==2026.4.1 onnxruntime==1.31.1 onnx==1.23.2 torch transformers`
(torch and transformers are the reference stack the goldens use). OpenVINO reads the plain
ONNX export (`openvino.convert_model`), compiled for CPU with `INFERENCE_NUM_THREADS` and
`INFERENCE_PRECISION_HINT` f32 or bf16. Builds `bench_forward` and `bert` in release mode itself.
Writes its models, ONNX files and inputs under target/bench-vs-ort/; prints a JSON summary to
target/bench-vs-ort/results.json as well.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "target", "bench-vs-ort")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$", " ".join(cmd))
    return subprocess.run(cmd, check=True, cwd=ROOT, **kw)


def build():
    run(["cargo", "build", "--release", "-q", "--example", "bench_forward", "-p", "examples"])
    run(["cargo", "build", "--release", "-q", "--bin", "bert", "-p", "bert-std"])
    return (os.path.join(ROOT, "target", "release", "examples", "bench_forward"),
            os.path.join(ROOT, "target", "release", "bert"))


def minilm_dir():
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    dest = os.environ.get("BERT_MODELS_DIR", os.path.join(cache, "bert-rs", "models"))
    run([sys.executable, os.path.join(ROOT, "scripts", "fetch_models.py"), "--dest", dest,
         "all-minilm-l6-v2"])
    return os.path.join(dest, "all-minilm-l6-v2")


def bert_base_dir():
    out = os.path.join(WORK, "bert-base-random")
    if os.path.exists(os.path.join(out, "model.safetensors")):
        return out
    import torch
    from transformers import BertConfig, BertModel
    torch.manual_seed(0)
    model = BertModel(BertConfig()).eval()  # bert-base-uncased's shape
    model.save_pretrained(out, safe_serialization=True)
    return out


def quantized_dir(bert_bin, src, name):
    out = os.path.join(WORK, name + "-int8")
    if not os.path.exists(os.path.join(out, "model.safetensors")):
        run([bert_bin, "quantize", src, out, "--dtype", "int8"])
    return out


def export_onnx(model_dir, name):
    """fp32 ONNX (ORT's BERT graph optimizer applied: fused attention, LayerNorm, GELU) and its
    dynamic-int8 quantization (onnxruntime.quantization.quantize_dynamic, QInt8 weights)."""
    raw = os.path.join(WORK, name + ".onnx")
    fp32 = os.path.join(WORK, name + ".opt.onnx")
    int8 = os.path.join(WORK, name + ".int8.onnx")
    import torch
    from transformers import BertModel
    if not os.path.exists(raw):
        bert = BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()

        class Positional(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask, token_type_ids):
                out = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids)
                return out.last_hidden_state, out.pooler_output

        ids = torch.ones(2, 16, dtype=torch.long)
        torch.onnx.export(
            Positional().eval(), (ids, torch.ones_like(ids), torch.zeros_like(ids)), raw,
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state", "pooler_output"],
            dynamic_axes={k: {0: "batch", 1: "seq"} for k in
                          ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
            opset_version=17, dynamo=False)
    if not os.path.exists(fp32):
        from onnxruntime.transformers.optimizer import optimize_model
        from transformers import AutoConfig
        c = AutoConfig.from_pretrained(model_dir)
        opt = optimize_model(raw, model_type="bert", num_heads=c.num_attention_heads,
                             hidden_size=c.hidden_size)
        opt.save_model_to_file(fp32)
    if not os.path.exists(int8):
        from onnxruntime.quantization import QuantType, quantize_dynamic
        import onnx
        quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return raw, fp32, int8


def make_inputs(vocab, batch, seq, lengths=None, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    ids = rng.integers(1000, vocab, size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    if lengths is not None:
        for b, n in enumerate(lengths):
            ids[b, n:] = 0
            mask[b, n:] = 0
    return ids, mask


def median_time(fn, iters):
    fn()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def ort_runner(path, ids, mask, threads, iters):
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    names = {i.name for i in sess.get_inputs()}
    feed = {k: v for k, v in feed.items() if k in names}
    return lambda: median_time(lambda: sess.run(["last_hidden_state"], feed), iters)


def openvino_runner(raw_onnx, ids, mask, threads, iters, precision):
    """OpenVINO on the plain ONNX export, compiled for CPU with `threads` inference threads and
    the given precision hint ("f32" or "bf16"), latency mode, one infer request."""
    import numpy as np
    import openvino as ov
    core = ov.Core()
    compiled = core.compile_model(ov.convert_model(raw_onnx), "CPU", {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": precision,
        "PERFORMANCE_HINT": "LATENCY",
    })
    request = compiled.create_infer_request()
    feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    names = {n for i in compiled.inputs for n in i.get_names()}
    feed = {k: v for k, v in feed.items() if k in names}
    return lambda: median_time(lambda: request.infer(feed), iters)


def torch_runner(model_dir, ids, mask, threads, iters):
    import torch
    from transformers import BertModel
    torch.set_num_threads(threads)
    model = BertModel.from_pretrained(model_dir).eval()
    i, m = torch.from_numpy(ids), torch.from_numpy(mask)

    def run():
        with torch.inference_mode():
            return median_time(lambda: model(input_ids=i, attention_mask=m), iters)
    return run


def time_ours(bench_bin, model_dir, ids, mask, threads, iters, keep_padding=False, bf16=False):
    path = os.path.join(WORK, "inputs.json")
    with open(path, "w") as f:
        json.dump({"input_ids": ids.tolist(), "attention_mask": mask.tolist()}, f)
    cmd = [bench_bin, "--model", model_dir, "--ids", path, "--threads", str(threads),
           "--iters", str(iters)]
    if keep_padding:
        cmd.append("--keep-padding")
    if bf16:
        cmd.append("--bf16")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])["median_s"]


def flops_per_sequence(config, lengths):
    """Multiply-adds x 2 of the encoder (linear layers + attention) for these real lengths."""
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    total = 0
    for n in lengths:
        linear = 2 * n * (4 * h * h + 2 * h * i)
        attention = 2 * 2 * n * n * h
        total += layers * (linear + attention)
    return total / len(lengths)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="minilm,bert-base")
    ap.add_argument("--scaling", action="store_true",
                    help="thread-scaling table at batch 32 x 128 instead of the cases")
    args = ap.parse_args()
    os.makedirs(WORK, exist_ok=True)
    bench_bin, bert_bin = build()
    if args.scaling:
        return scaling(args, bench_bin, bert_bin)
    peak = json.loads(subprocess.run([bench_bin, "--fma-peak", "--threads", str(args.threads)],
                                     check=True, capture_output=True, text=True).stdout)
    log(f"FMA peak: {peak['fma_peak_gflops_1_thread']:.1f} GFLOP/s per thread, "
        f"{peak['fma_peak_gflops']:.1f} with {args.threads} threads ({peak['isa']})")
    results = {"threads": args.threads, "fma_peak": peak, "rows": []}
    mixed_lengths = [8 + (b * 37) % 121 for b in range(32)]
    for name in args.models.split(","):
        mdir, config, qdir, (onnx_raw, onnx_fp32, onnx_int8) = prepare_model(name, bert_bin)
        cases = [("batch 1 x 16", 1, 16, None), ("batch 1 x 128", 1, 128, None),
                 ("batch 32 x 128", 32, 128, None), ("mixed 32 x 8..128", 32, 128, mixed_lengths)]
        for label, batch, seq, lengths in cases:
            ids, mask = make_inputs(config["vocab_size"], batch, seq, lengths)
            real = lengths or [seq] * batch
            t = args.threads
            it = max(3, args.iters // (4 if batch > 1 else 1)) * (8 if seq <= 16 else 1)
            engines = {
                "ours_f32": lambda: time_ours(bench_bin, mdir, ids, mask, t, it),
                "ours_bf16": lambda: time_ours(bench_bin, mdir, ids, mask, t, it, bf16=True),
                "ours_int8": lambda: time_ours(bench_bin, qdir, ids, mask, t, it),
                "ov_f32": openvino_runner(onnx_raw, ids, mask, t, it, "f32"),
                "ov_bf16": openvino_runner(onnx_raw, ids, mask, t, it, "bf16"),
                "ort_f32": ort_runner(onnx_fp32, ids, mask, t, it),
                "ort_int8": ort_runner(onnx_int8, ids, mask, t, it),
                "torch_f32": torch_runner(mdir, ids, mask, t, it),
            }
            if lengths:
                engines["ours_f32_padded"] = lambda: time_ours(bench_bin, mdir, ids, mask, t, it,
                                                               True)
            # Rounds interleave the engines, so that a burst of load from elsewhere on the
            # machine falls on all of them alike; each engine's figure is its median round.
            rounds = {k: [] for k in engines}
            for _ in range(args.rounds):
                for k, run_engine in engines.items():
                    rounds[k].append(run_engine())
            row = {"model": name, "case": label, "batch": batch, "real_tokens": int(mask.sum())}
            row.update({k: statistics.median(v) for k, v in rounds.items()})
            gflop = flops_per_sequence(config, real) * batch / 1e9
            row["ours_f32_gflops"] = gflop / row["ours_f32"]
            row["ours_f32_of_peak"] = row["ours_f32_gflops"] / peak["fma_peak_gflops"]
            results["rows"].append(row)
            log(json.dumps(row))
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print_table(results)


def prepare_model(name, bert_bin):
    """The model's directory, its config, its int8 copy and its ONNX exports (raw, fp32, int8)."""
    mdir = minilm_dir() if name == "minilm" else bert_base_dir()
    with open(os.path.join(mdir, "config.json")) as f:
        config = json.load(f)
    return mdir, config, quantized_dir(bert_bin, mdir, name), export_onnx(mdir, name)


def scaling(args, bench_bin, bert_bin):
    cores = os.cpu_count() or 1
    counts = sorted({1 << i for i in range(cores.bit_length()) if 1 << i <= cores} | {cores})
    for name in args.models.split(","):
        mdir, config, qdir, (onnx_raw, onnx_fp32, onnx_int8) = prepare_model(name, bert_bin)
        ids, mask = make_inputs(config["vocab_size"], 32, 128)
        it = max(3, args.iters // 4)
        table = {}
        for t in counts:
            engines = {
                "ours f32": lambda: time_ours(bench_bin, mdir, ids, mask, t, it),
                "ours bf16": lambda: time_ours(bench_bin, mdir, ids, mask, t, it, bf16=True),
                "ours int8": lambda: time_ours(bench_bin, qdir, ids, mask, t, it),
                "OpenVINO f32": openvino_runner(onnx_raw, ids, mask, t, it, "f32"),
                "OpenVINO bf16": openvino_runner(onnx_raw, ids, mask, t, it, "bf16"),
                "ORT f32": ort_runner(onnx_fp32, ids, mask, t, it),
                "ORT int8": ort_runner(onnx_int8, ids, mask, t, it),
            }
            rounds = {k: [] for k in engines}
            for _ in range(args.rounds):
                for k, run_engine in engines.items():
                    rounds[k].append(run_engine())
            for k, v in rounds.items():
                table.setdefault(k, {})[t] = 32 / statistics.median(v)
            log(f"{name} {t} threads: " + ", ".join(f"{k} {table[k][t]:.1f}" for k in table))
        print(f"\n{name}, batch 32 x 128, seq/s by threads ({cores} cores here); last column: "
              f"parallel efficiency at {counts[-1]} threads\n")
        print("| engine | " + " | ".join(str(t) for t in counts) + " | efficiency |")
        print("|---|" + "---|" * (len(counts) + 1))
        for k, rates in table.items():
            eff = rates[counts[-1]] / (counts[-1] * rates[1])
            print(f"| {k} | " + " | ".join(f"{rates[t]:.1f}" for t in counts) + f" | {eff:.2f} |")


ENGINES = ("ours_f32", "ours_bf16", "ours_int8", "ov_f32", "ov_bf16", "ort_f32", "ort_int8",
           "torch_f32")


def print_table(results):
    t = results["threads"]
    print(f"\nthreads: {t}; FMA peak {results['fma_peak']['fma_peak_gflops']:.0f} GFLOP/s "
          f"({results['fma_peak']['isa']}); medians; seq/s (higher is better); ratios: ours over "
          f"the best peer of the same precision (f32: OpenVINO, ORT, PyTorch; bf16: OpenVINO "
          f"bf16; int8: ORT int8, OpenVINO bf16)\n")
    head = ("model", "case", "ours f32", "ours bf16", "ours int8", "OV f32", "OV bf16",
            "ORT f32", "ORT int8", "torch f32", "f32 ratio", "bf16 ratio", "int8 ratio",
            "f32 % peak")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results["rows"]:
        sps = {k: r["batch"] / r[k] for k in ENGINES}
        best_f32 = max(sps["ov_f32"], sps["ort_f32"], sps["torch_f32"])
        best_low = max(sps["ort_int8"], sps["ov_bf16"])
        cells = " | ".join(f"{sps[k]:.1f}" for k in ENGINES)
        print(f"| {r['model']} | {r['case']} | {cells} | {sps['ours_f32'] / best_f32:.2f}x | "
              f"{sps['ours_bf16'] / sps['ov_bf16']:.2f}x | {sps['ours_int8'] / best_low:.2f}x | "
              f"{100 * r['ours_f32_of_peak']:.0f}% |")
    for r in results["rows"]:
        if "ours_f32_padded" in r:
            print(f"\n{r['model']} {r['case']}: padding removed {r['real_tokens'] / r['ours_f32']:.0f}"
                  f" tokens/s vs padded path {r['real_tokens'] / r['ours_f32_padded']:.0f} tokens/s"
                  f" = {r['ours_f32_padded'] / r['ours_f32']:.2f}x")


if __name__ == "__main__":
    main()
