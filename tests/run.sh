#!/bin/sh
# Run test binaries one after another; print a summary line the CI can read.
# Usage: tests/run.sh LABEL BINARY...
# A binary that runs longer than MR_TEST_BINARY_TIMEOUT seconds (default 600,
# times MR_TEST_TIMEOUT_MULTIPLIER) is killed and counted as failed: a hang
# must fail the run, not eat CI's time.
label=$1; shift
limit=${MR_TEST_BINARY_TIMEOUT:-600}
mult=${MR_TEST_TIMEOUT_MULTIPLIER:-1}
limit=$(awk -v l="$limit" -v m="$mult" 'BEGIN { printf "%d", l * m }')
passed=0; failed=0; failures=""
for t in "$@"; do
    echo "=== $t"
    if timeout --kill-after=10 "$limit" "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); failures="$failures $t"
    fi
done
[ -n "$failures" ] && echo "failed binaries:$failures"
echo "$label: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
