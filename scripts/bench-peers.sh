#!/usr/bin/env bash
# The peers in the benchmark (bench/peers, its own workspace so that the CI
# lanes never build it): builds the rule, the host and gen-events like
# scripts/bench.sh, then the peers (a VRL `remap` program, a
# `serde_json::Value` program and a borrowed-serde splice program), checks
# each against `rulebox run`'s labels and alerts, and times them all,
# pinned to one CPU and not. Writes a Markdown table to
# target/bench/peers.md. Arguments go to rulebox-peers, e.g.
# `bash scripts/bench-peers.sh --events 1000000 --rounds 5`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v taskset >/dev/null || { echo "bench-peers: taskset (util-linux) is needed" >&2; exit 1; }
rustup target add wasm32-wasip1
cargo build --locked -p rule-t1071-002 --target wasm32-wasip1 --profile wasm
cargo build --locked --release -p rulebox -p rulebox-bench
cargo build --locked --release --manifest-path bench/peers/Cargo.toml
exec bench/peers/target/release/rulebox-peers "$@"
