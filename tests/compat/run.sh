#!/bin/sh
# compat/run.sh - run by `make check`: Fastly's own tools, unchanged, against edgekv. Starts a
# private redis-server (unix socket, no persistence) and edgekv (--listen 127.0.0.1:0, an
# api-token), then runs tests/compat/driver.js, which drives the official `fastly` JavaScript
# client and the Fastly CLI through create store, put with metadata, get, list, delete key,
# delete store (see its header), first over HTTP (listen), then over HTTPS (tls-listen, with
# the test certificates of tests/helpers/mkcerts.sh: the CLI gets SSL_CERT_FILE, node
# NODE_EXTRA_CA_CERTS). Finally edgekv must stop cleanly on SIGTERM (exit 0: no sanitizer
# report).
#
# The npm packages (tests/compat/package.json, exact versions, package-lock.json) are not
# installed by the build: `contrib/quickstart.sh test` runs `npm ci --prefix tests/compat`;
# by hand, do the same. They are looked for in $EKV_COMPAT_MODULES, else
# $EKV_SRCDIR/tests/compat/node_modules. Without node or the packages the test is skipped
# (77), or fails when EKV_TESTS_REQUIRED=1 (CI).
# Environment (from Makefile.am): EDGEKV_BIN, REDIS_SERVER, EKV_SRCDIR, EKV_TESTS_REQUIRED.

: "${EDGEKV_BIN:?EDGEKV_BIN must name the edgekv binary}"
: "${EKV_SRCDIR:?EKV_SRCDIR must name the source directory}"

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
command -v node >/dev/null 2>&1 ||
    skip "node is not installed (Debian: apt-get install nodejs npm; npm ci --prefix tests/compat)"
modules=${EKV_COMPAT_MODULES:-$EKV_SRCDIR/tests/compat/node_modules}
[ -f "$modules/fastly/package.json" ] ||
    skip "no npm packages in $modules (npm ci --prefix tests/compat, or set EKV_COMPAT_MODULES)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ekvcompat.XXXXXX") || exit 1
redis_pid=
edgekv_pid=
cleanup() {
    [ -n "$edgekv_pid" ] && kill -KILL "$edgekv_pid" 2>/dev/null
    [ -n "$redis_pid" ] && kill -KILL "$redis_pid" 2>/dev/null
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

show_logs() {
    echo "--- edgekv log ($EDGEKV_BIN):"
    cat "$tmp/edgekv.log"
    echo "--- redis-server log:"
    tail -n 20 "$tmp/redis.log"
}

# 1. redis-server on a unix socket (sun_path holds 108 bytes)
sock=$tmp/redis.sock
[ ${#sock} -lt 100 ] || { echo "FAIL: socket path too long (set a shorter TMPDIR): $sock"; exit 1; }
"$REDIS_SERVER" --port 0 --unixsocket "$sock" --unixsocketperm 700 --save "" --appendonly no \
    --daemonize no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
redis_pid=$!
i=0
until [ -S "$sock" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$redis_pid" 2>/dev/null; then
        echo "FAIL: redis-server did not start"
        tail -n 20 "$tmp/redis.log"
        exit 1
    fi
    sleep 0.05
done

# 2. edgekv on ports the kernel picks, read from its "listening on HOST:PORT" and "listening
# (tls) on HOST:PORT" lines
sh "$EKV_SRCDIR/tests/helpers/mkcerts.sh" "$tmp/certs" >"$tmp/mkcerts.log" 2>&1 ||
    { echo "FAIL: tests/helpers/mkcerts.sh (is openssl installed?)"; cat "$tmp/mkcerts.log"; exit 1; }
token="compat-$$-$(date +%s)"
service=compatsvc0123456789abcd # its resource links resolve /kv/{link}/...
: >"$tmp/edgekv.log"
"$EDGEKV_BIN" --listen 127.0.0.1:0 --origin "unix://$sock" --api-token "$token" --threads 2 \
    --tls-listen 127.0.0.1:0 --tls-cert-file "$tmp/certs/server.pem" \
    --tls-key-file "$tmp/certs/server.key" \
    --service-id "$service" --log-level info 2>"$tmp/edgekv.log" >/dev/null &
edgekv_pid=$!
port=
tport=
i=0
while [ -z "$port" ] || [ -z "$tport" ]; do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/edgekv.log" |
        head -n 1)
    tport=$(sed -n 's/.*listening (tls) on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$tmp/edgekv.log" |
        head -n 1)
    [ -n "$port" ] && [ -n "$tport" ] && break
    i=$((i + 1))
    if [ $i -gt 200 ] || ! kill -0 "$edgekv_pid" 2>/dev/null; then
        echo "FAIL: edgekv did not say where it listens"
        show_logs
        exit 1
    fi
    sleep 0.05
done

# ready = connected to the origin (a request before that would get a 503)
i=0
until node -e '
    require("http").get(process.argv[1], (r) => process.exit(r.statusCode === 200 ? 0 : 1))
        .on("error", () => process.exit(1));' "http://127.0.0.1:$port/readyz"; do
    i=$((i + 1))
    if [ $i -gt 50 ] || ! kill -0 "$edgekv_pid" 2>/dev/null; then
        echo "FAIL: edgekv on port $port did not become ready"
        show_logs
        exit 1
    fi
    sleep 0.1
done

# 3. the tools, over HTTP then over HTTPS (both must pass; 77 only if nothing is installed)
mkdir "$tmp/driver" "$tmp/driver-tls"
echo "== over HTTP: http://127.0.0.1:$port"
EKV_URL="http://127.0.0.1:$port" EKV_TOKEN="$token" EKV_SERVICE_ID="$service" \
    EKV_COMPAT_TMP="$tmp/driver" NODE_PATH="$modules" \
    EKV_TESTS_REQUIRED="${EKV_TESTS_REQUIRED:-0}" \
    node "$EKV_SRCDIR/tests/compat/driver.js"
status=$?
echo "== over HTTPS: https://127.0.0.1:$tport"
EKV_URL="https://127.0.0.1:$tport" EKV_TOKEN="$token" EKV_SERVICE_ID="$service" \
    EKV_COMPAT_TMP="$tmp/driver-tls" NODE_PATH="$modules" \
    NODE_EXTRA_CA_CERTS="$tmp/certs/ca.pem" SSL_CERT_FILE="$tmp/certs/ca.pem" \
    EKV_TESTS_REQUIRED="${EKV_TESTS_REQUIRED:-0}" \
    node "$EKV_SRCDIR/tests/compat/driver.js"
tstatus=$?
if [ $status -eq 0 ] || [ $status -eq 77 ]; then
    [ $tstatus -ne 0 ] && status=$tstatus
fi

# 4. edgekv survived all of it and stops cleanly
if ! kill -TERM "$edgekv_pid" 2>/dev/null; then
    echo "FAIL: edgekv died during the test"
    status=1
else
    i=0 # shutdown-timeout is 10 s; the sanitizer build is slow: allow 20 s
    while kill -0 "$edgekv_pid" 2>/dev/null && [ $i -lt 400 ]; do
        i=$((i + 1))
        sleep 0.05
    done
    kill -0 "$edgekv_pid" 2>/dev/null && kill -KILL "$edgekv_pid"
    wait "$edgekv_pid"
    rc=$?
    edgekv_pid=
    if [ $rc -ne 0 ]; then
        echo "FAIL: edgekv exited with status $rc after SIGTERM"
        status=1
    fi
fi
if [ $status -ne 0 ] && [ $status -ne 77 ]; then
    show_logs
fi
exit $status
