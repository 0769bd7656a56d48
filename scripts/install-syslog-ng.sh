#!/usr/bin/env bash
# syslog-ng for the end-to-end tests, beside rsyslog. Debian's syslog-ng and
# rsyslog packages conflict (both provide system-log-daemon), so syslog-ng
# is not installed: its packages are downloaded (apt-get download, no root
# needed) and unpacked into target/syslog-ng/, and target/syslog-ng/syslog-ng
# runs it from there (its libraries and modules found through
# LD_LIBRARY_PATH and --module-path). Nothing outside target/ changes but
# apt's cache: `apt-get update` runs only when a download fails.
#
# Idempotent: a working target/syslog-ng/syslog-ng is left as it is.
# The libraries these packages do not bring (glib, json-c, openssl, ...)
# come from the system, as they do for rsyslog; a missing one is reported.
set -euo pipefail
cd "$(dirname "$0")/.."

dest=target/syslog-ng
packages=(syslog-ng-core libivykis0 libnet1 libpcre3 libwrap0)

if [ -x "$dest/syslog-ng" ] && "$dest/syslog-ng" --version >/dev/null 2>&1; then
  echo "syslog-ng: $dest/syslog-ng is there ($("$dest/syslog-ng" --version | head -n 1))"
  exit 0
fi

# Unpacked beside its destination, then renamed into place: an interrupted
# run leaves no half-made target/syslog-ng.
mkdir -p target
work=$(mktemp -d target/syslog-ng.partial.XXXXXX)
work=$(cd "$work" && pwd)
trap 'rm -rf "$work"' EXIT

download() {
  (cd "$work" && apt-get download "${packages[@]}")
}
if ! download; then
  echo "syslog-ng: download failed; updating apt's package lists and retrying" >&2
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update
  download
fi

mkdir -p "$work/root"
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$work/root"
done
root="$work/root"
[ -x "$root/usr/sbin/syslog-ng" ] || {
  echo "syslog-ng: no usr/sbin/syslog-ng in the packages" >&2
  exit 1
}
modules=$(ls -d "$root"/usr/lib/syslog-ng/3.* | head -n 1)

# The runner: the unpacked syslog-ng with its own libraries and modules.
# Paths are relative to the runner, so the folder can move.
rel() { echo "${1#"$root"/}"; }
libs=""
for d in "$root"/usr/lib/syslog-ng "$root"/usr/lib/*-linux-gnu "$root"/lib/*-linux-gnu; do
  [ -d "$d" ] && libs="$libs\${here}/$(rel "$d"):"
done
cat >"$root/syslog-ng" <<EOF
#!/bin/sh
# syslog-ng unpacked by scripts/install-syslog-ng.sh; arguments as syslog-ng's.
here=\$(cd "\$(dirname "\$0")" && pwd)
export LD_LIBRARY_PATH="${libs}\${LD_LIBRARY_PATH:-}"
exec "\$here/usr/sbin/syslog-ng" --module-path="\$here/$(rel "$modules")" "\$@"
EOF
chmod +x "$root/syslog-ng"

# Every shared library it and its modules need must resolve.
missing=$(
  export LD_LIBRARY_PATH="${libs//\$\{here\}/$root}"
  for f in "$root/usr/sbin/syslog-ng" "$modules"/*.so; do
    ldd "$f" | grep 'not found' || true
  done | sort -u
)
if [ -n "$missing" ]; then
  echo "syslog-ng: libraries missing on this system:" >&2
  echo "$missing" >&2
  exit 1
fi

rm -rf "$dest"
mv "$root" "$dest"
echo "syslog-ng: $("$dest/syslog-ng" --version | head -n 1) in $dest"
