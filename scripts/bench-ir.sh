#!/usr/bin/env bash
# Instruction counts (valgrind's callgrind) of the timed part of the
# native-rule and wasm-rule benchmark cases, on the same generated events:
# repeatable where wall-clock times on a shared machine are not, so two
# commits compare exactly. Needs valgrind (`apt-get install valgrind`).
# Usage: bash scripts/bench-ir.sh [EVENTS]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-20000}"
if ! command -v valgrind >/dev/null; then
  echo "bench-ir: valgrind is not installed (apt-get install valgrind)" >&2
  exit 1
fi
# Builds what it needs, generates the input and fills the module cache.
bash scripts/bench.sh --events "$events" --runs 1 --out target/bench/ir-warmup.md >/dev/null 2>&1
input="target/bench/bench-events-$events.ndjson"
count() {
  local case="$1"
  shift
  valgrind --tool=callgrind --collect-atstart=no \
    --toggle-collect="bench_suite::timed_$case" \
    --callgrind-out-file="target/bench/callgrind.$case.out" \
    target/release/bench-suite --case "$case" "$@" 2>&1 |
    sed -n 's/.*Collected : *//p'
}
native=$(count native "$input")
wasm=$(count wasm "$input" target/wasm32-wasip1/wasm/rule_t1071_002.wasm)
echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $events events"
echo "| case | instructions | per event |"
echo "|---|---|---|"
echo "| native-rule | $native | $((native / events)) |"
echo "| wasm-rule | $wasm | $((wasm / events)) |"
awk -v n="$native" -v w="$wasm" 'BEGIN { printf "native / wasm instructions = %.3f\n", n / w }'
echo "per-function counts: callgrind_annotate target/bench/callgrind.{native,wasm}.out"
