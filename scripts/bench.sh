#!/usr/bin/env bash
# scripts/bench.sh - `make bench`: provision like `make test` (PostgreSQL, the tansu broker),
# start a broker on a free loopback port with iamd's topics, build iamd in release mode and run
# `iamd bench` against them. Extra arguments go to `iamd bench` (e.g. --json, --only resolve).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
admin=$(scripts/postgres.sh)
tansu=$(scripts/tansu.sh)
cargo build --release --locked --bin iamd >&2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d)
"$tansu" broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ --silent >/dev/null 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
done
for topic in iam.request:4 iam.response:1; do
    for _ in $(seq 1 100); do
        out=$("$tansu" topic create "${topic%%:*}" --partitions "${topic##*:}" \
            --broker "tcp://127.0.0.1:$port" 2>&1) && break
        case "$out" in *xist*) break ;; esac
        sleep 0.2
    done
done
IAMD_DATABASE_URL=$admin target/release/iamd bench --kafka "127.0.0.1:$port" "$@"
