#!/usr/bin/env bash
# Builds the c-tag rule into target/c-tag/c_tag.wasm with Debian's clang,
# lld, wasi-libc and libclang-rt-14-dev-wasm32 (scripts/test.sh's e2e lane
# installs them). A WASI reactor: no main, only the contract's exports.
set -euo pipefail
cd "$(dirname "$0")"
out=../../target/c-tag
mkdir -p "$out"
# -mexec-model=reactor: link crt1-reactor.o (no _start, no main); each
# export names itself (export_name in rulebox.h). manifest.s carries the
# manifest section (its .incbin reads manifest.json from this folder).
# -Wl,--strip-all drops names and debug info but keeps custom sections.
clang --target=wasm32-wasi -mexec-model=reactor \
  -O2 -std=c11 -Wall -Wextra -Werror \
  -Wl,--strip-all \
  -o "$out/c_tag.wasm" tag.c config.c frame.c manifest.s
echo "built $(cd "$out" && pwd)/c_tag.wasm"
