#!/bin/sh
# tests/browser/run.sh -- the browser tests (docs/shop.md, "Browser tests"),
# run by tests/run.sh like a test binary: exit 0 when they pass.
#
# Installs what is missing first, outside the test's own time limit:
# Debian's chromium (and nodejs/npm when there is no node or npm on PATH)
# through scripts/deps.sh --browser, and playwright-core with `npm ci` (from
# package-lock.json) when node_modules does not hold the pinned version.
# Then runs every *.test.mjs here, one after another, each under
# MR_BROWSER_TIMEOUT seconds (default 150, times MR_TEST_TIMEOUT_MULTIPLIER;
# a file takes 15 to 25 s): on timeout, or on the SIGTERM of tests/run.sh's
# own timeout (node stays in this process group: --foreground), the test
# stops its topology and removes its directory before this script exits.
# MERIDIAN_BIN defaults to build/asan/meridian (build it first).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

"$root/scripts/deps.sh" --browser
cd "$here"
want=$(node -p "require('./package.json').dependencies['playwright-core']")
have=$(node -p "try { require('./node_modules/playwright-core/package.json').version } catch (e) { '' }")
if [ "$want" != "$have" ]; then
    echo "browser: npm ci (playwright-core $want)"
    npm ci --no-audit --no-fund --loglevel=error
fi

export MERIDIAN_BIN="${MERIDIAN_BIN:-$root/build/asan/meridian}"
limit=${MR_BROWSER_TIMEOUT:-150}
mult=${MR_TEST_TIMEOUT_MULTIPLIER:-1}
limit=$(awk -v l="$limit" -v m="$mult" 'BEGIN { printf "%d", l * m }')
# A signal (tests/run.sh's timeout) reaches node too: wait for it to clean
# up, then stop instead of starting the next file.
stop=""
trap 'stop=1' TERM INT HUP
rc=0
for t in "$here"/*.test.mjs; do
    [ -z "$stop" ] || break
    echo "--- $(basename "$t")"
    timeout --foreground --kill-after=20 "$limit" node "$t" || rc=1
done
[ -z "$stop" ] || exit 143
exit $rc
