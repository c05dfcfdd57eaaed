#!/bin/sh
# prometheus_rules.sh - run by `make check`. The operator's kit of contrib/: the Prometheus rules
# (contrib/prometheus/edgekv-rules.yml) and the Grafana dashboard (contrib/grafana/edgekv.json).
#   1. `promtool check rules` accepts the rules, and `promtool test rules` passes their unit
#      tests (edgekv-rules.test.yml), which hold a firing and a quiet case for every alert;
#   2. the dashboard is valid JSON, imports with a ${DS_PROMETHEUS} input and has an instance
#      variable, and every panel queries that data source;
#   3. every metric name the rules and the dashboard's queries use exists in a real scrape:
#      a real redis-server on a loopback port, edgekv in front of it (with a cache, so the
#      edgekv_invalidation_* series exist), and a second edgekv with a redis-sentinel:// origin
#      naming that redis-server (not a Sentinel: that edgekv is not ready, but /metrics has the
#      Sentinel series). A misspelt name fails the test. Names with a colon must be recording
#      rules of the file; `up` is Prometheus's own.
# promtool is Debian's `prometheus` package; without it (or without jq and python3, or curl) the
# test is skipped (77), or fails when EKV_TESTS_REQUIRED=1 (CI).
# Environment (from Makefile.am): EDGEKV_BIN, REDIS_SERVER, EKV_SRCDIR, EKV_TESTS_REQUIRED;
# EKV_KEEP_TMP=1 keeps the scrape and the names found (the test prints where).

: "${EDGEKV_BIN:?EDGEKV_BIN must name the edgekv binary}"
: "${EKV_SRCDIR:?EKV_SRCDIR must name the source directory}"

rules=$EKV_SRCDIR/contrib/prometheus/edgekv-rules.yml
rules_test=$EKV_SRCDIR/contrib/prometheus/edgekv-rules.test.yml
dashboard=$EKV_SRCDIR/contrib/grafana/edgekv.json

skip() {
    if [ "${EKV_TESTS_REQUIRED:-0}" = 1 ]; then
        echo "FAIL: $* (EKV_TESTS_REQUIRED=1: this test may not be skipped)"
        exit 1
    fi
    echo "SKIP: $*"
    exit 77
}

[ -x "$EDGEKV_BIN" ] || skip "EDGEKV_BIN ($EDGEKV_BIN) is not executable"
[ -n "${REDIS_SERVER:-}" ] && [ -x "$REDIS_SERVER" ] ||
    skip "REDIS_SERVER is not set to an executable redis-server"
command -v promtool >/dev/null 2>&1 || skip "promtool is not installed (Debian: apt-get install prometheus)"
command -v curl >/dev/null 2>&1 || skip "curl is not installed"
if command -v jq >/dev/null 2>&1; then
    json=jq
elif command -v python3 >/dev/null 2>&1; then
    json=python3
else
    skip "neither jq nor python3 is installed (Debian: apt-get install jq)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ekvprom.XXXXXX") || exit 1
pids= # every process started, from the moment it is: cleanup kills them all before it waits
cleanup() {
    for p in $pids; do
        kill -KILL "$p" 2>/dev/null
    done
    wait 2>/dev/null
    if [ -n "${EKV_KEEP_TMP:-}" ]; then
        echo "kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
fail=0

# ---------------------------------------------------------------- 1. promtool
if promtool check rules "$rules" >"$tmp/out" 2>&1; then
    echo "ok: promtool check rules: $(grep -o '[0-9]* rules found' "$tmp/out")"
else
    echo "FAIL: promtool check rules $rules:"
    cat "$tmp/out"
    fail=1
fi
# rule_files in the test file are relative to it: promtool finds edgekv-rules.yml beside it
if promtool test rules "$rules_test" >"$tmp/out" 2>&1; then
    echo "ok: promtool test rules edgekv-rules.test.yml"
else
    echo "FAIL: promtool test rules $rules_test:"
    cat "$tmp/out"
    fail=1
fi

# every alert of the rules has a case where it fires and one where it does not
sed -n 's/^[ -]*alert: *\([A-Za-z0-9_]*\).*/\1/p' "$rules" | sort -u >"$tmp/alerts"
awk '/^[ -]*alertname:/ { name = $NF; next }
     name != "" && /^[ -]*exp_alerts:/ { print name, ($0 ~ /\[\]/ ? "quiet" : "fires"); name = "" }' \
    "$rules_test" | sort -u >"$tmp/cases"
nalerts=$(wc -l <"$tmp/alerts")
missing=0
while read -r a; do
    for kind in fires quiet; do
        grep -qx "$a $kind" "$tmp/cases" ||
            { echo "FAIL: edgekv-rules.test.yml has no case where $a $kind"; missing=1; }
    done
done <"$tmp/alerts"
if [ "$nalerts" -lt 10 ]; then
    echo "FAIL: found only $nalerts alerts in $rules"
    fail=1
elif [ $missing -eq 0 ]; then
    echo "ok: each of the $nalerts alerts has a firing and a quiet test case"
else
    fail=1
fi

# ---------------------------------------------------------------- 2. the dashboard
# prints one line per problem; the expressions go to $tmp/dash_exprs, one per line, and the
# metric of the instance variable's label_values() to $tmp/dash_template
if [ "$json" = jq ]; then
    if ! jq empty "$dashboard" 2>"$tmp/out"; then
        echo "FAIL: $dashboard is not valid JSON: $(cat "$tmp/out")"
        exit 1
    fi
    jq -r '
      (if (.schemaVersion // 0) < 36 then "schemaVersion \(.schemaVersion) is older than 36" else empty end),
      (if [.__inputs[]? | select(.name == "DS_PROMETHEUS" and .pluginId == "prometheus")] | length == 1
       then empty else "no DS_PROMETHEUS input of type prometheus in __inputs" end),
      (if [.templating.list[]? | select(.name == "instance")] | length == 1
       then empty else "no instance template variable" end),
      ([.. | objects | select(has("gridPos") and .type != "row")] as $p |
        ($p[] | select(.datasource.uid != "${DS_PROMETHEUS}") | "panel \(.title) does not use ${DS_PROMETHEUS}"),
        ($p[] | select((.targets // []) | length == 0) | "panel \(.title) has no query"),
        ($p[] | .title as $t | .targets[]? | select(.expr | test("\\$instance") | not)
              | "panel \($t): a query ignores $instance: \(.expr)"),
        (if ($p | map(.id) | unique | length) != ($p | length) then "panel ids are not unique" else empty end))
    ' "$dashboard" >"$tmp/dash_problems"
    jq -r '.. | objects | select(has("expr")) | .expr | gsub("\n"; " ")' "$dashboard" >"$tmp/dash_exprs"
    jq -r '.templating.list[] | select(.type == "query") | .query | if type == "object" then .query else . end' \
        "$dashboard" >"$tmp/dash_template"
else
    python3 - "$dashboard" "$tmp" <<'EOF' || exit 1
import json, re, sys
try:
    d = json.load(open(sys.argv[1]))
except ValueError as e:
    print("FAIL: %s is not valid JSON: %s" % (sys.argv[1], e))
    sys.exit(1)
tmp = sys.argv[2]
def walk(o):
    if isinstance(o, dict):
        yield o
        for v in o.values(): yield from walk(v)
    elif isinstance(o, list):
        for v in o: yield from walk(v)
probs = []
if d.get("schemaVersion", 0) < 36: probs.append("schemaVersion %s is older than 36" % d.get("schemaVersion"))
if len([i for i in d.get("__inputs", []) if i.get("name") == "DS_PROMETHEUS" and i.get("pluginId") == "prometheus"]) != 1:
    probs.append("no DS_PROMETHEUS input of type prometheus in __inputs")
tl = d.get("templating", {}).get("list", [])
if len([v for v in tl if v.get("name") == "instance"]) != 1: probs.append("no instance template variable")
panels = [o for o in walk(d) if "gridPos" in o and o.get("type") != "row"]
for p in panels:
    if (p.get("datasource") or {}).get("uid") != "${DS_PROMETHEUS}": probs.append("panel %s does not use ${DS_PROMETHEUS}" % p.get("title"))
    if not p.get("targets"): probs.append("panel %s has no query" % p.get("title"))
    for t in p.get("targets", []):
        if "$instance" not in t.get("expr", ""): probs.append("panel %s: a query ignores $instance: %s" % (p.get("title"), t.get("expr")))
if len({p.get("id") for p in panels}) != len(panels): probs.append("panel ids are not unique")
open(tmp + "/dash_problems", "w").write("".join(p + "\n" for p in probs))
open(tmp + "/dash_exprs", "w").write("".join(o["expr"].replace("\n", " ") + "\n" for o in walk(d) if "expr" in o))
q = [v["query"]["query"] if isinstance(v["query"], dict) else v["query"] for v in tl if v.get("type") == "query"]
open(tmp + "/dash_template", "w").write("".join(x + "\n" for x in q))
EOF
fi
npanels=$(grep -c '"gridPos"' "$dashboard")
if [ -s "$tmp/dash_problems" ]; then
    sed 's/^/FAIL: edgekv.json: /' "$tmp/dash_problems"
    fail=1
else
    echo "ok: edgekv.json is valid JSON ($json), $npanels panels and rows, \${DS_PROMETHEUS} and \$instance"
fi

# ---------------------------------------------------------------- 3. the names, against a scrape
show_logs() {
    for f in redis edgekv sentinel; do
        [ -f "$tmp/$f.log" ] && { echo "--- $f log:"; tail -n 20 "$tmp/$f.log"; }
    done
}

# redis-server on a loopback port: a random one, and another if that one is taken (redis-server
# exits when it cannot bind, so no port is probed and then lost to a race)
tries=0
while :; do
    tries=$((tries + 1))
    port=$(awk -v s="$$" -v t="$tries" 'BEGIN { srand(); print 20000 + int(rand() * 40000 + s * 7 + t * 7919) % 40000 }')
    : >"$tmp/redis.log"
    "$REDIS_SERVER" --port "$port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
        --dir "$tmp" >>"$tmp/redis.log" 2>&1 &
    redis_pid=$!
    pids="$pids $redis_pid"
    i=0
    while ! grep -q "Ready to accept connections" "$tmp/redis.log" && kill -0 "$redis_pid" 2>/dev/null &&
        [ $i -lt 100 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    grep -q "Ready to accept connections" "$tmp/redis.log" && break
    kill -KILL "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
    if ! grep -q "Address already in use" "$tmp/redis.log" || [ $tries -ge 5 ]; then
        echo "FAIL: redis-server did not start on 127.0.0.1:$port"
        show_logs
        exit 1
    fi
done

# start_edgekv NAME ORIGIN: edgekv on a port the kernel picks; sets $pid and $addr
start_edgekv() {
    : >"$tmp/$1.log" # before the background shell opens it: the loop below reads it at once
    "$EDGEKV_BIN" --listen 127.0.0.1:0 --threads 2 --cache-max-bytes 16mb --origin "$2" \
        >>"$tmp/$1.log" 2>&1 &
    pid=$!
    pids="$pids $pid"
    addr=
    i=0
    while [ -z "$addr" ]; do
        addr=$(sed -n 's/.*listening on \(127\.0\.0\.1:[0-9][0-9]*\).*/\1/p' "$tmp/$1.log" | head -n 1)
        [ -n "$addr" ] && break
        if [ $i -gt 200 ] || ! kill -0 "$pid" 2>/dev/null; then
            echo "FAIL: edgekv ($1, origin $2) did not start"
            show_logs
            exit 1
        fi
        sleep 0.02
        i=$((i + 1))
    done
}
start_edgekv edgekv "redis://127.0.0.1:$port/0"
edgekv_pid=$pid
edgekv_addr=$addr
start_edgekv sentinel "redis-sentinel://127.0.0.1:$port/edgekv-test"
sentinel_addr=$addr

# the first becomes ready (its invalidation link subscribed); /readyz counts as a request too
i=0
until curl -fs -o /dev/null "http://$edgekv_addr/readyz"; do
    if [ $i -gt 100 ] || ! kill -0 "$edgekv_pid" 2>/dev/null; then
        echo "FAIL: edgekv at $edgekv_addr did not become ready"
        show_logs
        exit 1
    fi
    sleep 0.05
    i=$((i + 1))
done
curl -fsS "http://$edgekv_addr/metrics" >"$tmp/scrape" &&
    curl -fsS "http://$sentinel_addr/metrics" >>"$tmp/scrape" || {
    echo "FAIL: GET /metrics failed"
    show_logs
    exit 1
}

# the names a query can use: every sample's name, plus, for every family (# TYPE), the family
# itself (counter, gauge, untyped) or its _bucket, _sum and _count series (histogram; a summary
# has the family too), so that a family whose labelled series appear later still counts
awk '$1 == "#" && $2 == "TYPE" {
         if ($4 == "histogram") { print $3 "_bucket"; print $3 "_sum"; print $3 "_count" }
         else if ($4 == "summary") { print $3; print $3 "_sum"; print $3 "_count" }
         else print $3
         next }
     /^[a-zA-Z_:]/ { n = $1; sub(/\{.*/, "", n); print n }' "$tmp/scrape" | sort -u >"$tmp/exposed"
for must in edgekv_invalidation_link_up edgekv_sentinel_master_known edgekv_http_requests_total \
    edgekv_http_request_duration_seconds_bucket; do
    grep -qx "$must" "$tmp/exposed" || {
        echo "FAIL: the scrape lacks $must"
        show_logs
        fail=1
    }
done

# The rules' expressions, one per line: "expr: ..." on one line, or a block scalar ("expr: |")
# whose lines are indented deeper than the key.
awk 'function flush() { if (inblock) { print acc; inblock = 0 } }
     function indent(l) { match(l, /[^ ]/); return RSTART }
     inblock && ($0 ~ /^[ \t]*$/ || indent($0) > keyind) { acc = acc " " $0; next }
     { flush() }
     /^[ \t]*(- )?expr:/ {
         rest = $0
         sub(/^[ \t]*(- )?expr:[ \t]*/, "", rest)
         if (rest ~ /^[|>][-+]?[ \t]*$/) { inblock = 1; keyind = indent($0); acc = ""; next }
         if (rest ~ /^".*"$/ || rest ~ /^\047.*\047$/) rest = substr(rest, 2, length(rest) - 2)
         print rest
     }
     END { flush() }' "$rules" >"$tmp/rules_exprs"
sed -n 's/^[ -]*record: *\([A-Za-z0-9_:]*\).*/\1/p' "$rules" | sort -u >"$tmp/recorded"
nrules=$(grep -Ec '^[ -]*(record|alert):' "$rules")
nexprs=$(wc -l <"$tmp/rules_exprs")
if [ "$nexprs" -ne "$nrules" ]; then
    echo "FAIL: read $nexprs expressions from $rules, which has $nrules rules"
    fail=1
fi

# PromQL's metric names: identifiers outside strings, {label matchers}, [ranges] and the label
# lists of by/without/on/ignoring/group_left/group_right; not followed by "(" (functions and
# aggregations); not keywords; Grafana's $variables left out. One name per line.
cat >"$tmp/names.awk" <<'EOF'
BEGIN {
    split("and or unless bool offset by without on ignoring group_left group_right inf nan " \
          "sum avg min max count count_values stddev stdvar topk bottomk quantile group " \
          "limitk limit_ratio atan2 start end", kw, " ")
    for (k in kw) keyword[kw[k]] = 1
    split("by without on ignoring group_left group_right", gl, " ")
    for (k in gl) grouping[gl[k]] = 1
}
{
    s = $0; n = length(s); nt = 0; i = 1
    while (i <= n) {
        c = substr(s, i, 1)
        if (c ~ /[ \t\r]/) { i++; continue }
        if (c == "#") break                      # a comment runs to the end of the line
        if (c == "\"" || c == "\047" || c == "`") {
            q = c; i++
            while (i <= n) {
                c = substr(s, i, 1)
                if (c == "\\" && q != "`") { i += 2; continue }
                i++
                if (c == q) break
            }
            T[++nt] = "str"; V[nt] = ""; continue
        }
        if (c == "$") {                          # $var, ${var}, $__rate_interval
            j = i + 1
            if (substr(s, j, 1) == "{") { while (j <= n && substr(s, j, 1) != "}") j++; j++ }
            else while (j <= n && substr(s, j, 1) ~ /[A-Za-z0-9_]/) j++
            T[++nt] = "var"; V[nt] = ""; i = j; continue
        }
        if (c ~ /[A-Za-z_:]/) {
            j = i; while (j <= n && substr(s, j, 1) ~ /[A-Za-z0-9_:]/) j++
            T[++nt] = "id"; V[nt] = substr(s, i, j - i); i = j; continue
        }
        if (c ~ /[0-9.]/) {                      # 0.99, 5m, 1h30m, 1e3, 0x1f
            j = i; while (j <= n && substr(s, j, 1) ~ /[0-9A-Za-z_.]/) j++
            T[++nt] = "num"; V[nt] = ""; i = j; continue
        }
        T[++nt] = "p"; V[nt] = c; i++
    }
    brace = 0; brack = 0
    for (k = 1; k <= nt; k++) {
        if (T[k] == "p") {
            if (V[k] == "{") brace++
            else if (V[k] == "}") brace--
            else if (V[k] == "[") brack++
            else if (V[k] == "]") brack--
            continue
        }
        if (T[k] != "id" || brace > 0 || brack > 0) continue
        w = V[k]; paren = (k < nt && T[k + 1] == "p" && V[k + 1] == "(")
        if ((w in grouping) && paren) {          # skip the label list
            for (k++; k <= nt && !(T[k] == "p" && V[k] == ")"); k++) ;
            continue
        }
        if (paren || (w in keyword)) continue
        if (k < nt && T[k + 1] == "id" && (V[k + 1] == "by" || V[k + 1] == "without")) continue
        print w
    }
}
EOF
awk -f "$tmp/names.awk" "$tmp/rules_exprs" | sort -u >"$tmp/rules_names"
awk -f "$tmp/names.awk" "$tmp/dash_exprs" | sort -u >"$tmp/dash_names"
sed -n 's/^label_values( *\([A-Za-z_:][A-Za-z0-9_:]*\) *,.*/\1/p' "$tmp/dash_template" >>"$tmp/dash_names"
if ! grep -q . "$tmp/dash_template" || ! grep -q '^label_values(' "$tmp/dash_template"; then
    echo "FAIL: the dashboard's instance variable does not use label_values(METRIC, instance)"
    fail=1
fi

# check_names WHAT FILE: every name of FILE is exported, recorded, or up
check_names() {
    bad=0
    checked=0
    for name in $(sort -u "$2"); do
        checked=$((checked + 1))
        case $name in
        *:*)
            grep -qx "$name" "$tmp/recorded" ||
                { echo "FAIL: $1 uses $name, which no rule of edgekv-rules.yml records"; bad=1; } ;;
        up) ;;
        *)
            grep -qx "$name" "$tmp/exposed" ||
                { echo "FAIL: $1 uses $name, which is not in edgekv's /metrics"; bad=1; } ;;
        esac
    done
    if [ $checked -lt 5 ]; then
        echo "FAIL: found only $checked metric names in $1"
        bad=1
    fi
    [ $bad -eq 0 ] && echo "ok: the $checked metric names $1 uses are all in a real scrape" \
        "(or recorded by the rules)"
    return $bad
}
check_names "edgekv-rules.yml" "$tmp/rules_names" || fail=1
check_names "edgekv.json" "$tmp/dash_names" || fail=1

exit $fail
