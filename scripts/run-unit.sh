#!/usr/bin/env bash
# Runs the unit test binary and fails when a sanitizer or valgrind reported
# anything, even from a worker that had already told Criterion it passed:
# Criterion forks one worker per test and does not look at what a worker
# prints after its test body returned (leak reports come at exit).
#
#   run-unit.sh asan     BINARY [criterion flags...]
#   run-unit.sh valgrind BINARY [criterion flags...]
set -euo pipefail

mode=$1 bin=$2
shift 2
log=$(mktemp)
trap 'rm -f "$log" "$log".vg.*' EXIT

rc=0
case "$mode" in
asan)
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
        "$bin" "$@" 2>&1 | tee "$log" || rc=$?
    if grep -qE 'ERROR: AddressSanitizer|runtime error:' "$log"; then
        echo "run-unit: sanitizer reports above" >&2
        rc=1
    fi
    # A leak fails the run unless the block was allocated by Criterion itself
    # (its first frame outside the sanitizer is in libcriterion): the runner
    # leaks a few bytes now and then at exit, which is not ours to fix.
    read -r ours theirs < <(awk '
        /^(Direct|Indirect) leak of/ { open = 1; next }
        open && /^ *#[0-9]+ / {
            if ($0 ~ /__interceptor_|\/libasan|\/liblsan|asan_malloc|lsan_/) next
            if ($0 ~ /libcriterion\.so/) t++; else o++
            open = 0
        }
        END { print o + 0, t + 0 }' "$log")
    if [ "$ours" -gt 0 ]; then
        echo "run-unit: $ours leak(s) reported above" >&2
        rc=1
    elif [ "$theirs" -eq 0 ] && grep -q 'LeakSanitizer' "$log"; then
        echo "run-unit: LeakSanitizer reported above" >&2
        rc=1
    elif [ "$theirs" -gt 0 ]; then
        echo "run-unit: ignored $theirs leak(s) allocated inside libcriterion" >&2
        # the runner exits 1 for that leak (ASan's exit status), which is
        # ignored too when every test passed (the Synthesis line says so)
        if [ "$rc" -eq 1 ] && grep -qE 'Synthesis: .*Failing: 0 \| Crashing: 0' "$log"; then
            rc=0
        fi
    fi
    ;;
valgrind)
    valgrind --quiet --trace-children=yes --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        --log-file="$log.vg.%p" "$bin" "$@" 2>&1 | tee "$log" || rc=$?
    for f in "$log".vg.*; do
        [ -s "$f" ] || continue
        cat "$f" >&2
        rc=1
    done
    [ $rc -eq 0 ] || echo "run-unit: valgrind reports above" >&2
    ;;
*)
    echo "run-unit: unknown mode '$mode' (want asan or valgrind)" >&2
    exit 2
    ;;
esac
exit $rc
