#!/usr/bin/env bash
# Prints the rule crates, one package name a line: the workspace members
# under plugin/, examples/ and templates/ whose [lib] crate-type includes
# "cdylib" (a module a host loads; plugin/abi and plugin/sdk are not).
# scripts/test.sh and scripts/sample.sh build and lint each for
# wasm32-wasip1, so a new rule needs no change to them. Reads the members
# from `cargo metadata --no-deps` (no jq: the scripts need only rustup and
# Debian's base tools).
set -euo pipefail
cd "$(dirname "$0")/.."
meta=$(cargo metadata --no-deps --format-version 1 --locked)
root=$(grep -o '"workspace_root":"[^"]*"' <<<"$meta" | cut -d'"' -f4)
rules=$(
  grep -o '"manifest_path":"[^"]*"' <<<"$meta" | cut -d'"' -f4 |
    while IFS= read -r manifest; do
      case "$manifest" in
        "$root"/plugin/* | "$root"/examples/* | "$root"/templates/*) ;;
        *) continue ;;
      esac
      awk '
        /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]]/, "", section); in_types = 0 }
        { line = $0; sub(/#.*/, "", line) }
        section == "[package]" && name == "" && line ~ /^[[:space:]]*name[[:space:]]*=/ {
          name = line; sub(/^[^"]*"/, "", name); sub(/".*/, "", name)
        }
        section == "[lib]" && line ~ /^[[:space:]]*crate-type[[:space:]]*=/ { in_types = 1 }
        in_types { types = types line; if (line ~ /\]/) in_types = 0 }
        END { if (name != "" && types ~ /"cdylib"/) print name }
      ' "$manifest"
    done
)
if [ -z "$rules" ]; then
  echo "rule-crates: no rule crate under plugin/, examples/ or templates/ (a member whose [lib] crate-type has \"cdylib\")" >&2
  exit 1
fi
echo "$rules"
