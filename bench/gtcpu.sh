#!/bin/bash
# gtcpu.sh -- CPU per global-table write, summed over the three nodes.
#
#   bench/gtcpu.sh [BINARY]        (default ./build/meridian)
#
# Runs `BINARY bench tables --duration 5s --runs 1 --no-redis --no-plain`,
# reads the nodes' user+system time from /proc/PID/stat over 3.5 s of the
# write phase (2.5 s after the three nodes appear), and divides by the
# writes/s the bench reports.  CPU per write moves less than writes/s when
# other work shares the machine: compare two binaries by alternating runs.
BIN=${1:-./build/meridian}
OUT=$(mktemp /tmp/gtcpu.XXXXXX)
"$BIN" bench tables --duration 5s --runs 1 --no-redis --no-plain > "$OUT" 2>&1 &
BP=$!
for _ in $(seq 1 200); do
    [ "$(pgrep -f 'node --config /tmp/meridian-run-' | wc -l)" -ge 3 ] && break
    sleep 0.1
done
PIDS=$(pgrep -f 'node --config /tmp/meridian-run-' | tr '\n' ' ')
ticks() {
    local s=0 v
    for p in $PIDS; do
        v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null)
        s=$((s + ${v:-0}))
    done
    echo $s
}
sleep 2.5
a=$(ticks); t0=$(date +%s.%N)
sleep 3.5
b=$(ticks); t1=$(date +%s.%N)
wait $BP
line=$(grep '^  writes' "$OUT")
rm -f "$OUT"
[ -n "$line" ] || { echo "gtcpu: the bench printed no figures" >&2; exit 1; }
w=$(echo "$line" | awk '{print $2}')
p99=$(echo "$line" | awk '{print $7}')
hz=$(getconf CLK_TCK)
awk -v a="$a" -v b="$b" -v t0="$t0" -v t1="$t1" -v w="$w" -v p99="$p99" -v hz="$hz" -v load="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN { cores = (b - a) / hz / (t1 - t0);
             printf "writes %s/s p99 %s ms | nodes %.2f cores, %.0f us CPU per write (load %s)\n", w, p99, cores, cores * 1e6 / w, load }'
