#!/usr/bin/env bash
# contrib/bench/idle.sh - what idle keep-alive connections cost (issue 15): RSS per connection
# and the latency of normal traffic beside them.
#
#   contrib/bench/idle.sh [--idle 10000] [--duration 10] [--edgekv PATH]
#
# Starts a private redis-server and edgekv (one worker thread, CPU 0; wrk on CPU 1), loads 1000
# keys of 100 bytes, and measures with wrk (20 connections, random keys: hits) the p50/p99 of an
# idle server; then opens IDLE keep-alive connections that each sent one request and stay open
# (a python3 holder), reads edgekv's RSS, and runs wrk again beside them.
# Prints RSS before/after, bytes per idle connection, and p99 with idle connections / p99
# without (the issue's bound: 2x). Needs wrk, redis-server, redis-cli, curl, python3, taskset.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/contrib/bench"
IDLE=10000
DURATION=10
EDGEKV=${EDGEKV_BIN:-$top/build/check/edgekv}
while [ $# -gt 0 ]; do
    case "$1" in
        --idle) IDLE=$2; shift 2 ;;
        --duration) DURATION=$2; shift 2 ;;
        --edgekv) EDGEKV=$2; shift 2 ;;
        *) echo "usage: $0 [--idle N] [--duration S] [--edgekv PATH]" >&2; exit 2 ;;
    esac
done
for tool in wrk redis-server redis-cli curl python3 taskset; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ -x "$EDGEKV" ] || { echo "no edgekv at $EDGEKV" >&2; exit 1; }
ulimit -n $((IDLE + 1024)) 2>/dev/null || { echo "cannot raise the descriptor limit to $((IDLE + 1024))" >&2; exit 1; }

work=$(mktemp -d /tmp/edgekv-idle.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

sock="$work/redis.sock"
taskset -c 1 redis-server --port 0 --unixsocket "$sock" --save "" --appendonly no \
    --daemonize no --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -s "$sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
taskset -c 0 "$EDGEKV" --listen 127.0.0.1:0 --threads 1 --origin "unix://$sock" \
    --max-connections $((IDLE + 1000)) --idle-timeout 10m 2>"$work/edgekv.log" &
ekpid=$!
pids+=($ekpid)
port=
for _ in $(seq 100); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/edgekv.log" 2>/dev/null | head -1 | sed 's/.*://' || true)
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { cat "$work/edgekv.log" >&2; exit 1; }
base="http://127.0.0.1:$port"
sid=$(curl -fsS -X POST "$base/resources/stores/kv" -d '{"name":"idle"}' | sed 's/.*"id":"\([a-z0-9]*\)".*/\1/')
v=$(head -c 100 /dev/zero | tr '\0' 'v' | base64 -w0)
for i in $(seq 0 999); do printf '{"key":"k%d","value":"%s"}\n' "$i" "$v"; done >"$work/batch"
curl -fsS -X PUT "$base/resources/stores/kv/$sid/batch" --data-binary @"$work/batch" >/dev/null

rss() { awk '/^VmRSS/ {print $2}' "/proc/$ekpid/status"; }
p99() { # wrk's latency distribution line "99%  1.23ms" in microseconds
    awk '$1 == "99%" { v = $2; u = 1; if (v ~ /us$/) u = 1; else if (v ~ /ms$/) u = 1000; else if (v ~ /s$/) u = 1000000;
                       sub(/[a-z]+$/, "", v); printf "%d\n", v * u }'
}
run_wrk() {
    EKV_STORE=idle EKV_KEYS=1000 taskset -c 1 wrk -t1 -c20 -d"${DURATION}s" --latency -s "$here/random_get.lua" "$base" 2>&1
}
# warm the cache and the allocator
run_wrk >/dev/null
out0=$(run_wrk)
r0=$(rss)
cat >"$work/hold.py" <<'PY'
import socket, sys, time
n, port = int(sys.argv[1]), int(sys.argv[2])
req = b"GET /resources/stores/kv HTTP/1.1\r\nHost: t\r\n\r\n"
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    socks.append(s)
for s in socks:
    s.recv(65536)           # its answer: the connection is now idle, kept alive
print("ready", flush=True)
time.sleep(100000)
PY
taskset -c 1 python3 "$work/hold.py" "$IDLE" "$port" >"$work/hold.out" &
pids+=($!)
for _ in $(seq 600); do grep -q ready "$work/hold.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$work/hold.out" || { echo "the idle connections did not open" >&2; exit 1; }
sleep 1
r1=$(rss)
out1=$(run_wrk)
l0=$(echo "$out0" | p99)
l1=$(echo "$out1" | p99)
rps0=$(echo "$out0" | awk '/Requests\/sec/ {print $2}')
rps1=$(echo "$out1" | awk '/Requests\/sec/ {print $2}')
echo "idle connections:           $IDLE"
echo "edgekv RSS:                 ${r0} KiB idle server, ${r1} KiB with them"
echo "per idle connection:        $(( (r1 - r0) * 1024 / IDLE )) bytes"
echo "hits without / with them:   ${rps0} / ${rps1} requests/s"
echo "p99 without / with them:    ${l0} us / ${l1} us (ratio $(awk -v a="$l1" -v b="$l0" 'BEGIN { printf "%.2f", a / b }'))"
