#!/usr/bin/env bash
# `bert serve` against text-embeddings-inference (TEI) on the same machine, model and load:
# each server is started in turn, its first-answer time measured (start to the first 200 of
# `/embed`), the same load generator (examples/load_embed.rs: 1/16/64 clients, short and
# 128-token inputs, batches of 1 and 32) run against it, its peak RSS read (VmHWM), and it is
# stopped. Both admit 4,096 concurrent inputs (TEI counts inputs, not requests: its default
# 512 refuses 64 clients sending 32 each). The two servers' embeddings of the same texts are compared first (cosine).
# Output: target/bench/vs_tei.md (the README's table) and vs_tei.jsonl.
#
# Usage: scripts/bench_vs_tei.sh TEI_BINARY [MODEL_DIR] [SECONDS_PER_CASE=5]
# TEI_BINARY: text-embeddings-router built from source (how: README, "Against TEI").
set -euo pipefail
cd "$(dirname "$0")/.."
tei=${1:?usage: scripts/bench_vs_tei.sh TEI_BINARY [MODEL_DIR] [SECONDS]}
model=${2:-}
seconds=${3:-5}
cargo build --release -q -p bert-std --bin bert
cargo build --release -q --example load_embed
bert=target/release/bert
if [ -z "$model" ]; then
  # The default model, fetched into the cache by any first use (`bert embed` with no --model).
  "$bert" embed warm >/dev/null
  model=${BERT_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/bert-rs/models}/all-minilm-l6-v2
fi
out=target/bench
mkdir -p "$out"
jsonl=$out/vs_tei.jsonl
: >"$jsonl"
port=18090

start_server() { # name -> pid on stdout
  case $1 in
    bert) "$bert" serve --model "$model" --port "$port" --max-concurrent-requests 4096 >"$out/$1.log" 2>&1 & ;;
    tei) "$tei" --model-id "$model" --port "$port" --max-concurrent-requests 4096 >"$out/$1.log" 2>&1 & ;;
  esac
  echo $!
}

first_answer() { # seconds from now until /embed answers 200
  local t0 now
  t0=$(date +%s.%N)
  until curl -sf -m 5 -X POST "http://127.0.0.1:$port/embed" -H 'content-type: application/json' \
      -d '{"inputs": "hello"}' >/dev/null 2>&1; do
    sleep 0.01
    now=$(date +%s.%N)
    if (( $(echo "$now - $t0 > 120" | bc) )); then echo "no answer in 120 s" >&2; return 1; fi
  done
  printf '%.3f' "$(echo "$(date +%s.%N) - $t0" | bc)"
}

texts='{"inputs": ["A man is eating food.", "The new movie is awesome", "the committee reviewed the proposal in detail and decided to postpone the vote"]}'
for name in bert tei; do
  pid=$(start_server "$name")
  ready=$(first_answer)
  curl -s -X POST "http://127.0.0.1:$port/embed" -H 'content-type: application/json' -d "$texts" \
    >"$out/$name.vectors.json"
  target/release/examples/load_embed --url "http://127.0.0.1:$port" --name "$name" \
    --seconds "$seconds" | tee -a "$jsonl"
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  kill "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  echo "{\"server\": \"$name\", \"first_answer_s\": $ready, \"peak_rss_kb\": $hwm}" | tee -a "$jsonl"
done

python3 scripts/vs_tei_table.py "$jsonl" "$out"
