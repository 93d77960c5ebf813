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
# Clusters of the integration tests take up to about 500 MB in TMPDIR (etcd
# preallocates 64 MB of WAL per region): a full disk fails them with SQLite's
# "disk I/O error", so say how much there is, first and last.
tmp=${TMPDIR:-/tmp}
free_mb=$(df -Pm "$tmp" 2>/dev/null | awk 'NR == 2 { print $4 }')
echo "$label: ${free_mb:-?} MB free in $tmp"
if [ -n "$free_mb" ] && [ "$free_mb" -lt 1024 ]; then
    # A machine with a nearly full disk (CI machines have had 300 MB free):
    # run in RAM when there is room there, and say so.
    shm_mb=$(df -Pm /dev/shm 2>/dev/null | awk 'NR == 2 { print $4 }')
    if [ -n "$shm_mb" ] && [ "$shm_mb" -ge 2048 ] && mkdir -p /dev/shm/meridian-tests; then
        tmp=/dev/shm/meridian-tests
        export TMPDIR=$tmp
        echo "$label: WARNING: less than 1 GB free: the tests' data directories go to $tmp (tmpfs, $shm_mb MB free)"
    else
        echo "$label: WARNING: less than 1 GB free in $tmp: integration tests may fail with disk I/O errors"
    fi
fi
for t in "$@"; do
    echo "=== $t"
    if timeout --kill-after=10 "$limit" "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1)); failures="$failures $t"
    fi
done
[ "$tmp" = /dev/shm/meridian-tests ] && rmdir "$tmp" 2>/dev/null
[ -n "$failures" ] && echo "failed binaries:$failures ($(df -Pm "$tmp" 2>/dev/null | awk 'NR == 2 { print $4 }') MB free in $tmp)"
echo "$label: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
