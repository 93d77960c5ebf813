#!/bin/sh
# Run each libFuzzer target for SECONDS; print executions and crashes per
# target.  Usage: tests/fuzz/run.sh SECONDS NAME...
#
# New interesting inputs go to build/fuzz/work/NAME (seeded from the
# committed corpus); crashes to build/fuzz/crashes/NAME/.  To keep a crash
# as a regression, fix it and copy the file to tests/fuzz/regressions/NAME/;
# `make test` replays it from then on.  To grow the committed corpus:
#   build/fuzz/NAME -merge=1 tests/fuzz/corpus/NAME build/fuzz/work/NAME
set -u
seconds=$1; shift
status=0
printf '%-16s %12s %10s %8s\n' target executions exec/s crashes
for name in "$@"; do
    work=build/fuzz/work/$name crashes=build/fuzz/crashes/$name
    mkdir -p "$work" "$crashes"
    log=build/fuzz/$name.log
    # -close_fd_mask=1: the targets' own stdout is noise here.
    build/fuzz/"$name" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -close_fd_mask=1 \
        -artifact_prefix="$crashes/" "$work" "tests/fuzz/corpus/$name" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    n=$(find "$crashes" -type f | wc -l)
    printf '%-16s %12s %10s %8s\n' "$name" "${execs:-?}" "${rate:-?}" "$n"
    if [ "$rc" -ne 0 ] || [ "$n" -ne 0 ]; then
        status=1
        echo "  $name: see $log and $crashes/"
    fi
done
exit $status
