#!/usr/bin/env bash
# The benchmark suite (bench/src/bin/bench-suite.rs): builds the rule and the
# host like scripts/sample.sh, then runs every baseline on the same generated
# events, interleaved, and writes a Markdown table to target/bench/results.md.
# Arguments go to bench-suite, e.g. `bash scripts/bench.sh --events 200000 --runs 5`.
# `bash scripts/bench.sh --peers [ARGS]` runs scripts/bench-peers.sh instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--peers" ]; then
    shift
    exec bash scripts/bench-peers.sh "$@"
fi
rustup target add wasm32-wasip1
cargo build --locked -p rule-t1071-002 --target wasm32-wasip1 --profile wasm
cargo build --locked --release -p rulebox -p rulebox-bench
exec target/release/bench-suite "$@"
