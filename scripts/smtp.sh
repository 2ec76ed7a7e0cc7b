#!/usr/bin/env bash
# scripts/smtp.sh - print the path of a Python with aiosmtpd (from PyPI), installed once into a
# virtual environment in a cache outside the work tree. The mail tests start it on loopback
# (`python -m aiosmtpd -n -l 127.0.0.1:PORT -c aiosmtpd.handlers.Mailbox DIR`) as the real SMTP
# server iamd sends verification and reset mail to, and read the mail from its Maildir.
set -euo pipefail
VERSION=1.4.6
CACHE=${IAMD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/iamd-tools}
VENV="$CACHE/aiosmtpd-$VERSION"
PY="$VENV/bin/python"
mkdir -p "$CACHE"
exec 9>"$CACHE/aiosmtpd.lock"
flock 9
if [ ! -f "$VENV/.complete" ]; then
    echo "smtp.sh: installing aiosmtpd $VERSION into $VENV (once)" >&2
    rm -rf "$VENV"
    log="$CACHE/aiosmtpd-install.log"
    if ! {
        python3 -m venv "$VENV" &&
            "$PY" -m pip install --disable-pip-version-check -q "aiosmtpd==$VERSION" &&
            "$PY" -c 'import aiosmtpd.handlers, aiosmtpd.controller'
    } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "smtp.sh: installing aiosmtpd failed (log: $log)" >&2
        exit 1
    fi
    touch "$VENV/.complete"
fi
echo "$PY"
