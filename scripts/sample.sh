#!/usr/bin/env bash
# Builds everything (the T1071.002 plugin for wasm32-wasip1, the rulebox host)
# and runs configs/default.toml on the bundled sample: enriched events and
# alerts on stdout, the run's summary on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip1
cargo build --locked -p rule-t1071-002 --target wasm32-wasip1 --profile wasm
cargo build --locked --release -p rulebox
exec target/release/rulebox run --config configs/default.toml
