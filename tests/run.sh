#!/bin/sh
# Run test binaries one after another; print a summary line the CI can read.
# Usage: tests/run.sh LABEL BINARY...
label=$1; shift
passed=0; failed=0; failures=""
for t in "$@"; do
    echo "=== $t"
    if "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); failures="$failures $t"
    fi
done
[ -n "$failures" ] && echo "failed binaries:$failures"
echo "$label: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
