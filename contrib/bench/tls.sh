#!/usr/bin/env bash
# contrib/bench/tls.sh - HTTPS (tls-listen) against plain HTTP (listen) on edgekv itself, and
# against h2o when it is installed (Debian `h2o`; skipped otherwise).
#
#   contrib/bench/tls.sh [--duration 10] [--connections 50] [--rounds 3] [--edgekv PATH]
#
# Starts a private redis-server and edgekv (one worker thread, CPU 0) with both listeners, loads
# 1000 keys of 100 bytes, then runs wrk (CPU 1) for, with an ECDSA P-256 and an RSA 2048
# certificate made for the run:
#   hit/plain        keep-alive hits on listen (the reference)
#   hit/tls          keep-alive hits on tls-listen: the cost of TLS on the hit path
#   hit/h2o          h2o 2.2 serving a 100-byte file over HTTPS with the same certificate
#   handshake/tls    a new connection (and a handshake) per request on tls-listen (wrk keeps
#                    its session across reconnections: resumed handshakes, with tickets)
#   handshake/h2o    the same against h2o
# Each pair is run back to back, --rounds times, and the ratio reported is the median of the
# rounds' ratios (shared machines drift). Prints requests/s, p50 and p99.
# Needs: wrk (built with OpenSSL, as Debian's), redis-server, redis-cli, curl, openssl, taskset,
# python3; h2o optional (H2O_BIN=/path/to/h2o if it is not on PATH).
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
DURATION=10
CONNS=50
ROUNDS=3
EDGEKV=${EDGEKV_BIN:-$top/build/check/edgekv}
KEYS=1000
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --edgekv) EDGEKV=$2; shift 2 ;;
        *) echo "usage: $0 [--duration S] [--connections N] [--rounds N] [--edgekv PATH]" >&2; exit 2 ;;
    esac
done
for tool in wrk redis-server redis-cli curl openssl taskset; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[ -x "$EDGEKV" ] || { echo "no edgekv at $EDGEKV: build it first" >&2; exit 1; }
H2O=${H2O_BIN:-h2o} # H2O_BIN: an h2o binary outside PATH (e.g. unpacked with dpkg -x)
have_h2o=no
command -v "$H2O" >/dev/null && have_h2o=yes

work=$(mktemp -d /tmp/edgekv-tlsbench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- certificates
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ecdsa.key" 2>/dev/null
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.key" 2>/dev/null
for k in ecdsa rsa; do
    openssl req -x509 -new -key "$work/$k.key" -sha256 -days 2 -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" -out "$work/$k.pem" 2>/dev/null
done

# ---------------------------------------------------------------- servers
sock="$work/redis.sock"
taskset -c 1 redis-server --port 0 --unixsocket "$sock" --save "" --appendonly no \
    --daemonize no --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 100); do redis-cli -s "$sock" ping >/dev/null 2>&1 && break; sleep 0.05; done

# start_edgekv KEYTYPE: edgekv on CPU 0 with that certificate; sets port, tport, epid
start_edgekv() {
    : >"$work/edgekv.log"
    taskset -c 0 "$EDGEKV" --listen 127.0.0.1:0 --tls-listen 127.0.0.1:0 \
        --tls-cert-file "$work/$1.pem" --tls-key-file "$work/$1.key" --threads 1 \
        --origin "unix://$sock" --max-connections 4096 --log-level info \
        --cache-max-bytes 256mb 2>"$work/edgekv.log" &
    epid=$!
    pids+=($epid)
    port= tport=
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/edgekv.log" | head -1)
        tport=$(sed -n 's/.*listening (tls) on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/edgekv.log" | head -1)
        [ -n "$port" ] && [ -n "$tport" ] && break
        sleep 0.05
    done
    [ -n "$port" ] && [ -n "$tport" ] || { echo "edgekv did not start:" >&2; cat "$work/edgekv.log" >&2; exit 1; }
    for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.05; done
}

stop_edgekv() {
    kill "$epid" 2>/dev/null || true
    wait "$epid" 2>/dev/null || true
}

# start_h2o KEYTYPE: h2o (one thread, CPU 0) serving the 100-byte file over HTTPS; sets hport
start_h2o() {
    hport=$(free_port)
    mkdir -p "$work/www"
    head -c 100 /dev/zero | tr '\0' 'v' >"$work/www/value"
    cat >"$work/h2o.conf" <<H2O
num-threads: 1
listen:
  host: 127.0.0.1
  port: $hport
  ssl:
    certificate-file: $work/$1.pem
    key-file: $work/$1.key
    minimum-version: TLSv1.2
hosts:
  default:
    paths:
      /:
        file.dir: $work/www
access-log: /dev/null
H2O
    taskset -c 0 "$H2O" -c "$work/h2o.conf" >"$work/h2o.log" 2>&1 &
    hpid=$!
    pids+=($hpid)
    for _ in $(seq 100); do curl -fsk "https://127.0.0.1:$hport/value" >/dev/null 2>&1 && break; sleep 0.05; done
}

# wrk_run URL [extra wrk args]: "REQS_PER_S P50_MS P99_MS"
wrk_run() {
    local url=$1; shift
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "$@" "$url" >"$work/wrk.out" 2>&1 || true
    awk '/Requests\/sec/ {r=$2}
         /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
         END { printf "%s %s %s\n", r, p50, p99 }' "$work/wrk.out"
}

ms() { # "1.23ms" / "450.00us" / "1.2s" -> milliseconds
    awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 }
                           else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
                           else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 } else print v }'
}

median() { sort -g | awk '{a[NR]=$1} END { print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2 }'; }

close_lua="$work/close.lua"
echo 'wrk.headers["Connection"] = "close"' >"$close_lua"

printf '%-16s %-6s %12s %9s %9s\n' "workload" "cert" "requests/s" "p50 ms" "p99 ms"
for kt in ecdsa rsa; do
    redis-cli -s "$sock" flushall >/dev/null
    start_edgekv "$kt"
    base="http://127.0.0.1:$port"
    sid=$(curl -fsS -X POST "$base/resources/stores/kv" -d '{"name":"bench"}' | sed 's/.*"id":"\([a-z0-9]*\)".*/\1/')
    small=$(head -c 100 /dev/zero | tr '\0' 'v' | base64 -w0)
    for i in $(seq 0 $((KEYS - 1))); do printf '{"key":"k%d","value":"%s"}\n' "$i" "$small"; done >"$work/batch.ndjson"
    curl -fsS -X PUT "$base/resources/stores/kv/$sid/batch" --data-binary @"$work/batch.ndjson" >/dev/null
    path="/resources/stores/kv/$sid/keys/k1"
    curl -fs "$base$path" >/dev/null
    curl -fs --cacert "$work/$kt.pem" "https://127.0.0.1:$tport$path" >/dev/null
    [ $have_h2o = yes ] && start_h2o "$kt"
    ratios_tls=() ratios_h2o=() ratios_hs=()
    for r in $(seq "$ROUNDS"); do
        read -r pr p50 p99 < <(wrk_run "http://127.0.0.1:$port$path")
        printf '%-16s %-6s %12s %9s %9s\n' "hit/plain" "$kt" "$pr" "$(ms "$p50")" "$(ms "$p99")"
        read -r tr p50 p99 < <(wrk_run "https://127.0.0.1:$tport$path")
        printf '%-16s %-6s %12s %9s %9s\n' "hit/tls" "$kt" "$tr" "$(ms "$p50")" "$(ms "$p99")"
        ratios_tls+=("$(awk -v a="$tr" -v b="$pr" 'BEGIN { printf "%.3f", a / b }')")
        if [ $have_h2o = yes ]; then
            read -r hr p50 p99 < <(wrk_run "https://127.0.0.1:$hport/value")
            printf '%-16s %-6s %12s %9s %9s\n' "hit/h2o" "$kt" "$hr" "$(ms "$p50")" "$(ms "$p99")"
            ratios_h2o+=("$(awk -v a="$tr" -v b="$hr" 'BEGIN { printf "%.3f", a / b }')")
        fi
        read -r sr p50 p99 < <(wrk_run "https://127.0.0.1:$tport$path" -s "$close_lua")
        printf '%-16s %-6s %12s %9s %9s\n' "handshake/tls" "$kt" "$sr" "$(ms "$p50")" "$(ms "$p99")"
        if [ $have_h2o = yes ]; then
            read -r shr p50 p99 < <(wrk_run "https://127.0.0.1:$hport/value" -s "$close_lua")
            printf '%-16s %-6s %12s %9s %9s\n' "handshake/h2o" "$kt" "$shr" "$(ms "$p50")" "$(ms "$p99")"
            ratios_hs+=("$(awk -v a="$sr" -v b="$shr" 'BEGIN { printf "%.3f", a / b }')")
        fi
    done
    echo "$kt: hit tls/plain (median of $ROUNDS): $(printf '%s\n' "${ratios_tls[@]}" | median)  rounds: ${ratios_tls[*]}"
    if [ $have_h2o = yes ]; then
        echo "$kt: hit tls edgekv/h2o: $(printf '%s\n' "${ratios_h2o[@]}" | median)  rounds: ${ratios_h2o[*]}"
        echo "$kt: handshakes edgekv/h2o: $(printf '%s\n' "${ratios_hs[@]}" | median)  rounds: ${ratios_hs[*]}"
        kill "$hpid" 2>/dev/null || true
        wait "$hpid" 2>/dev/null || true
    else
        echo "(h2o is not installed: no h2o comparison)"
    fi
    stop_edgekv
done
