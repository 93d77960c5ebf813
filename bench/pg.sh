#!/bin/bash
# pg.sh -- the PostgreSQL side of `meridian bench`: the same two write
# transactions as Meridian's benchmark, on PostgreSQL with ONE SYNCHRONOUS
# STANDBY, measured with pgbench.  Everything runs on 127.0.0.1, in DIR.
#
#   pg.sh start DIR                       primary + standby (pg_basebackup -R), synchronous
#                                         replication confirmed, schema and rows loaded
#   pg.sh run DIR update|order SECONDS [CLIENTS]
#                                         one pgbench measurement (after a 1 s warm-up)
#   pg.sh stop DIR                        stop both servers, remove DIR (safe to repeat)
#   pg.sh all [--runs N] [--duration S] [--clients C]
#                                         standalone: start, N runs of both, stop
#
# Machine-readable lines go to stdout, each starting with "pg ":
#   pg started version=15.18 primary_port=P standby_port=S sync_state=sync
#   pg result figure=update clients=64 seconds=10 tps=X p50_ms=X p99_ms=X avg_ms=X txns=N failed=N
# Progress and errors go to stderr.  Exit status 0 on success.
#
# Schemas and row counts match src/bench/sqlbench.c: accounts(10,000 rows),
# products(1,000 rows, CHECK (stock >= 0), stock 1e9), orders (empty).  The
# servers run as the `postgres` user when we are root (initdb refuses root).
# PG_BIN overrides the binaries' directory (default: PostgreSQL 15's, else
# the newest installed).
set -euo pipefail

N_ACCOUNTS=10000
N_PRODUCTS=1000

die() { echo "pg.sh: $*" >&2; exit 1; }

find_bin() {
    if [ -n "${PG_BIN:-}" ]; then
        echo "$PG_BIN"
    elif [ -x /usr/lib/postgresql/15/bin/postgres ]; then
        echo /usr/lib/postgresql/15/bin
    else
        # newest installed major version
        ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -n | tail -1
    fi
}
BIN=$(find_bin)
[ -n "$BIN" ] && [ -x "$BIN/postgres" ] || die "PostgreSQL not found (install it: ./scripts/deps.sh --bench, or set PG_BIN)"

# Run a command as the servers' owner.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# A TCP port on 127.0.0.1 nobody listens on (bash's /dev/tcp connects; a
# refused connection means free).  The server's own bind is the final check:
# start retries with other ports if it fails.
pick_port() {
    local p i
    for i in $(seq 1 50); do
        p=$((20000 + RANDOM % 40000))
        [ "$p" = "${1:-}" ] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}

psql_at() { # port, sql...
    local port=$1
    shift
    "$BIN/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -At "$@"
}

# Poll <cmd> every 100 ms until it succeeds, at most <seconds>.
wait_for() { # seconds, description, cmd...
    local limit=$1 what=$2 i
    shift 2
    for i in $(seq 1 $((limit * 10))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "timed out after ${limit}s waiting for $what"
}

is_sync() { [ "$(psql_at "$1" -c "SELECT sync_state FROM pg_stat_replication" 2>/dev/null)" = "sync" ]; }
is_standby_ready() { [ "$(psql_at "$1" -c "SELECT pg_is_in_recovery()" 2>/dev/null)" = "t" ]; }

server_start() { # datadir, log
    as_pg "$BIN/pg_ctl" -D "$1" -l "$2" -w -t 60 start >/dev/null
}

server_stop() { # datadir
    [ -f "$1/postmaster.pid" ] || return 0
    as_pg "$BIN/pg_ctl" -D "$1" -w -t 30 -m fast stop >/dev/null 2>&1 ||
        as_pg "$BIN/pg_ctl" -D "$1" -w -t 30 -m immediate stop >/dev/null 2>&1 || true
}

cmd_stop() {
    local dir=$1
    [ -d "$dir" ] || return 0
    server_stop "$dir/primary"
    server_stop "$dir/standby"
    rm -rf "$dir"
}

cmd_start() {
    local dir=$1 p1 p2 attempt version
    mkdir -p "$dir"
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    # everything below <dir> must be reachable by postgres: check its parents
    as_pg test -w "$dir" || die "$dir is not writable by the postgres user (a parent directory is private?)"

    echo "pg.sh: initdb in $dir" >&2
    as_pg "$BIN/initdb" -D "$dir/primary" -U postgres --auth=trust --no-sync -E UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    for attempt in 1 2 3 4 5; do
        p1=$(pick_port)
        cat >>"$dir/primary/postgresql.conf" <<EOF
# meridian bench
listen_addresses = '127.0.0.1'
port = $p1
unix_socket_directories = '$dir'
max_connections = 200
wal_level = replica
max_wal_senders = 4
synchronous_commit = on
synchronous_standby_names = '*'
fsync = on
EOF
        server_start "$dir/primary" "$dir/primary.log" && break
        p1=""
    done
    [ -n "$p1" ] || { tail -20 "$dir/primary.log" >&2; die "the primary did not start"; }

    echo "pg.sh: pg_basebackup -R for the standby" >&2
    as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$p1" -U postgres -D "$dir/standby" -R -X stream -c fast \
        >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; die "pg_basebackup failed"; }
    for attempt in 1 2 3 4 5; do
        p2=$(pick_port "$p1")
        echo "port = $p2" >>"$dir/standby/postgresql.conf"
        server_start "$dir/standby" "$dir/standby.log" && break
        p2=""
    done
    [ -n "$p2" ] || { tail -20 "$dir/standby.log" >&2; die "the standby did not start"; }
    wait_for 60 "the standby to accept connections in recovery" is_standby_ready "$p2"
    wait_for 60 "pg_stat_replication to show the standby as sync" is_sync "$p1"

    echo "pg.sh: schema and rows ($N_ACCOUNTS accounts, $N_PRODUCTS products)" >&2
    psql_at "$p1" <<EOF
CREATE TABLE accounts(id bigint PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE products(id bigint PRIMARY KEY, stock bigint NOT NULL CHECK (stock >= 0));
CREATE TABLE orders(id bigserial PRIMARY KEY, product_id bigint NOT NULL, qty integer NOT NULL,
                    created bigint NOT NULL);
INSERT INTO accounts SELECT x, 0 FROM generate_series(1, $N_ACCOUNTS) AS x;
INSERT INTO products SELECT x, 1000000000 FROM generate_series(1, $N_PRODUCTS) AS x;
VACUUM ANALYZE;
CHECKPOINT;
EOF
    cat >"$dir/update.sql" <<EOF
\set id random(1, $N_ACCOUNTS)
UPDATE accounts SET balance = balance + 1 WHERE id = :id;
EOF
    cat >"$dir/order.sql" <<EOF
\set pid random(1, $N_PRODUCTS)
BEGIN;
UPDATE products SET stock = stock - 1 WHERE id = :pid;
INSERT INTO orders(product_id, qty, created) VALUES (:pid, 1, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
COMMIT;
EOF
    echo "$p1" >"$dir/primary.port"
    version=$("$BIN/postgres" --version | awk '{print $3}')
    echo "pg started version=$version primary_port=$p1 standby_port=$p2 sync_state=sync"
}

# Exact percentile of sorted values in <file> (one per line), same rule as
# load_percentile_ms: element round(q * (n - 1)).
percentile_ms() { # file, q
    awk -v q="$2" '{ v[NR - 1] = $1 } END {
        if (NR == 0) { print "0"; exit }
        i = int(q * (NR - 1) + 0.5); if (i > NR - 1) i = NR - 1
        printf "%.3f\n", v[i] / 1000.0 }' "$1"
}

cmd_run() { # dir, figure, seconds, clients
    local dir=$1 figure=$2 seconds=$3 clients=${4:-64} port script work out tps avg failed txns p50 p99
    [ -f "$dir/primary.port" ] || die "$dir: not started (pg.sh start DIR first)"
    port=$(cat "$dir/primary.port")
    case "$figure" in
    update | order) script="$dir/$figure.sql" ;;
    *) die "unknown figure '$figure' (update or order)" ;;
    esac
    is_sync "$port" || die "the standby is no longer synchronous"
    work=$(mktemp -d "$dir/run-XXXXXX")
    psql_at "$port" -c "CHECKPOINT" >/dev/null
    # warm-up (connections, plan cache, buffers); not measured
    "$BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -M prepared -c "$clients" -j 2 -T 1 \
        -f "$script" postgres >/dev/null 2>&1 || true
    out=$(cd "$work" && "$BIN/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -M prepared \
        -c "$clients" -j 2 -T "$seconds" -l -f "$script" postgres 2>&1) ||
        { echo "$out" >&2; rm -rf "$work"; die "pgbench failed"; }
    tps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) (without initial connection time).*/\1/p')
    avg=$(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p')
    failed=$(echo "$out" | sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p')
    txns=$(echo "$out" | sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p')
    [ -n "$tps" ] || { echo "$out" >&2; rm -rf "$work"; die "could not read tps from pgbench"; }
    # per-transaction log: column 3 is the transaction's latency in microseconds
    cat "$work"/pgbench_log.* | awk '{ print $3 }' | sort -n >"$work/lat"
    p50=$(percentile_ms "$work/lat" 0.50)
    p99=$(percentile_ms "$work/lat" 0.99)
    rm -rf "$work"
    echo "pg result figure=$figure clients=$clients seconds=$seconds tps=$tps p50_ms=$p50 p99_ms=$p99" \
         "avg_ms=${avg:-0} txns=${txns:-0} failed=${failed:-0}"
}

cmd_all() {
    local runs=3 seconds=10 clients=64 r
    while [ $# -gt 0 ]; do
        case "$1" in
        --runs) runs=$2; shift 2 ;;
        --duration) seconds=$2; shift 2 ;;
        --clients) clients=$2; shift 2 ;;
        *) die "all: unknown option '$1'" ;;
        esac
    done
    # global: the EXIT trap runs after this function has returned
    ALL_BASE=$(mktemp -d /tmp/meridian-pg-XXXXXX)
    chmod 711 "$ALL_BASE"
    trap 'cmd_stop "$ALL_BASE/pg"; rm -rf "$ALL_BASE"' EXIT
    trap 'exit 130' INT TERM HUP PIPE
    cmd_start "$ALL_BASE/pg"
    for r in $(seq 1 "$runs"); do
        cmd_run "$ALL_BASE/pg" update "$seconds" "$clients"
        cmd_run "$ALL_BASE/pg" order "$seconds" "$clients"
    done
}

[ $# -ge 1 ] || die "usage: pg.sh start DIR | run DIR update|order SECONDS [CLIENTS] | stop DIR | all [--runs N] [--duration S] [--clients C]"
case "$1" in
start)
    [ $# -eq 2 ] || die "usage: pg.sh start DIR"
    # a failed start leaves nothing running
    trap 'rc=$?; [ $rc -ne 0 ] && cmd_stop "$2"; exit $rc' EXIT
    trap 'exit 130' INT TERM HUP PIPE
    cmd_start "$2"
    ;;
run)
    [ $# -ge 4 ] || die "usage: pg.sh run DIR update|order SECONDS [CLIENTS]"
    cmd_run "$2" "$3" "$4" "${5:-64}"
    ;;
stop)
    [ $# -eq 2 ] || die "usage: pg.sh stop DIR"
    cmd_stop "$2"
    ;;
all)
    shift
    cmd_all "$@"
    ;;
*) die "unknown command '$1'" ;;
esac
