#!/usr/bin/env bash
# promtool for the end-to-end tests: they check the /metrics answer with
# `promtool check metrics`. Debian ships it inside the prometheus package,
# whose daemon we do not want installed or started: the package is
# downloaded (apt-get download, no root needed) and unpacked into
# target/promtool/, and the tests run target/promtool/usr/bin/promtool
# (a static Go binary: it needs no library). Nothing outside target/
# changes but apt's cache: `apt-get update` runs only when a download
# fails.
#
# Idempotent: a working target/promtool/usr/bin/promtool is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=target/promtool
tool="$dest/usr/bin/promtool"

if [ -x "$tool" ] && "$tool" --version >/dev/null 2>&1; then
  echo "promtool: $tool is there ($("$tool" --version 2>&1 | head -n 1))"
  exit 0
fi

# Unpacked beside its destination, then renamed into place: an interrupted
# run leaves no half-made target/promtool.
mkdir -p target
work=$(mktemp -d target/promtool.partial.XXXXXX)
work=$(cd "$work" && pwd)
trap 'rm -rf "$work"' EXIT

download() {
  (cd "$work" && apt-get download prometheus)
}
if ! download; then
  echo "promtool: download failed; updating apt's package lists and retrying" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update
  download
fi

mkdir -p "$work/root"
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
[ -x "$work/root/usr/bin/promtool" ] || {
  echo "promtool: no usr/bin/promtool in the package" >&2
  exit 1
}

rm -rf "$dest"
mv "$work/root" "$dest"
echo "promtool: $("$tool" --version 2>&1 | head -n 1) in $dest"
