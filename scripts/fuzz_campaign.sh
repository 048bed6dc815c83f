#!/usr/bin/env bash
# Long fuzz campaigns: every cargo-fuzz target for SECONDS each, JOBS targets at a time, then
# a table of executions, speed, coverage and crashes (fuzz/campaign/results.md, .csv) and the
# corpus each run grew, minimized (cargo fuzz cmin) into fuzz/seeds/TARGET, which is committed
# and which every later run (CI's too) starts from. Crashes are left in fuzz/artifacts/TARGET.
#
# Usage: scripts/fuzz_campaign.sh [SECONDS=3600] [JOBS=2] [TARGET ...]   (default: all)
# SPEED_SECONDS (default 15; 0 skips it): before the campaigns, each target runs alone for that
# long, so the table's "exec/s alone" is the target's speed on one uncontended core, apart from
# how many campaigns shared the machine. The table also gives each campaign's CPU seconds
# (user + system, from /usr/bin/time), which is what a campaign got when JOBS > cores.
# Needs: rustup's nightly toolchain and cargo-fuzz 0.13 (`cargo install cargo-fuzz`).
#
# Builds: targets that reach unsafe code (the kernels, the safetensors parser's aligned views)
# run with AddressSanitizer. Targets that spend their time in safe code of the `tokenizers`
# crate, hyper, tokio and serde_json (tokenize, tokenizer_json, wordpiece_diff, server_requests, trainer_state)
# or in the core's safe WordPiece code (wordpiece_vocab) run without a sanitizer
# and without comparison tracing, which is what it takes them to pass 10,000 runs a second;
# their bugs are panics and wrong answers, which that build still catches.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-3600}
jobs=${2:-2}
shift $(( $# > 2 ? 2 : $# )) || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
fast_targets=" tokenize tokenizer_json wordpiece_diff wordpiece_vocab server_requests trainer_state "
flags_for() {
  if [[ "$fast_targets" == *" $1 "* ]]; then
    echo "-O -s none --no-trace-compares --target-dir target/fast"
  else
    echo "-O"
  fi
}
build_of() { [[ "$fast_targets" == *" $1 "* ]] && echo "no sanitizer" || echo "ASan"; }

out=campaign
mkdir -p "$out"
echo "building ($(nproc) cores) ..."
cargo +nightly fuzz build -O
for t in $fast_targets; do
  cargo +nightly fuzz build -O -s none --no-trace-compares --target-dir target/fast "$t"
done

speed_seconds=${SPEED_SECONDS:-15}
declare -A alone
if [ "$speed_seconds" -gt 0 ]; then
  for t in "${targets[@]}"; do
    mkdir -p "seeds/$t" "regressions/$t"
    scratch=$(mktemp -d)
    # shellcheck disable=SC2046
    cargo +nightly fuzz run $(flags_for "$t") "$t" "$scratch" "seeds/$t" "regressions/$t" -- \
      -max_total_time="$speed_seconds" -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$scratch/" >"$out/$t.alone.log" 2>&1 || true
    rm -rf "$scratch"
    alone[$t]=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$out/$t.alone.log" | grep -o '[0-9]*$' || echo 0)
    echo "alone: $t ${alone[$t]} exec/s"
  done
fi

run_one() {
  local t=$1
  mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
  # shellcheck disable=SC2046
  mkdir -p "regressions/$t"
  /usr/bin/time -f "cpu_seconds %U %S" -o "$out/$t.time" \
    cargo +nightly fuzz run $(flags_for "$t") "$t" "corpus/$t" "seeds/$t" "regressions/$t" -- \
    -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" >"$out/$t.log" 2>&1 || true
}

started=$(date +%s)
running=0
for t in "${targets[@]}"; do
  run_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait
echo "campaign: $(( $(date +%s) - started )) s"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
{
  echo "Machine: $cpu, $(nproc) cores, $jobs campaigns at a time; $seconds s per target."
  echo
  echo "| target | build | seconds (wall) | CPU seconds | executions | exec/s | exec/s alone | coverage (edges) | features | corpus | crashes |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|"
} >"$out/results.md"
echo "target,build,seconds,cpu_seconds,executions,exec_per_s,exec_per_s_alone,edges,features,corpus,crashes" >"$out/results.csv"
for t in "${targets[@]}"; do
  log="$out/$t.log"
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  edges=$(echo "$last" | grep -o 'cov: [0-9]*' | grep -o '[0-9]*' || echo 0)
  feats=$(echo "$last" | grep -o 'ft: [0-9]*' | grep -o '[0-9]*' || echo 0)
  crashes=$(find "artifacts/$t" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
  # The grown corpus joins the seeds, and the whole is minimized in place: the committed
  # corpus, the smallest set of inputs with the same coverage.
  find "corpus/$t" -type f -exec cp -n {} "seeds/$t/" \;
  # shellcheck disable=SC2046
  cargo +nightly fuzz cmin $(flags_for "$t") "$t" "seeds/$t" >"$out/$t.cmin.log" 2>&1 || true
  cpu_s=$(awk '/^cpu_seconds/ {printf "%d", $2 + $3}' "$out/$t.time" 2>/dev/null || echo "?")
  corpus="$(find "seeds/$t" -type f | wc -l) files, $(du -sk "seeds/$t" | cut -f1) KB"
  echo "| \`$t\` | $(build_of "$t") | $seconds | $cpu_s | $execs | $rate | ${alone[$t]:-} | $edges | $feats | $corpus | $crashes |" >>"$out/results.md"
  echo "$t,$(build_of "$t"),$seconds,$cpu_s,$execs,$rate,${alone[$t]:-},$edges,$feats,$corpus,$crashes" >>"$out/results.csv"
done
cat "$out/results.md"
