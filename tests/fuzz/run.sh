#!/bin/sh
# tests/fuzz/run.sh - runs libFuzzer targets on their seed corpus (README "Fuzzing").
#
#   tests/fuzz/run.sh [NAME...]     from the build directory; NAME: http, conf, ... (default:
#                                   every target, one after the other, one process each)
#
# Each target tests/fuzz/fuzz_NAME runs for EKV_FUZZ_SECONDS (default 4; make check's smoke
# run) on tests/fuzz/corpus/NAME of the source tree, read only: what it finds goes to
# tests/fuzz/work/NAME of the build tree, crash inputs to tests/fuzz/work/NAME-crash-*. Any
# crash, leak, sanitizer report, timeout (EKV_FUZZ_TIMEOUT s per input, default 10) or
# out-of-memory fails the run (exit 1). A line per target reports runs, exec/s and coverage.
set -u

srcdir=${srcdir:-$(dirname "$0")/../..}
corpora=$srcdir/tests/fuzz/corpus
seconds=${EKV_FUZZ_SECONDS:-4}
timeout=${EKV_FUZZ_TIMEOUT:-10}
work=tests/fuzz/work

if [ $# -eq 0 ]; then
    for d in "$corpora"/*/; do
        set -- "$@" "$(basename "$d")"
    done
fi

mkdir -p "$work" || exit 1
# a sanitizer report must end the run with an error (libFuzzer then saves the input)
ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS UBSAN_OPTIONS

status=0
for name in "$@"; do
    bin=tests/fuzz/fuzz_$name
    if [ ! -x "$bin" ]; then
        echo "FAIL $name: $bin not built (configure CC=clang --enable-fuzzing; make fuzz)"
        status=1
        continue
    fi
    dict=
    [ -f "$srcdir/tests/fuzz/$name.dict" ] && dict=-dict=$srcdir/tests/fuzz/$name.dict
    rm -rf "$work/$name"
    mkdir -p "$work/$name"
    log=$work/$name.log
    # libFuzzer's own error exit code is 77, which automake's harness reads as SKIP: 1 instead
    "$bin" -max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb=2048 \
        -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
        -artifact_prefix="$work/$name-" $dict "$work/$name" "$corpora/$name" >"$log" 2>&1
    rc=$?
    # the last status line: "#N DONE cov: C ft: F corp: K/B exec/s: E rss: R"
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$last" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p')
    if [ $rc -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
        echo "FAIL $name (exit $rc): see $log"
        grep -E 'ERROR|SUMMARY|runtime error|Test unit written|fuzz_[a-z_]*: ' "$log" | head -n 20
        status=1
    else
        echo "PASS $name: ${runs:-?} runs in ${seconds}s, ${eps:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}"
    fi
done
exit $status
