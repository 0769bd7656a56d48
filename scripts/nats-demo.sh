#!/usr/bin/env bash
# Scale-out on one machine, as it would run on several: a local nats-server
# with JetStream (configs/nats/nats-server.conf, Debian's nats-server
# package, installed if missing), the bundled sample fed into the raw
# stream, two classify processes and one aggregate process
# (configs/nats/*.toml, each with its own --data-dir), then the enriched
# events and alerts collected into data/nats-out/. Prints the alerts as a
# table. Everything on loopback; the server and the processes it started
# are stopped at the end.
# Usage: bash scripts/nats-demo.sh   (after the build of scripts/sample.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
rulebox=target/release/rulebox
[ -x "$rulebox" ] || { echo "nats-demo: build first (bash scripts/sample.sh)" >&2; exit 1; }
server=$(command -v nats-server || echo /usr/sbin/nats-server)
if [ ! -x "$server" ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nats-server
fi
if (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null; then
  echo "nats-demo: something already listens on 127.0.0.1:4222" >&2
  exit 1
fi
work=data/nats-demo
rm -rf "$work" data/nats-out data/nats-feed data/nats-collect
mkdir -p "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
"$server" -c configs/nats/nats-server.conf -sd "$work/jetstream" >"$work/nats-server.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/4222) 2>/dev/null && break
  sleep 0.1
done
echo "nats-server on 127.0.0.1:4222 (log: $work/nats-server.log)"
"$rulebox" run -c configs/nats/feed.toml 2>"$work/feed.log"
echo "fed $(wc -l <configs/sample/events.ndjson) events into RULEBOX_RAW"
stages=()
for n in 1 2; do
  "$rulebox" run -c configs/nats/classify.toml --data-dir "$work/classify-$n" 2>"$work/classify-$n.log" &
  stages+=($!)
done
"$rulebox" run -c configs/nats/aggregate.toml --data-dir "$work/aggregate-1" 2>"$work/aggregate-1.log" &
stages+=($!)
pids+=("${stages[@]}")
echo "2 classify processes and 1 aggregate process running (logs in $work/); they end 10 s after the stream is read"
for p in "${stages[@]}"; do wait "$p"; done
"$rulebox" run -c configs/nats/collect.toml 2>"$work/collect.log"
echo "collected: $(wc -l <data/nats-out/enriched.ndjson) enriched events, $(wc -l <data/nats-out/alerts.ndjson) alert lines"
"$rulebox" alerts data/nats-out/alerts.ndjson
