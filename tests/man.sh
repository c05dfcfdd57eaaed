#!/bin/sh
# man.sh - run by `make check`. The manual, edgekv(8), is printed by the binary from the
# directive table: groff must format it without a single warning, it must name every directive
# that --help names and every metric family a /metrics page can hold, and `man -l` (when man-db
# is installed) must render it.
# Environment: EDGEKV_BIN (the built binary).

: "${EDGEKV_BIN:?EDGEKV_BIN must name the edgekv binary}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/man.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
fail=0

if ! "$EDGEKV_BIN" --print-man-page >"$tmp/edgekv.8"; then
    echo "FAIL: $EDGEKV_BIN --print-man-page exited with an error"
    exit 1
fi
if ! command -v groff >/dev/null 2>&1; then
    echo "groff not found (install groff-base)"
    exit 77
fi

# 1. groff formats it with every warning on, and says nothing
groff -ww -man -z "$tmp/edgekv.8" 2>"$tmp/warnings"
if [ -s "$tmp/warnings" ]; then
    echo "FAIL: groff warns about edgekv(8):"
    cat "$tmp/warnings"
    fail=1
else
    echo "ok: groff -ww formats edgekv(8) without a warning"
fi

# 2. every directive of --help is in the DIRECTIVES section
groff -man -Tutf8 -P-cbou "$tmp/edgekv.8" 2>/dev/null >"$tmp/text"
"$EDGEKV_BIN" --help | sed -n 's/^  --\([a-z-]*\) .*default: .*/\1/p' | sort -u >"$tmp/directives"
if [ "$(wc -l <"$tmp/directives")" -lt 30 ]; then
    echo "FAIL: --help lists $(wc -l <"$tmp/directives") directives (expected them all)"
    fail=1
fi
missing=0
while read -r d; do
    grep -q "^       $d " "$tmp/text" || { echo "FAIL: directive $d is not in edgekv(8)"; missing=1; }
done <"$tmp/directives"
[ $missing -eq 0 ] && echo "ok: every directive of --help is in edgekv(8)" || fail=1

# 3. the sections an operator looks for
for section in NAME SYNOPSIS DESCRIPTION OPTIONS DIRECTIVES SIGNALS FILES "EXIT STATUS" \
    METRICS EXAMPLES; do
    grep -q "^$section\$" "$tmp/text" || { echo "FAIL: no $section section"; fail=1; }
done
grep -q "^       edgekv_origin_requests_total (counter)" "$tmp/text" ||
    { echo "FAIL: the METRICS section does not list edgekv_origin_requests_total"; fail=1; }
grep -q "^       edgekv_sentinel_master_known (gauge)" "$tmp/text" ||
    { echo "FAIL: the METRICS section leaves out the Sentinel series"; fail=1; }

# 4. man renders it
if command -v man >/dev/null 2>&1; then
    if MANWIDTH=80 man --warnings -l "$tmp/edgekv.8" >"$tmp/man.out" 2>"$tmp/man.err" &&
        [ ! -s "$tmp/man.err" ] && grep -q "EDGEKV(8)" "$tmp/man.out"; then
        echo "ok: man -l renders edgekv(8) without a warning"
    else
        echo "FAIL: man -l edgekv.8:"
        cat "$tmp/man.err"
        fail=1
    fi
fi
exit $fail
