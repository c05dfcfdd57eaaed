#!/usr/bin/env bash
# contrib/bench/cluster.sh - edgekv over a Redis Cluster and over Sentinel, against edgekv over one
# Redis, on one machine (not a timed test: run it by hand).
#
#   contrib/bench/cluster.sh [--duration 5] [--connections 50] [--rounds 2] [--stores 6]
#                            [--samples 200] [--edgekv PATH]
#
# Starts, all on 127.0.0.1: one redis-server (the standalone reference), a Redis Cluster of three
# masters and three replicas (cluster-node-timeout 2000, as the test suites), and a Sentinel set
# (a master, a replica, three Sentinels, down-after-milliseconds 1000). Every Redis process and
# wrk share CPU 1; each edgekv has one worker thread on CPU 0 (as contrib/bench/run.sh), so the
# cluster's three masters get no more CPU than the one standalone Redis: the ratios show what the
# cluster path costs edgekv, not how a cluster scales on more machines. It loads --stores stores
# of 10000 keys of 100 bytes through each edgekv and reports:
#   * miss throughput (Cache-Control: no-cache: every request reads Redis) and hit throughput of
#     edgekv over the cluster against edgekv over the standalone Redis, from paired runs (each
#     cluster run right after its standalone one, --rounds times; the median ratio);
#   * invalidation propagation between two POPs: the time from a write's acknowledgement by POP
#     A to POP B's first answer with the new value (B polled back to back), p50 and p99 over
#     --samples writes, over the cluster and over the standalone Redis;
#   * the unavailability window a client of edgekv sees (the longest time without an
#     acknowledged write, one writer writing back to back) through CLUSTER FAILOVER, kill -9 of a
#     cluster master, SENTINEL FAILOVER and kill -9 of the Sentinel master.
# Needs: wrk, redis-server, redis-tools (redis-cli), curl, python3, taskset.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/contrib/bench"
DURATION=5
CONNS=50
ROUNDS=2
STORES=6
SAMPLES=200
KEYS=10000
EDGEKV=${EDGEKV_BIN:-$top/build/check/edgekv}
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift 2 ;;
        --connections) CONNS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --stores) STORES=$2; shift 2 ;;
        --samples) SAMPLES=$2; shift 2 ;;
        --edgekv) EDGEKV=$2; shift 2 ;;
        *) echo "usage: $0 [--duration S] [--connections N] [--rounds N] [--stores N] [--samples N] [--edgekv PATH]" >&2
           exit 2 ;;
    esac
done
for tool in wrk redis-server redis-cli curl python3 taskset; do
    command -v "$tool" >/dev/null || { echo "missing: $tool (apt-get install wrk redis-server redis-tools curl python3)" >&2; exit 1; }
done
[ -x "$EDGEKV" ] || { echo "no edgekv at $EDGEKV: build it first (contrib/quickstart.sh test builds build/check/edgekv)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || echo "warning: fewer than 2 CPUs: pinning is meaningless" >&2

work=$(mktemp -d /tmp/edgekv-bench-cluster.XXXXXX)
pids=()
declare -A node_pid
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
probe="python3 $here/cluster_probe.py"

# ---------------------------------------------------------------- ports
# Cluster nodes also bind port + 10000, and the kernel hands out 32768-60999 to outgoing
# connections: every port P is in [20000, 22767] with P and P + 10000 free (DESIGN.md).
# port_pair VAR: the next such port into VAR (never in a subshell: next_port must move on)
next_port=$((20000 + RANDOM % 2000))
port_pair() {
    local pp_
    for _ in $(seq 800); do
        pp_=$next_port
        next_port=$((next_port + 1))
        [ $next_port -gt 22767 ] && next_port=20000
        if python3 - "$pp_" <<'PY' 2>/dev/null; then
import socket, sys
p = int(sys.argv[1])
for q in (p, p + 10000):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", q)); s.close()
PY
            printf -v "$1" '%s' "$pp_"
            return
        fi
    done
    echo "no free port pair" >&2
    exit 1
}
rcli() { redis-cli -h 127.0.0.1 -p "$@"; }
wait_pong() { for _ in $(seq 200); do [ "$(rcli "$1" ping 2>/dev/null)" = PONG ] && return; sleep 0.05; done; echo "redis on $1 did not start" >&2; exit 1; }

# node PORT [ARGS...]: a redis-server on CPU 1 in $work/PORT (restartable with the same files)
node() {
    local port=$1
    shift
    mkdir -p "$work/$port"
    (cd "$work/$port" && exec taskset -c 1 redis-server --port "$port" --bind 127.0.0.1 --save "" \
        --appendonly no --daemonize no --dir "$work/$port" --logfile "$work/$port/log" "$@") &
    pids+=($!)
    node_pid[$port]=$!
}
cluster_args=(--cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000
              --repl-diskless-sync-delay 0 --repl-ping-replica-period 1)

# ---------------------------------------------------------------- servers
echo "starting a standalone Redis, a 3+3 cluster and a Sentinel set..."
port_pair sport
node "$sport"
wait_pong "$sport"

cports=()
for i in 0 1 2 3 4 5; do
    port_pair p
    cports+=("$p")
    node "${cports[$i]}" "${cluster_args[@]}"
done
for p in "${cports[@]}"; do wait_pong "$p"; done
addrs=()
for p in "${cports[@]}"; do addrs+=("127.0.0.1:$p"); done
redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$work/create.log" 2>&1 ||
    { cat "$work/create.log" >&2; exit 1; }
for _ in $(seq 400); do
    ok=0
    for p in "${cports[@]}"; do
        rcli "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || continue
        if rcli "$p" role 2>/dev/null | head -1 | grep -q slave; then
            rcli "$p" info replication | grep -q 'master_link_status:up' || continue
        fi
        ok=$((ok + 1))
    done
    [ $ok -eq 6 ] && break
    sleep 0.05
done
[ $ok -eq 6 ] || { echo "the cluster did not come up" >&2; exit 1; }

echo "  cluster up after ${SECONDS}s"
port_pair mport
port_pair rport
node "$mport" --repl-diskless-sync-delay 0
node "$rport" --repl-diskless-sync-delay 0 --replicaof 127.0.0.1 "$mport"
wait_pong "$mport"
wait_pong "$rport"
sents=()
for i in 0 1 2; do
    port_pair p
    sents+=("$p")
    mkdir -p "$work/s$p"
    cat >"$work/s$p/sentinel.conf" <<CONF
port $p
bind 127.0.0.1
dir $work/s$p
sentinel monitor mymaster 127.0.0.1 $mport 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 3000
sentinel parallel-syncs mymaster 1
CONF
    taskset -c 1 redis-server "$work/s$p/sentinel.conf" --sentinel --logfile "$work/s$p/log" &
    pids+=($!)
done
for p in "${sents[@]}"; do
    for _ in $(seq 300); do
        rcli "$p" sentinel ckquorum mymaster 2>/dev/null | grep -q "OK 3 usable" &&
            rcli "$p" sentinel replicas mymaster 2>/dev/null | grep -q "$rport" && break
        sleep 0.05
    done
done

echo "  Sentinels ready after ${SECONDS}s"
# edgekv NAME ORIGIN VAR: one worker thread on CPU 0; its port into VAR once it is ready
edgekv() {
    local name=$1 origin=$2 port=
    taskset -c 0 "$EDGEKV" --listen 127.0.0.1:0 --threads 1 --origin "$origin" \
        --max-connections 4096 --cache-max-bytes 512mb --log-level info 2>"$work/$name.log" &
    pids+=($!)
    for _ in $(seq 200); do
        port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$work/$name.log" 2>/dev/null | head -1 | sed 's/.*://' || true)
        [ -n "$port" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 200 ] &&
            { printf -v "$3" '%s' "$port"; return; }
        sleep 0.05
    done
    echo "edgekv $name did not become ready:" >&2
    cat "$work/$name.log" >&2
    exit 1
}
corigin="redis-cluster://127.0.0.1:${cports[0]},127.0.0.1:${cports[1]},127.0.0.1:${cports[2]}"
sorigin="redis-sentinel://127.0.0.1:${sents[0]},127.0.0.1:${sents[1]},127.0.0.1:${sents[2]}/mymaster"
edgekv single "redis://127.0.0.1:$sport" e_single
edgekv single-b "redis://127.0.0.1:$sport" e_single_b
edgekv cluster "$corigin" e_cluster
edgekv cluster-b "$corigin" e_cluster_b
edgekv sentinel "$sorigin" e_sentinel

# ---------------------------------------------------------------- data
small=$(head -c 100 /dev/zero | tr '\0' 'v' | base64 -w0)
for i in $(seq 0 $((KEYS - 1))); do printf '{"key":"k%d","value":"%s"}\n' "$i" "$small"; done >"$work/batch.ndjson"
stores=
echo "loading $STORES stores of $KEYS keys of 100 bytes through each edgekv..."
# a store id is random, and with one slot per store ({<sid>}) so is its master: on the cluster,
# a store is created again (same name) until each master holds as many as the others
declare -A per_master
mk_store() { # PORT NAME: the new store's id
    curl -fsS -X POST "http://127.0.0.1:$1/resources/stores/kv" -d "{\"name\":\"$2\"}" |
        sed 's/.*"id":"\([a-z0-9]*\)".*/\1/'
}
for s in $(seq 0 $((STORES - 1))); do
    stores="${stores:+$stores,}bench$s"
    sid=$(mk_store "$e_single" "bench$s")
    curl -fsS -X PUT "http://127.0.0.1:$e_single/resources/stores/kv/$sid/batch" \
        --data-binary @"$work/batch.ndjson" >/dev/null
    for _ in $(seq 30); do
        sid=$(mk_store "$e_cluster" "bench$s")
        owner=
        for p in "${cports[@]}"; do
            [ "$(rcli "$p" exists "edgekv:g:{$sid}" 2>/dev/null)" = 1 ] &&
                rcli "$p" role | head -1 | grep -q master && owner=$p
        done
        # no such key anywhere: a layout that spreads a store over slots; take it
        [ -z "$owner" ] && break
        if [ "${per_master[$owner]:-0}" -lt $(((STORES + 2) / 3)) ]; then
            per_master[$owner]=$((${per_master[$owner]:-0} + 1))
            break
        fi
        curl -fsS -o /dev/null -X DELETE "http://127.0.0.1:$e_cluster/resources/stores/kv/$sid"
    done
    curl -fsS -X PUT "http://127.0.0.1:$e_cluster/resources/stores/kv/$sid/batch" \
        --data-binary @"$work/batch.ndjson" >/dev/null
done
spread=
for p in "${cports[@]}"; do
    rcli "$p" role | head -1 | grep -q master && spread="${spread:+$spread / }$(rcli "$p" dbsize)"
done
echo "keys per cluster master: $spread"

# ---------------------------------------------------------------- throughput
results="$work/results"
: >"$results"
to_ms() {
    case "$1" in
        *us) awk -v v="${1%us}" 'BEGIN {printf "%.3f", v / 1000}' ;;
        *ms) awk -v v="${1%ms}" 'BEGIN {printf "%.3f", v}' ;;
        *s) awk -v v="${1%s}" 'BEGIN {printf "%.3f", v * 1000}' ;;
        *) echo "?" ;;
    esac
}
# run NAME PORT [ENV...]: "NAME rps p50 p99" into $results
run() {
    local name=$1 port=$2 out="$work/$1.txt"
    shift 2
    env EKV_KEYS=$KEYS EKV_STORES="$stores" "$@" taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" \
        --latency -s "$here/random_get.lua" "http://127.0.0.1:$port" >"$out" 2>&1
    echo "$name $(awk '/Requests\/sec/ {print $2}' "$out") $(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")" \
        "$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")" >>"$results"
    if grep -q "Non-2xx" "$out"; then echo "  ($name: $(grep Non-2xx "$out"))"; fi
}
echo "warming the caches..."
for p in "$e_single" "$e_cluster"; do
    EKV_KEYS=$KEYS EKV_STORES="$stores" taskset -c 1 wrk -t1 -c"$CONNS" -d3s -s "$here/random_get.lua" \
        "http://127.0.0.1:$p" >/dev/null 2>&1
done
echo "running (each ${DURATION}s, $CONNS connections, $ROUNDS paired rounds)..."
for r in $(seq "$ROUNDS"); do
    run "single-miss#$r" "$e_single" EKV_NO_CACHE=1
    run "cluster-miss#$r" "$e_cluster" EKV_NO_CACHE=1
    run "single-hit#$r" "$e_single"
    run "cluster-hit#$r" "$e_cluster"
done
median() {
    awk -v n="$1" 'index($1, n "#") == 1 {sub(/#.*/, "", $1); print}' "$results" | sort -k2,2g |
        awk '{row[NR] = $0} END {if (NR > 0) print row[int((NR + 1) / 2)]}'
}
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

# ---------------------------------------------------------------- propagation
echo "invalidation propagation, $SAMPLES writes..."
prop_cluster=$($probe propagation "$e_cluster" "$e_cluster_b" /kv/bench0/k1 "$SAMPLES")
sid=$(curl -fsS -X POST "http://127.0.0.1:$e_single/resources/stores/kv" -d '{"name":"prop"}' |
      sed 's/.*"id":"\([a-z0-9]*\)".*/\1/')
prop_single=$($probe propagation "$e_single" "$e_single_b" "/resources/stores/kv/$sid/keys/p" "$SAMPLES")

# ---------------------------------------------------------------- unavailability windows
# window NAME PORT PATH SECONDS COMMAND...: a writer on PATH through PORT; COMMAND 1 s after it
# started (the window counts only after it)
window() {
    local name=$1 port=$2 path=$3 secs=$4 go="$work/go-$1"
    shift 4
    $probe window "$port" "$path" "$secs" "$go" >"$work/window-$name" &
    local probe_pid=$!
    sleep 1
    touch "$go"
    "$@"
    wait "$probe_pid"
    echo "$name $(cat "$work/window-$name")" >>"$work/windows"
}
: >"$work/windows"
# the cluster master holding PATH's item (found by its Redis key), and a replica of it
curl -fsS -X PUT "http://127.0.0.1:$e_cluster/kv/bench0/failover" -d x >/dev/null
holder() {
    local p
    for p in "${cports[@]}"; do
        rcli "$p" role 2>/dev/null | head -1 | grep -q master || continue
        [ -n "$(rcli "$p" keys 'edgekv:i:*:failover' 2>/dev/null)" ] && { echo "$p"; return; }
    done
}
replica_of() {
    local p
    for p in "${cports[@]}"; do
        rcli "$p" info replication 2>/dev/null | grep -q "^master_port:$1" &&
            rcli "$p" info replication | grep -q 'master_link_status:up' && { echo "$p"; return; }
    done
}
echo "failovers (a writer through edgekv, back to back)..."
m=$(holder)
rep=$(replica_of "$m")
window cluster-failover "$e_cluster" /kv/bench0/failover 8 rcli "$rep" cluster failover
m=$(holder)
window cluster-kill-9 "$e_cluster" /kv/bench0/failover 14 kill -9 "${node_pid[$m]}"

sid=$(curl -fsS -X POST "http://127.0.0.1:$e_sentinel/resources/stores/kv" -d '{"name":"fo"}' |
      sed 's/.*"id":"\([a-z0-9]*\)".*/\1/')
window sentinel-failover "$e_sentinel" "/resources/stores/kv/$sid/keys/k" 8 rcli "${sents[0]}" sentinel failover mymaster
# the old master becomes the new one's replica (Sentinel converts it 8-10 s after the switch)
cur=$(rcli "${sents[0]}" sentinel get-master-addr-by-name mymaster | tail -1)
other=$mport
[ "$cur" = "$mport" ] && other=$rport
for _ in $(seq 300); do
    rcli "$other" info replication 2>/dev/null | grep -q "^master_port:$cur" &&
        rcli "$other" info replication | grep -q 'master_link_status:up' && break
    sleep 0.1
done
sleep 1
window sentinel-kill-9 "$e_sentinel" "/resources/stores/kv/$sid/keys/k" 12 kill -9 "${node_pid[$cur]}"

# ---------------------------------------------------------------- report
echo
printf '%-24s %12s %10s %10s\n' "benchmark" "requests/s" "p50 ms" "p99 ms"
for name in single-miss cluster-miss single-hit cluster-hit; do
    median "$name" | while read -r n rps p50 p99; do printf '%-24s %12s %10s %10s\n' "$n" "$rps" "$p50" "$p99"; done
done
echo
echo "miss: cluster / standalone   $(paired cluster-miss single-miss)"
echo "hit:  cluster / standalone   $(paired cluster-hit single-hit)"
echo "invalidation propagation A -> B, cluster:    $prop_cluster"
echo "invalidation propagation A -> B, standalone: $prop_single"
echo "unavailability windows (longest time without an acknowledged write):"
while read -r name rest; do printf '  %-20s %s\n' "$name" "$rest"; done <"$work/windows"
