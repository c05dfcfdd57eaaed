#!/usr/bin/env bash
# edgekv quick start (Debian 12, as root or with sudo):
#   contrib/quickstart.sh        install packages, build, run a private Redis and edgekv on
#                                127.0.0.1:8080 in the foreground; Ctrl-C stops both
#   contrib/quickstart.sh test   install packages, build and run the whole test suite
#                                (gcc -Werror build, valgrind, clang ASan+UBSan build with
#                                the fuzz targets, the Debian package, distcheck)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

# What the build, the tests and the quick start need (all Debian 12 packages).
PACKAGES=(build-essential autoconf automake pkg-config libevent-dev libhiredis-dev
          libjansson-dev libssl-dev openssl check node-llhttp redis-server redis-tools curl
          prometheus valgrind groff-base jq clang libclang-rt-14-dev dpkg-dev debhelper
          lintian)
          # prometheus: promtool, which checks /metrics in make check; groff-base: the manual's
          # test; jq: the dashboard's; clang, libclang-rt-14-dev: the sanitizer build with the
          # libFuzzer targets; dpkg-dev, debhelper, lintian: the Debian package (tests/deb.sh)
QS_REDIS_PORT=${EDGEKV_QS_REDIS_PORT:-6390}   # not 6379: Debian's own redis may be there
JOBS=${JOBS:-$(nproc)}

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing: ${missing[*]}"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# build DIR [configure options...]: an out-of-tree build in DIR.
build() {
    local dir=$1; shift
    [ -x configure ] || ./autogen.sh >/dev/null
    mkdir -p "$dir"
    (cd "$dir" && "$top/configure" -q "$@" && make -s -j"$JOBS")
}

# The real-client test (tests/compat/run.sh) drives Fastly's own JavaScript client and CLI: npm
# packages at the exact versions of tests/compat/package-lock.json, into tests/compat/node_modules
# (never at build time). EKV_COMPAT_MODULES tells the test where they are (also for distcheck).
install_npm_packages() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "==> installing: nodejs npm"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
    fi
    echo "==> npm ci --prefix tests/compat"
    npm ci --prefix "$top/tests/compat" --no-audit --no-fund --loglevel=error ||
        echo "warning: npm ci failed: tests/compat/run.sh will fail" >&2
    export EKV_COMPAT_MODULES="$top/tests/compat/node_modules"
}

run_tests() {
    local status=0
    install_npm_packages
    echo "==> gcc build with -Werror: make check"
    build build/check --enable-werror --enable-tests
    make -C build/check -s -j"$JOBS" check || status=1
    echo "==> valgrind: make check-valgrind"
    make -C build/check -s check-valgrind || status=1
    echo "==> ASan+UBSan build (clang, with the fuzz targets): make check"
    build build/sanitize CC=clang --enable-werror --enable-tests --enable-fuzzing CFLAGS="-O1 -g"
    make -C build/sanitize -s -j"$JOBS" check || status=1
    echo "==> the Debian package: make deb, tests/deb.sh"
    (cd build/check && EKV_TESTS_REQUIRED=1 srcdir="$top" sh "$top/tests/deb.sh") || status=1
    echo "==> make distcheck"
    # the whole suite ran twice above: the tarball's check runs the suites that prove it complete
    make -C build/check -s distcheck DISTCHECK_CONFIGURE_FLAGS="--enable-werror --enable-tests" \
        TESTS="$(make -C build/check -s print-distcheck-tests)" \
        >build/distcheck.log 2>&1 || { tail -n 60 build/distcheck.log; status=1; }
    summarize
    return $status
}

# One closing line for all suites, "N passed, N failed", from the Check logs.
summarize() {
    local passed=0 failed=0 c f e
    while read -r c f e; do
        passed=$((passed + c - f - e)); failed=$((failed + f + e))
    done < <(cat build/check/tests/*/*.log build/sanitize/tests/*/*.log 2>/dev/null |
             sed -n 's/.*Checks: \([0-9]*\), Failures: \([0-9]*\), Errors: \([0-9]*\).*/\1 \2 \3/p')
    echo "${passed} passed, ${failed} failed"
}

run_quickstart() {
    build build/check
    local data="$top/.run/redis"
    mkdir -p "$data"
    echo "==> starting redis-server on 127.0.0.1:$QS_REDIS_PORT (data in $data)"
    redis-server "$top/conf/redis-origin.conf" --port "$QS_REDIS_PORT" --dir "$data" \
        --daemonize no --logfile "$data/redis.log" &
    QS_REDIS_PID=$! # global: the EXIT trap runs outside this function
    trap 'kill "$QS_REDIS_PID" 2>/dev/null; wait "$QS_REDIS_PID" 2>/dev/null || true' EXIT
    for _ in $(seq 50); do
        redis-cli -p "$QS_REDIS_PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "==> starting edgekv on 127.0.0.1:8080 (Ctrl-C stops both)"
    build/check/edgekv -c "$top/conf/edgekv.conf" --origin "redis://127.0.0.1:$QS_REDIS_PORT/0" || true
}

install_packages
case "${1:-run}" in
    run) run_quickstart ;;
    test) run_tests ;;
    *) echo "usage: $0 [run|test]" >&2; exit 2 ;;
esac
