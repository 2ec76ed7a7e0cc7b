#!/usr/bin/env bash
# scripts/chromium.sh - print the path of a headless-capable Chromium for the /docs test,
# installing Debian's `chromium` package once (as root, with apt-get) when none is there.
# Everything but the path goes to stderr. If nothing works: one line saying what to do.
set -euo pipefail
exec 3>&1 1>&2
for c in "${IAMD_TEST_CHROMIUM:-}" chromium chromium-browser; do
    [ -n "$c" ] || continue
    if p=$(command -v "$c" 2>/dev/null) && "$p" --version >/dev/null 2>&1; then
        echo "$p" >&3
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium.sh: no chromium; install it (sudo apt-get install -y chromium) or set IAMD_TEST_CHROMIUM"
    exit 1
fi
LOG=${TMPDIR:-/tmp}/iamd-chromium-apt.log
echo "chromium.sh: installing Debian's chromium for the /docs test (once; log: $LOG)"
if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; } \
        >"$LOG" 2>&1 </dev/null; then
    tail -n 5 "$LOG"
    echo "chromium.sh: apt-get install chromium failed; install it by hand or set IAMD_TEST_CHROMIUM"
    exit 1
fi
command -v chromium >&3
