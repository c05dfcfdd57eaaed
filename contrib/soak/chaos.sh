#!/bin/sh
# contrib/soak/chaos.sh [SECONDS] - the chaos soak (tests/integration/check_chaos.c; README
# "Chaos soak") for SECONDS (default 600), from a configured build tree: BUILD (default
# build/check; a sanitizer build works too). make check runs the same soak for 30 s.
#
#   contrib/soak/chaos.sh          # ten minutes
#   BUILD=build/sanitize contrib/soak/chaos.sh 1800
#
# It prints the soak's closing line (writes, reads, faults injected, the longest recovery, the
# violations) and exits 1 if any rule was broken.
set -eu
secs=${1:-600}
build=${BUILD:-build/check}
[ -f "$build/Makefile" ] || { echo "$build: no configured build tree (see README Building)" >&2; exit 2; }
make -C "$build" -s tests/integration/check_chaos
status=0
EKV_CHAOS_SECONDS=$secs make -C "$build" -s check TESTS=tests/integration/check_chaos || status=$?
log=$build/tests/integration/check_chaos.log
grep -E '^chaos:|^  ' "$log" || tail -n 40 "$log"
exit $status
