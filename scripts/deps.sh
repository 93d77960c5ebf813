#!/bin/sh
# Install the Debian packages Meridian needs to build, test and benchmark,
# when they are missing.  Runs apt-get update once, only if something is
# missing.  Needs root (or sudo) on a fresh machine; does nothing otherwise.
set -eu

BUILD="gcc make pkg-config libuv1-dev libsqlite3-dev libhttp-parser-dev libjansson-dev libinih-dev libssl-dev libcmocka-dev libnghttp2-dev libjemalloc-dev"
RUN="etcd-server"
BENCH="postgresql postgresql-contrib haproxy redis-server"
FUZZ="clang libclang-rt-14-dev"
# tests/browser: Debian's chromium, driven by playwright-core (npm, tests/browser/package.json).
BROWSER="chromium"

want="$BUILD $RUN"
[ "${1:-}" = "--bench" ] && want="$want $BENCH"
[ "${1:-}" = "--fuzz" ] && want="$want $FUZZ"
if [ "${1:-}" = "--browser" ]; then
    # Only what the browser tests need: a node and npm already on PATH
    # (Debian's or another) are used as they are.
    want="$BROWSER"
    command -v node >/dev/null 2>&1 || want="$want nodejs"
    command -v npm >/dev/null 2>&1 || want="$want npm"
fi

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# etcd-server's and postgresql's maintainer scripts try to start services;
# policy-rc.d stops that where there is an init system to ask.
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
