#!/usr/bin/env bash
# The whole test suite: formatting and lints (warnings are errors here), the
# plugin for wasm32-wasip1 and the host in release mode, then every test
# (unit tests, and the end-to-end tests that run the real binary and .wasm).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip1
rustup component add rustfmt clippy
# The rsyslog end-to-end tests run Debian's rsyslog (started by the tests
# themselves, in the foreground, on loopback ports; no daemon is enabled).
if ! command -v rsyslogd >/dev/null && [ ! -x /usr/sbin/rsyslogd ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rsyslog
fi
cargo fmt --all --check
cargo build --locked -p rule-t1071-002 --target wasm32-wasip1 --profile wasm
cargo build --locked --release -p rulebox -p rulebox-bench
cargo clippy --locked --release --workspace --all-targets -- -D warnings
cargo clippy --locked -p rule-t1071-002 --target wasm32-wasip1 --profile wasm -- -D warnings
# A short fuzz run per target (cargo fuzz, libFuzzer), FUZZ_SECONDS each
# (default 60; 0 skips it, e.g. for a quick local loop), before the test
# suite, which also replays the committed corpus under fuzz/corpus. cargo fuzz
# passes unstable flags to rustc; RUSTC_BOOTSTRAP lets the pinned stable
# toolchain accept them (no sanitizer: the code under test is safe Rust).
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
if [ "$FUZZ_SECONDS" != 0 ]; then
  command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
  for t in event_reader abi_frames config_loader; do
    # New inputs go to target/fuzz-corpus (the committed corpus is only read).
    mkdir -p "target/fuzz-corpus/$t"
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$t" \
      "../target/fuzz-corpus/$t" "corpus/$t" -- \
      -max_total_time="$FUZZ_SECONDS" -max_len=4096)
  done
fi

cargo test --locked --release --workspace
