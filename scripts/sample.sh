#!/usr/bin/env bash
# Builds everything (every rule crate for wasm32-wasip1, see
# scripts/rule-crates.sh; the rulebox host) and runs configs/default.toml on
# the bundled sample: enriched events and alerts on stdout, the run's
# summary on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip1
rules=$(bash scripts/rule-crates.sh)
for rule in $rules; do
  cargo build --locked -p "$rule" --target wasm32-wasip1 --profile wasm
done
cargo build --locked --release -p rulebox
exec target/release/rulebox run --config configs/default.toml
