"""The README's table from scripts/bench_vs_tei.sh's output: vs_tei.jsonl (and the two servers'
vectors of the same texts) in OUT, written to OUT/vs_tei.md.

Usage: python3 scripts/vs_tei_table.py target/bench/vs_tei.jsonl target/bench
"""
import json
import math
import re
import sys

jsonl, out = sys.argv[1], sys.argv[2]
# bc writes ".47" for 0.47: read such numbers too.
rows = [json.loads(re.sub(r":\s*\.(\d)", r": 0.\1", line)) for line in open(jsonl)]
a = json.load(open(f"{out}/bert.vectors.json"))
b = json.load(open(f"{out}/tei.vectors.json"))
cos = min(sum(x * y for x, y in zip(u, v)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v))
          for u, v in zip(a, b))
cases, meta = {}, {}
for r in rows:
    if "input" in r:
        cases.setdefault((r["input"], r["batch"], r["clients"]), {})[r["server"]] = r
    else:
        meta[r["server"]] = r


def ms(x):
    return "–" if x is None else f"{x:.0f}" if x >= 100 else f"{x:.1f}"


def done(r, seconds):
    n = round(r["requests_per_s"] * seconds)
    return f"{n}" + (f" (+{r['errors']} refused)" if r["errors"] else "")


seconds = 10
lines = [f"Embeddings of the same texts, bert vs TEI: lowest cosine {cos:.6f}.", "",
         "| input | batch | clients | bert inputs/s | TEI inputs/s | bert / TEI | bert p50 / p99 ms"
         " | TEI p50 / p99 ms | requests answered in the window (bert / TEI) |",
         "|---|---|---|---|---|---|---|---|---|"]
for (inp, batch, clients), s in cases.items():
    x, y = s["bert"], s["tei"]
    ratio = x["inputs_per_s"] / y["inputs_per_s"] if y["inputs_per_s"] > 0 else float("inf")
    lines.append(
        f"| {inp} | {batch} | {clients} | {x['inputs_per_s']:.0f} | {y['inputs_per_s']:.1f} | "
        f"{ratio:.1f}× | {ms(x['p50_ms'])} / {ms(x['p99_ms'])} | {ms(y['p50_ms'])} / {ms(y['p99_ms'])} | "
        f"{done(x, seconds)} / {done(y, seconds)} |")
lines += ["", "| server | first answer after start | peak RSS (whole run) |", "|---|---|---|"]
for name in ("bert", "tei"):
    m = meta[name]
    lines.append(f"| {name} | {m['first_answer_s']:.2f} s | {m['peak_rss_kb'] / 1024:.0f} MB |")
open(f"{out}/vs_tei.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
