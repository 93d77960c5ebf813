#!/bin/sh
# profile.sh -- where the node's time goes under one benchmark load: starts a
# local topology, runs `meridian bench --dir` with one figure against it,
# records one node with `perf record -g` while the load runs, prints the
# hottest functions (self time, and with children), and stops everything.
#
#   ./bench/profile.sh [FIGURE] [SECONDS]     FIGURE: write_64 (default), read_64, order_64, ...
#   PROC=etcd ./bench/profile.sh write_64     record the first region's etcd member instead
#
# Needs perf (Debian: linux-perf).  Output files stay in build/profile-FIGURE/
# (perf.data, report-dso.txt, report-self.txt, report-children.txt).  The recorded node is
# the first region's (us-east-1); every region runs the same code.
set -eu
cd "$(dirname "$0")/.."
FIG=${1:-write_64}
SECS=${2:-8}
M=./build/meridian
PROC=${PROC:-node}
OUT=build/profile-$FIG-$PROC

command -v perf >/dev/null || { echo "profile.sh: perf is not installed (apt-get install linux-perf)" >&2; exit 1; }
[ -x "$M" ] || make build/meridian
mkdir -p "$OUT"
RUN=$(mktemp -d /tmp/meridian-profile-XXXXXX)
BENCH_PID=""
cleanup() {
    [ -n "$BENCH_PID" ] && kill "$BENCH_PID" 2>/dev/null && wait "$BENCH_PID" 2>/dev/null
    [ -f "$RUN/topology.json" ] && "$M" down "$RUN" >/dev/null 2>&1
    rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

"$M" up --dir "$RUN" --detach >/dev/null
case "$PROC" in node | etcd) ;; *) echo "profile.sh: PROC must be node or etcd" >&2; exit 2 ;; esac
PID=$(awk -v p="\"$PROC\": {" 'index($0, p) { n = 1 } n && /"pid":/ { gsub(/[^0-9]/, ""); print; exit }' \
    "$RUN/topology.json")
[ -n "$PID" ] || { echo "profile.sh: no $PROC pid in $RUN/topology.json" >&2; exit 1; }

# The load lasts longer than the recording, so the window falls inside it.
"$M" bench --dir "$RUN" --only "$FIG" --no-pg --runs 1 --warmup 1s --duration "$((SECS + 3))s" \
    >"$OUT/bench.txt" 2>&1 &
BENCH_PID=$!
# the tables are loaded and the load starts once bench prints its run header
i=0
until grep -q "^== run" "$OUT/bench.txt"; do
    i=$((i + 1))
    [ $i -le 300 ] || { echo "profile.sh: bench did not start" >&2; cat "$OUT/bench.txt" >&2; exit 1; }
    kill -0 "$BENCH_PID" 2>/dev/null || { cat "$OUT/bench.txt" >&2; exit 1; }
    sleep 0.1
done
echo "profile.sh: recording $PROC pid $PID for ${SECS}s under $FIG" >&2
# dwarf unwinding: the optimised build has no frame pointers (but has -g)
perf record -F 499 --call-graph dwarf,16384 -p "$PID" -o "$OUT/perf.data" -- sleep "$SECS" >/dev/null 2>&1
wait "$BENCH_PID" || true
BENCH_PID=""
grep "^run " "$OUT/bench.txt" || true
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none \
    2>/dev/null | grep -v '^$' >"$OUT/report-dso.txt"
perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --stdio --percent-limit 0.7 -g none \
    2>/dev/null | grep -v '^$' >"$OUT/report-self.txt"
perf report -i "$OUT/perf.data" --children --sort symbol --stdio --percent-limit 3 -g none \
    2>/dev/null | grep -v '^$' >"$OUT/report-children.txt"
echo "== self time by library"
grep -v '^#' "$OUT/report-dso.txt" | head -12
echo "== self time (top)"
grep -v '^#' "$OUT/report-self.txt" | head -40
echo "== with children (top)"
grep -v '^#' "$OUT/report-children.txt" | head -40
echo "(full reports in $OUT/)"
