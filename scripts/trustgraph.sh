#!/usr/bin/env bash
# scripts/trustgraph.sh - print the path of a Python with TrustGraph's published client code
# (trustgraph-base and trustgraph-flow 2.11.1 from PyPI), installed once into a virtual
# environment in a cache outside the work tree. The tests drive iamd with it: TrustGraph's
# IamClient, its gateway's IamAuth, its Kafka backend and its IAM service's policy code.
# trustgraph-flow is installed without its dependencies (LLM clients, vector stores, ...):
# its gateway and IAM modules need only trustgraph-base, aiohttp, cryptography, PyJWT and
# msgpack (the gateway package imports it) and scylla-driver (upstream's IAM service module
# imports its Cassandra table store; the tests call only its pure policy function).
set -euo pipefail
VERSION=2.11.1
CACHE=${IAMD_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/iamd-tools}
VENV="$CACHE/trustgraph-$VERSION"
PY="$VENV/bin/python"
mkdir -p "$CACHE"
exec 9>"$CACHE/trustgraph.lock"
flock 9
if [ ! -f "$VENV/.complete" ]; then
    echo "trustgraph.sh: installing trustgraph-base and trustgraph-flow $VERSION into $VENV (once)" >&2
    rm -rf "$VENV"
    log="$CACHE/trustgraph-install.log"
    if ! {
        python3 -m venv "$VENV" &&
            "$PY" -m pip install --disable-pip-version-check -q \
                "trustgraph-base==$VERSION" aiohttp cryptography PyJWT msgpack scylla-driver &&
            "$PY" -m pip install --disable-pip-version-check -q --no-deps "trustgraph-flow==$VERSION" &&
            "$PY" -c 'import trustgraph.base.iam_client, trustgraph.base.async_kafka_backend, trustgraph.gateway.auth, trustgraph.gateway.registry, trustgraph.iam.service.iam'
    } >"$log" 2>&1; then
        tail -n 20 "$log" >&2
        echo "trustgraph.sh: installing TrustGraph's packages failed (log: $log)" >&2
        exit 1
    fi
    touch "$VENV/.complete"
fi
echo "$PY"
