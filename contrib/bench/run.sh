#!/usr/bin/env bash
# contrib/bench/run.sh - edgekv throughput and latency against two reference points, in one run.
#
#   contrib/bench/run.sh [--duration 10] [--connections 50] [--rounds 3] [--edgekv PATH]
#
# Starts a private redis-server (CPU 1) and edgekv (one worker thread, CPU 0), loads data, and
# runs wrk (CPU 1) for: hot hits (100-byte values, random keys of the loaded
# set), 90/10 read/write, all-miss (Cache-Control: no-cache: every request reads Redis), all-put
# and 64 KiB values. In the same run: nginx (one worker, CPU 0) serving a 100-byte static file, and
# redis-benchmark GET/SET (same connection count, on CPU 1) as the origin's ceiling, over TCP
# loopback (the transport wrk uses to reach edgekv: the like-for-like reference) and over the
# unix socket edgekv uses to reach Redis. Prints a table of requests/s, p50 and p99, and the
# ratios edgekv-hit/nginx and edgekv-miss/redis-benchmark.
#
# The machines this runs on drift (a shared VM's speed can change by a third within a minute), so
# each ratio comes from paired runs: edgekv right after its reference, --rounds times, and the
# ratio reported is the median of the rounds' ratios (each round's is printed too). The table
# shows, for those four, the round with the median requests/s.
# Needs: wrk, nginx (nginx-light), redis-server, redis-tools (redis-benchmark), curl, taskset.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/contrib/bench"
DURATION=10
CONNS=50
ROUNDS=3
EDGEKV=${EDGEKV_BIN:-$top/build/check/edgekv}
KEYS=10000
BIG_KEYS=100
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --edgekv) EDGEKV=$2; shift 2 ;;
        *) echo "usage: $0 [--duration S] [--connections N] [--rounds N] [--edgekv PATH]" >&2; exit 2 ;;
    esac
done
for tool in wrk nginx redis-server redis-benchmark redis-cli curl taskset; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install wrk nginx-light redis-server redis-tools curl)" >&2; exit 1; }
done
[ -x "$EDGEKV" ] || { echo "no edgekv at $EDGEKV: build it first (contrib/quickstart.sh test builds build/check/edgekv)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || echo "warning: fewer than 2 CPUs: pinning is meaningless" >&2

work=$(mktemp -d /tmp/edgekv-bench.XXXXXX)
chmod 755 "$work" # nginx's workers (www-data) read the static file from it
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# ---------------------------------------------------------------- servers
sock="$work/redis.sock"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rport=$(free_port)
# Redis on CPU 1 with the load generators: edgekv (or nginx) alone on CPU 0 is what is measured,
# and redis-benchmark then shares CPU 1 with Redis exactly as wrk does in the miss runs
taskset -c 1 redis-server --bind 127.0.0.1 --port "$rport" --unixsocket "$sock" --save "" --appendonly no \
    --daemonize no --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -s "$sock" ping >/dev/null 2>&1 && break; sleep 0.05; done

taskset -c 0 "$EDGEKV" --listen 127.0.0.1:0 --threads 1 --origin "unix://$sock" \
    --max-connections 4096 --log-level info --cache-max-bytes 512mb 2>"$work/edgekv.log" &
pids+=($!)
port=
for _ in $(seq 100); do
    port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/edgekv.log" 2>/dev/null | head -1 | sed 's/.*://' || true)
    [ -n "$port" ] && break
    sleep 0.05
done
[ -n "$port" ] || { echo "edgekv did not start:" >&2; cat "$work/edgekv.log" >&2; exit 1; }
base="http://127.0.0.1:$port"

mkdir -p "$work/www" "$work/nginx"
head -c 100 /dev/zero | tr '\0' 'x' >"$work/www/value"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:0;
        root $work/www;
    }
}
NGINX
# nginx cannot listen on port 0: pick a free port
nport=$(free_port)
sed -i "s/127.0.0.1:0/127.0.0.1:$nport/" "$work/nginx/nginx.conf"
taskset -c 0 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
sleep 0.3

# ---------------------------------------------------------------- data
sid=$(curl -fsS -X POST "$base/resources/stores/kv" -d '{"name":"bench"}' | sed 's/.*"id":"\([a-z0-9]*\)".*/\1/')
small=$(head -c 100 /dev/zero | tr '\0' 'v')
echo "loading $KEYS keys of 100 bytes and $BIG_KEYS of 64 KiB..."
{
    for i in $(seq 0 $((KEYS - 1))); do
        printf '{"key":"k%d","value":"%s"}\n' "$i" "$(printf '%s' "$small" | base64 -w0)"
    done
} >"$work/batch.ndjson"
curl -fsS -X PUT "$base/resources/stores/kv/$sid/batch" --data-binary @"$work/batch.ndjson" >/dev/null
big=$(head -c 65536 /dev/urandom | base64 -w0)
for i in $(seq 0 $((BIG_KEYS - 1))); do
    printf '{"key":"big%d","value":"%s"}\n' "$i" "$big"
done >"$work/big.ndjson"
curl -fsS -X PUT "$base/resources/stores/kv/$sid/batch" --data-binary @"$work/big.ndjson" >/dev/null
redis-cli -s "$sock" set bench:value "$small" >/dev/null

# ---------------------------------------------------------------- runs
results="$work/results"
: >"$results"
# wrk_run NAME URL [SCRIPT] [ENV...]: records "NAME rps p50_ms p99_ms" (with $C connections,
# $CONNS unless set)
wrk_run() {
    local name=$1 url=$2 script=${3:-}
    shift 3 || shift $#
    local out="$work/$name.txt"
    env "$@" taskset -c 1 wrk -t1 -c"${C:-$CONNS}" -d"${DURATION}s" --latency \
        ${script:+-s "$here/$script"} "$url" >"$out" 2>&1
    local rps p50 p99
    rps=$(awk '/Requests\/sec/ {print $2}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    echo "$name $rps $(to_ms "$p50") $(to_ms "$p99")" >>"$results"
    if grep -q "Non-2xx" "$out"; then echo "  ($name: $(grep Non-2xx "$out"))"; fi
}
to_ms() { # wrk prints 123.45us / 1.23ms / 1.02s
    case "$1" in
        *us) awk -v v="${1%us}" 'BEGIN {printf "%.3f", v / 1000}' ;;
        *ms) awk -v v="${1%ms}" 'BEGIN {printf "%.3f", v}' ;;
        *s) awk -v v="${1%s}" 'BEGIN {printf "%.3f", v * 1000}' ;;
        *) echo "?" ;;
    esac
}

echo "warming the cache..."
EKV_KEYS=$KEYS taskset -c 1 wrk -t1 -c"$CONNS" -d3s -s "$here/random_get.lua" "$base" >/dev/null 2>&1
# "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",...
# redis_bench TESTS SUFFIX ADDRESS...: records "redis-benchmark-<test><SUFFIX> rps p50 p99" for
# each of TESTS (get,set)
redis_bench() {
    local tests=$1 suffix=$2
    shift 2
    taskset -c 1 redis-benchmark "$@" -t "$tests" -n $((50000 * DURATION)) -c "$CONNS" -d 100 \
        --csv 2>/dev/null |
        awk -F'"' -v s="$suffix" \
            '$2 == "GET" || $2 == "SET" {print "redis-benchmark-" tolower($2) s, $4, $10, $14}' \
            >>"$results"
}

echo "running (each ${DURATION}s, $CONNS connections; $ROUNDS paired rounds)..."
for r in $(seq "$ROUNDS"); do
    wrk_run "nginx-static#$r" "http://127.0.0.1:$nport/value" ""
    wrk_run "edgekv-hit#$r" "$base" random_get.lua EKV_KEYS=$KEYS
    wrk_run "edgekv-miss#$r" "$base" random_get.lua EKV_KEYS=$KEYS EKV_NO_CACHE=1
    redis_bench get "#$r" -h 127.0.0.1 -p "$rport"
done
# hits once more with 10 connections: at 50, wrk itself saturates its CPU (perf sched: CPU 1
# busy all the time) and its own queueing enters the latencies it reports
C=10 wrk_run edgekv-hit-10conns "$base" random_get.lua EKV_KEYS=$KEYS
wrk_run edgekv-90r10w "$base" mixed.lua EKV_KEYS=$KEYS
wrk_run edgekv-put "$base" put.lua EKV_KEYS=$KEYS
wrk_run edgekv-64k-hit "$base" random_get.lua EKV_KEYS=$BIG_KEYS EKV_PREFIX=big
redis_bench set "" -h 127.0.0.1 -p "$rport"
redis_bench get,set "-unix" -s "$sock"

# ---------------------------------------------------------------- report
# median NAME: the row of NAME's round with the median requests/s, renamed NAME
median() {
    awk -v n="$1" 'index($1, n "#") == 1 {sub(/#.*/, "", $1); print}' "$results" | sort -k2,2g |
        awk '{row[NR] = $0} END {if (NR > 0) print row[int((NR + 1) / 2)]}'
}
# paired NAME REF: "median (round ratios...)" of NAME/REF over the rounds
paired() {
    local r a b list=""
    for r in $(seq "$ROUNDS"); do
        a=$(awk -v n="$1#$r" '$1 == n {print $2}' "$results")
        b=$(awk -v n="$2#$r" '$1 == n {print $2}' "$results")
        list="$list $(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }')"
    done
    echo "$list" | tr ' ' '\n' | grep -v '^$' | sort -g |
        awk -v l="$list" '{v[NR] = $1} END {printf "%s (rounds:%s)", v[int((NR + 1) / 2)], l}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }'; }
get() { awk -v n="$1" '$1 == n {print $2}' "$results"; }
{
    for name in nginx-static edgekv-hit edgekv-miss redis-benchmark-get; do median "$name"; done
    grep -v '#' "$results"
} >"$work/table"
echo
printf '%-24s %12s %10s %10s\n' "benchmark" "requests/s" "p50 ms" "p99 ms"
while read -r name rps p50 p99; do
    printf '%-24s %12s %10s %10s\n' "$name" "$rps" "$p50" "$p99"
done <"$work/table"
echo
echo "edgekv-hit / nginx-static:          $(paired edgekv-hit nginx-static)  (target >= 1.0)"
echo "edgekv-miss / redis-benchmark GET:  $(paired edgekv-miss redis-benchmark-get)  (target >= 0.8)"
echo "  over the unix socket (one run):   $(ratio "$(awk '$1 == "edgekv-miss" {print $2}' "$work/table")" "$(get redis-benchmark-get-unix)")"
echo "edgekv-put / redis-benchmark SET:   $(ratio "$(get edgekv-put)" "$(get redis-benchmark-set)")  (over the unix socket: $(ratio "$(get edgekv-put)" "$(get redis-benchmark-set-unix)"))"
echo "edgekv-hit p99: $(awk '$1 == "edgekv-hit" {print $4}' "$work/table") ms (median round);" \
    "with 10 connections: $(awk '$1 == "edgekv-hit-10conns" {print $4}' "$results") ms (target <= 1 ms)"
