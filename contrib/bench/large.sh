#!/usr/bin/env bash
# contrib/bench/large.sh - large values: a PUT and a GET of one value (default 25 MiB, the
# largest value-max-bytes allows) through edgekv, against redis-cli's SET and GET of the same
# bytes on the same Redis, in one run.
#
#   contrib/bench/large.sh [--mib 25] [--rounds 5] [--edgekv PATH] [--before PATH]
#
# Starts a private redis-server and edgekv (one worker thread) on a unix socket, then times each
# operation --rounds times and reports the median wall time and the ratios edgekv/redis-cli
# (1.0: edgekv costs what redis-cli needs for the same transfer). The GET carries
# Cache-Control: no-cache, so every GET reads Redis (a 25 MiB value is never cached anyway:
# cache-max-item-bytes). With --before, a second edgekv binary is measured in the same run, each
# round right after the first (a before/after comparison on one machine).
# Needs: redis-server, redis-tools (redis-cli), curl.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
MIB=25
ROUNDS=5
EDGEKV=${EDGEKV_BIN:-$top/build/check/edgekv}
BEFORE=
while [ $# -gt 0 ]; do
    case "$1" in
        --mib) MIB=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --edgekv) EDGEKV=$2; shift 2 ;;
        --before) BEFORE=$2; shift 2 ;;
        *) echo "usage: $0 [--mib N] [--rounds N] [--edgekv PATH] [--before PATH]" >&2; exit 2 ;;
    esac
done
for tool in redis-server redis-cli curl; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install redis-server redis-tools curl)" >&2; exit 1; }
done
for b in "$EDGEKV" ${BEFORE:+"$BEFORE"}; do
    [ -x "$b" ] || { echo "no edgekv at $b: build it first" >&2; exit 1; }
done

work=$(mktemp -d /tmp/edgekv-large.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

sock="$work/redis.sock"
redis-server --port 0 --unixsocket "$sock" --save "" --appendonly no --daemonize no \
    --proto-max-bulk-len 512mb --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -s "$sock" ping >/dev/null 2>&1 && break; sleep 0.05; done

# start_edgekv BIN NAME: starts BIN, sets port_NAME (the "listening on" line is logged at info)
start_edgekv() {
    local bin=$1 name=$2 port=
    "$bin" --listen 127.0.0.1:0 --threads 1 --origin "unix://$sock" --origin-timeout 30s \
        2>"$work/$name.log" &
    pids+=($!)
    for _ in $(seq 100); do
        port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/$name.log" 2>/dev/null | head -1 | sed 's/.*://' || true)
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "edgekv ($bin) did not start:" >&2; cat "$work/$name.log" >&2; exit 1; }
    printf -v "port_$name" '%s' "$port"
}
start_edgekv "$EDGEKV" after
[ -z "$BEFORE" ] || start_edgekv "$BEFORE" before

head -c $((MIB * 1024 * 1024)) /dev/urandom >"$work/value"
sid=$(curl -fsS -X POST "http://127.0.0.1:$port_after/resources/stores/kv" -d '{"name":"large"}' |
      sed 's/.*"id":"\([a-z0-9]*\)".*/\1/')

# timed CMD...: wall time of CMD in ms
timed() {
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}
ekv_put() { curl -fsS -o /dev/null -X PUT --data-binary @"$work/value" "http://127.0.0.1:$1/resources/stores/kv/$sid/keys/big"; }
ekv_get() { curl -fsS -o "$work/got" -H 'Cache-Control: no-cache' "http://127.0.0.1:$1/resources/stores/kv/$sid/keys/big"; }
cli_set() { redis-cli -s "$sock" -x set bench:big <"$work/value"; }
cli_get() { redis-cli -s "$sock" --raw get bench:big >"$work/got-cli"; }

results="$work/results"
: >"$results"
echo "timing a ${MIB} MiB value, $ROUNDS rounds..."
for r in $(seq "$ROUNDS"); do
    echo "redis-cli-set $(timed cli_set)" >>"$results"
    echo "edgekv-put $(timed ekv_put "$port_after")" >>"$results"
    [ -z "$BEFORE" ] || echo "before-put $(timed ekv_put "$port_before")" >>"$results"
    echo "redis-cli-get $(timed cli_get)" >>"$results"
    echo "edgekv-get $(timed ekv_get "$port_after")" >>"$results"
    cmp -s "$work/got" "$work/value" || { echo "edgekv GET returned other bytes" >&2; exit 1; }
    [ -z "$BEFORE" ] || echo "before-get $(timed ekv_get "$port_before")" >>"$results"
done

med() { awk -v n="$1" '$1 == n {print $2}' "$results" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }'; }
echo
printf '%-16s %10s\n' "operation" "median ms"
for n in redis-cli-set edgekv-put ${BEFORE:+before-put} redis-cli-get edgekv-get ${BEFORE:+before-get}; do
    printf '%-16s %10s\n' "$n" "$(med "$n")"
done
echo
echo "edgekv PUT / redis-cli SET: $(ratio "$(med edgekv-put)" "$(med redis-cli-set)")"
echo "edgekv GET / redis-cli GET: $(ratio "$(med edgekv-get)" "$(med redis-cli-get)")"
if [ -n "$BEFORE" ]; then
    echo "before: PUT / SET $(ratio "$(med before-put)" "$(med redis-cli-set)"), GET / GET $(ratio "$(med before-get)" "$(med redis-cli-get)")"
fi
