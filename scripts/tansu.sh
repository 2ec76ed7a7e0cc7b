#!/usr/bin/env bash
# scripts/tansu.sh - print the path of the Kafka-protocol broker the tests run (tansu, from
# crates.io, with its in-memory engine for most tests and its libsql (sqlite file) engine for
# the tests that restart the broker and need its topics to survive), installing it once into
# a cache outside the work tree (about 15 minutes on a 2-core machine; later runs reuse it).
# iamd itself never depends on tansu: production points it at Apache Kafka or Redpanda.
set -euo pipefail
VERSION=0.6.0
CACHE=${IAMD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/iamd-tools}
FEATURES=dynostore,libsql
ROOT="$CACHE/tansu-$VERSION-${FEATURES//,/-}"
BIN="$ROOT/bin/tansu"
mkdir -p "$CACHE"
exec 9>"$CACHE/tansu.lock"
flock 9
if [ ! -x "$BIN" ]; then
    echo "tansu.sh: installing tansu $VERSION into $ROOT (once; about 15 minutes)" >&2
    if ! cargo install tansu --version "$VERSION" --locked --features "$FEATURES" \
        --root "$ROOT" >"$CACHE/tansu-install.log" 2>&1; then
        tail -n 20 "$CACHE/tansu-install.log" >&2
        echo "tansu.sh: installing tansu failed (log: $CACHE/tansu-install.log)" >&2
        exit 1
    fi
fi
echo "$BIN"
