#!/bin/sh
# run.sh -- what `make bench` runs (after ./scripts/deps.sh --bench has
# installed PostgreSQL, HAProxy and Redis): the global SQL database against
# PostgreSQL (results also in build/bench-results.json), the edge against
# HAProxy, the global tables against Redis, their store alone, the TLS
# engine alone.
#
#   ./bench/run.sh [meridian bench options]     e.g. --quick, --runs 5, --no-pg
#   make bench BENCH_ARGS=--quick
#
# Everything runs on 127.0.0.1; `meridian bench` stops and removes every
# process and directory it started, also on failure or Ctrl-C.
set -eu
cd "$(dirname "$0")/.."
[ -x build/meridian ] || make build/meridian
# BENCH_ARGS is split on spaces on purpose (a list of options).
# shellcheck disable=SC2086
./build/meridian bench --pg-script ./bench/pg.sh --json build/bench-results.json ${BENCH_ARGS:-} "$@"
./build/meridian bench edge
./build/meridian bench tables
./build/meridian bench store
./build/meridian bench tls
