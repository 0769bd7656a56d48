#!/usr/bin/env bash
# Events per second through the NATS scale-out (docs/scale-out.md) with 1
# and with 2 classify+aggregate process pairs on this machine: the events
# are fed into RULEBOX_RAW first (the feed is timed on its own), then the
# processes drain it; a round's time is from their start to the exit of
# the last, less the idle end (1 s) after which they stop (it includes
# their start and the aggregates' first lease round, lease_ttl_secs / 3).
# Rounds are interleaved (1, 2, 1, 2, ...), each on a fresh JetStream
# store, after one warm-up round that fills the compiled-module caches;
# medians.
# Needs Debian's nats-server (scripts/test.sh e2e installs it).
# Usage: bash scripts/bench-nats.sh [EVENTS] [ROUNDS]   (2000000, 3)
# (Fewer events and the fixed costs, a process's start and the first lease
# round, weigh in the rate.)
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-2000000}"
rounds="${2:-3}"
server=$(command -v nats-server || echo /usr/sbin/nats-server)
[ -x "$server" ] || { echo "bench-nats: nats-server is not installed (apt-get install nats-server)" >&2; exit 1; }
cargo build --locked --release -p rulebox -p rulebox-bench >/dev/null 2>&1
cargo build --locked -p rule-t1071-002 --target wasm32-wasip1 --profile wasm >/dev/null 2>&1
rulebox=$PWD/target/release/rulebox
work=$PWD/target/bench/nats
rm -rf "$work"
mkdir -p "$work"
target/release/gen-events --count "$events" --seed 21 >"$work/events.ndjson"
port=$((20000 + RANDOM % 20000))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
url="nats://127.0.0.1:$port"
wasm=$PWD/target/wasm32-wasip1/wasm/rule_t1071_002.wasm
# The bundled configurations, pointed at this server, the bench's input and
# the built module, with a 1 s idle end.
for f in feed classify aggregate; do
  sed -e "s#nats://127.0.0.1:4222#$url#" -e "s#\"../sample/events.ndjson\"#\"$work/events.ndjson\"#" \
    -e "s#\"../../target/wasm32-wasip1/wasm/rule_t1071_002.wasm\"#\"$wasm\"#" \
    -e "s#^idle_end_secs = .*#idle_end_secs = 1#" -e "s#^data_dir = .*#data_dir = \"$work/data-$f\"#" \
    "configs/nats/$f.toml" >"$work/$f.toml"
done
server_pid=""
stop_server() { [ -z "$server_pid" ] || { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }; server_pid=""; }
# The JetStream store holds every event a round fed: gone at the end.
trap 'stop_server; rm -rf "$work/js"' EXIT
fresh_server() {
  stop_server
  # A fresh JetStream store; the data dirs (their compiled-module cache)
  # stay, so no round pays for compiling the rule.
  rm -rf "$work/js" "$work/data-feed"
  sed "s#127.0.0.1:4222#127.0.0.1:$port#" configs/nats/nats-server.conf >"$work/nats-server.conf"
  "$server" -c "$work/nats-server.conf" -sd "$work/js" >"$work/nats-server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return; sleep 0.05; done
  echo "bench-nats: nats-server did not start" >&2; exit 1
}
now() { date +%s.%N; }
declare -A times feeds
for r in $(seq 0 "$rounds"); do
  for n in 1 2; do
    [ "$r" -gt 0 ] || [ "$n" = 2 ] || continue
    fresh_server
    t0=$(now)
    "$rulebox" run -c "$work/feed.toml" 2>"$work/feed.log"
    t1=$(now)
    pids=()
    for i in $(seq "$n"); do
      "$rulebox" run -c "$work/classify.toml" --data-dir "$work/data-c$i" 2>"$work/c$i.log" &
      pids+=($!)
      "$rulebox" run -c "$work/aggregate.toml" --data-dir "$work/data-a$i" 2>"$work/a$i.log" &
      pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    t2=$(now)
    got=$(grep -h "source done" "$work"/c*.log | sed 's/.* events=\([0-9]*\).*/\1/' | awk '{s+=$1} END {print s+0}')
    [ "$got" -ge "$events" ] || { echo "bench-nats: classify read $got of $events events" >&2; exit 1; }
    if [ "$r" = 0 ]; then
      rm -f "$work"/c*.log "$work"/a*.log
      continue
    fi
    times[$n]+="$(awk -v a="$t2" -v b="$t1" 'BEGIN {print a - b - 1}') "
    feeds[$n]+="$(awk -v a="$t1" -v b="$t0" 'BEGIN {print a - b}') "
    rm -f "$work"/c*.log "$work"/a*.log
  done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
out=target/bench/nats.md
{
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $events events, $rounds interleaved rounds, $(nproc) cores"
  echo
  echo "| processes | drain s (median) | events/s | feed s (median) | feed events/s |"
  echo "|---|---:|---:|---:|---:|"
  for n in 1 2; do
    d=$(echo "${times[$n]}" | median)
    f=$(echo "${feeds[$n]}" | median)
    awk -v n="$n" -v d="$d" -v f="$f" -v e="$events" \
      'BEGIN {printf "| %s classify + %s aggregate | %.2f | %.0f | %.2f | %.0f |\n", n, n, d, e / d, f, e / f}'
  done
} | tee "$out"
