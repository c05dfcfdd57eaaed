#!/usr/bin/env bash
# contrib/bench/churn.sh - memory under churn through HTTP (issue 15): edgekv with
# cache-max-bytes 32mb under mixed traffic (churn.lua: GET/PUT/DELETE, values of 100 B to 512
# KiB over 20,000 keys) while other clients vanish mid-response (GETs of a 512 KiB value,
# closed after the first bytes), for --duration seconds (default 600). Prints edgekv's RSS
# every --every seconds (default 30) and the first, last and largest figures: RSS must stay
# flat. Needs wrk, redis-server, redis-cli, curl, python3.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/contrib/bench"
DURATION=600
EVERY=30
EDGEKV=${EDGEKV_BIN:-$top/build/check/edgekv}
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --every) EVERY=$2; shift 2 ;;
        --edgekv) EDGEKV=$2; shift 2 ;;
        *) echo "usage: $0 [--duration S] [--every S] [--edgekv PATH]" >&2; exit 2 ;;
    esac
done
for tool in wrk redis-server redis-cli curl python3; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
work=$(mktemp -d /tmp/edgekv-churn.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

sock="$work/redis.sock"
redis-server --port 0 --unixsocket "$sock" --save "" --appendonly no --daemonize no \
    --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -s "$sock" ping >/dev/null 2>&1 && break; sleep 0.05; done
"$EDGEKV" --listen 127.0.0.1:0 --threads 2 --origin "unix://$sock" --cache-max-bytes 32mb \
    2>"$work/edgekv.log" &
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
curl -fsS -X POST "$base/resources/stores/kv" -d '{"name":"churn"}' >/dev/null
head -c 524288 /dev/zero | tr '\0' 'v' | curl -fsS -X PUT "$base/kv/churn/big" --data-binary @- >/dev/null

cat >"$work/vanish.py" <<'PY'
import socket, sys, time
port = int(sys.argv[1])
req = b"GET /kv/churn/big HTTP/1.1\r\nHost: t\r\n\r\n"
n = 0
while True:
    try:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(req)
        s.recv(1024)                    # the first bytes of 512 KiB, then gone
        s.close()
        n += 1
    except OSError:
        time.sleep(0.01)
PY
python3 "$work/vanish.py" "$port" &
pids+=($!)
EKV_STORE=churn EKV_KEYS=20000 wrk -t2 -c32 -d"${DURATION}s" -s "$here/churn.lua" "$base" \
    >"$work/wrk.out" 2>&1 &
wrkpid=$!
pids+=($wrkpid)

rss() { awk '/^VmRSS/ {print $2}' "/proc/$ekpid/status"; }
echo "seconds rss_kib"
series=()
for ((t = 0; t <= DURATION; t += EVERY)); do
    r=$(rss)
    series+=("$r")
    echo "$t $r"
    [ "$t" -lt "$DURATION" ] && sleep "$EVERY"
done
wait "$wrkpid" 2>/dev/null || true
grep -E 'Requests/sec|requests in' "$work/wrk.out" || true
printf '%s\n' "${series[@]}" | awk 'NR == 1 {first = $1} {last = $1; if ($1 > max) max = $1}
    END {printf "RSS first %d KiB, last %d KiB, largest %d KiB\n", first, last, max}'
