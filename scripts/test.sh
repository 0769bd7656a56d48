#!/usr/bin/env bash
# The whole test suite: formatting and lints (warnings are errors here), the
# plugin for wasm32-wasip1 and the host in release mode, then every test
# (unit tests, and the end-to-end tests that run the real binary and .wasm).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip1
rustup component add rustfmt clippy
cargo fmt --all --check
cargo build --locked -p rule-t1071-002 --target wasm32-wasip1 --profile wasm
cargo build --locked --release -p rulebox -p rulebox-bench
cargo clippy --locked --release --workspace --all-targets -- -D warnings
cargo clippy --locked -p rule-t1071-002 --target wasm32-wasip1 --profile wasm -- -D warnings
cargo test --locked --release --workspace
