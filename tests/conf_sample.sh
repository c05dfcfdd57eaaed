#!/bin/sh
# conf_sample.sh - run by `make check`. The shipped conf/edgekv.conf must be exactly what
# `edgekv --print-sample-config` prints (regenerate it with
# `./edgekv --print-sample-config > conf/edgekv.conf`), `edgekv -t` must accept it, and
# `edgekv -t` must reject a bad file with status 1 and a FILE:LINE: message.
# Environment: EDGEKV_BIN (the built binary), EKV_SRCDIR (the source tree).

: "${EDGEKV_BIN:?EDGEKV_BIN must name the edgekv binary}"
: "${EKV_SRCDIR:?EKV_SRCDIR must name the source directory}"

sample=$EKV_SRCDIR/conf/edgekv.conf
tmp=$(mktemp -d "${TMPDIR:-/tmp}/conf_sample.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
fail=0

# 1. the shipped sample is the generated one, byte for byte
if ! "$EDGEKV_BIN" --print-sample-config >"$tmp/printed"; then
    echo "FAIL: $EDGEKV_BIN --print-sample-config exited with an error"
    exit 1
fi
if cmp -s "$tmp/printed" "$sample"; then
    echo "ok: conf/edgekv.conf is what --print-sample-config prints"
else
    echo "FAIL: conf/edgekv.conf differs from --print-sample-config;"
    echo "      regenerate it: ./edgekv --print-sample-config > conf/edgekv.conf"
    diff -u "$sample" "$tmp/printed"
    fail=1
fi

# 2. -t accepts it
if "$EDGEKV_BIN" -t -c "$sample" >"$tmp/out" 2>&1; then
    echo "ok: edgekv -t accepts conf/edgekv.conf"
else
    echo "FAIL: edgekv -t -c $sample exited with $?:"
    cat "$tmp/out"
    fail=1
fi

# 3. -t rejects a bad file with exit status 1 and FILE:LINE: on stderr
bad=$tmp/bad.conf
printf '# a bad file\nlisten 127.0.0.1:8080\nthreads abc\n' >"$bad"
"$EDGEKV_BIN" -t -c "$bad" >"$tmp/stdout" 2>"$tmp/stderr"
rc=$?
if [ "$rc" -ne 1 ]; then
    echo "FAIL: edgekv -t with a bad file exited with $rc, not 1"
    fail=1
elif ! grep -F "$bad:3: threads: " "$tmp/stderr" >/dev/null; then
    echo "FAIL: edgekv -t with a bad file did not report $bad:3: on stderr; it said:"
    cat "$tmp/stderr"
    fail=1
else
    echo "ok: edgekv -t rejects a bad file: $(cat "$tmp/stderr" | head -n 1)"
fi

# 4. and a bad command-line value, named by its flag
"$EDGEKV_BIN" -t -c "$sample" --idle-timeout 5 >"$tmp/stdout" 2>"$tmp/stderr"
rc=$?
if [ "$rc" -ne 1 ] || ! grep -F -- "--idle-timeout: " "$tmp/stderr" >/dev/null; then
    echo "FAIL: edgekv -t --idle-timeout 5 exited with $rc; stderr:"
    cat "$tmp/stderr"
    fail=1
else
    echo "ok: edgekv -t rejects a bad flag: $(head -n 1 "$tmp/stderr")"
fi

exit $fail
