#!/usr/bin/env bash
# scripts/postgres.sh - find or provide a PostgreSQL server for iamd.
#
# Usage:
#   scripts/postgres.sh          print ONE line on stdout: an admin URL
#                                (a role that may CREATE DATABASE)
#   scripts/postgres.sh stop     stop the private cluster, if it is running
#
# Everything except that URL goes to stderr. Attempts, in order:
#   1. $IAMD_PG_ADMIN_URL, if set and it answers.
#   2. A server on 127.0.0.1:${IAMD_PG_PORT:-5432} that lets user `postgres`
#      in without a password (trust auth).
#   3. A private cluster in <repo>/.data/postgres (git-ignored), created once
#      with the newest /usr/lib/postgresql/*/bin/initdb and started with
#      pg_ctl on 127.0.0.1:${IAMD_PG_PRIVATE_PORT:-55432}; log in
#      .data/postgres.log, unix socket in .data/postgres-run. As root, the
#      server runs as the `postgres` system user (created if missing).
#   4. No server binaries: as root, `apt-get install -y postgresql`, then 3.
#      (The package's own cluster is not relied on.)
# If nothing works: one line on stderr saying what to do, exit status 1.
#
# Use from make:  PG_ADMIN_URL=$$(scripts/postgres.sh) || exit 1
set -euo pipefail

# Keep stdout for the URL only: fd 3 = real stdout, fd 1 -> stderr.
exec 3>&1 1>&2

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DATA_ROOT="$REPO/.data"
PGDATA_DIR="$DATA_ROOT/postgres"
SOCK_DIR="$DATA_ROOT/postgres-run"
LOG_FILE="$DATA_ROOT/postgres.log"
LOCK_FILE="$DATA_ROOT/postgres.lock"

PG_PORT=${IAMD_PG_PORT:-5432}
PRIVATE_PORT=${IAMD_PG_PRIVATE_PORT:-55432}
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5}

INSTALL_HINT="install PostgreSQL (sudo apt-get install -y postgresql), or start one on 127.0.0.1:$PG_PORT with trust auth for user postgres, or set IAMD_PG_ADMIN_URL"

say() { printf 'postgres.sh: %s\n' "$*"; }
die() { say "$*"; exit 1; }
emit() { printf '%s\n' "$1" >&3; exit 0; }

for p in "$PG_PORT" "$PRIVATE_PORT"; do
    [[ $p =~ ^[0-9]+$ ]] || die "invalid port '$p' (IAMD_PG_PORT / IAMD_PG_PRIVATE_PORT)"
done

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
PG_OS_USER=postgres # OS user that runs initdb/pg_ctl when we are root

# ---------------------------------------------------------------- helpers

# Run a command as the cluster owner (ourselves, or PG_OS_USER when root),
# from / and without our stdout (fd 3) or lock (fd 9): a daemon started from
# here must not hold open the caller's $(...) pipe or the lock.
as_pg() {
    if [ "$IS_ROOT" -eq 0 ]; then
        (cd / && "$@") 3>&- 9>&-
    elif command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@") 3>&- 9>&-
    else
        (cd / && su "$PG_OS_USER" -s /bin/bash -c "$(printf '%q ' "$@")") 3>&- 9>&-
    fi
}

# Highest-versioned /usr/lib/postgresql/<v>/bin having initdb and pg_ctl.
newest_bindir() {
    local f
    for f in $(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V -r); do
        if [ -x "$f" ] && [ -x "${f%/initdb}/pg_ctl" ]; then
            printf '%s\n' "${f%/initdb}"
            return 0
        fi
    done
    return 1
}

# A working psql: from PATH, else from a versioned bin dir.
find_psql() {
    local c
    for c in "$(command -v psql 2>/dev/null || true)" \
             $(printf '%s\n' /usr/lib/postgresql/*/bin/psql | sort -V -r); do
        if [ -n "$c" ] && [ -x "$c" ] && "$c" --version >/dev/null 2>&1; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    return 1
}

find_pg_isready() {
    local c
    for c in "$(command -v pg_isready 2>/dev/null || true)" \
             $(printf '%s\n' /usr/lib/postgresql/*/bin/pg_isready | sort -V -r); do
        if [ -n "$c" ] && [ -x "$c" ] && "$c" --version >/dev/null 2>&1; then
            printf '%s\n' "$c"
            return 0
        fi
    done
    return 1
}

PSQL=$(find_psql || true)
PG_ISREADY=$(find_pg_isready || true)

# Is something listening on host:port? (bash /dev/tcp, no client needed)
tcp_open() {
    if command -v timeout >/dev/null 2>&1; then
        # shellcheck disable=SC2016 # $1/$2 expand in the child bash
        timeout 3 bash -c 'exec 5<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
    else
        (exec 5<>"/dev/tcp/$1/$2") 2>/dev/null
    fi
}

# "host port" of a postgres:// URL (for the no-client fallback only).
url_hostport() {
    local rest=${1#*://} host port=5432
    rest=${rest%%[/?]*}
    rest=${rest##*@}
    if [[ $rest == \[* ]]; then            # [ipv6]:port
        host=${rest%%]*}; host=${host#[}
        rest=${rest#*]}; [ -n "${rest#:}" ] && port=${rest#:}
    else
        host=${rest%%:*}
        [[ $rest == *:* ]] && port=${rest##*:}
    fi
    printf '%s %s\n' "${host:-127.0.0.1}" "$port"
}

# Does $1 answer? Mode "any": accepts connections. Mode "admin": logs in
# without a password and the role may create databases.
# Returns 0 yes, 1 no, 2 "port open but could not verify (no client tools)".
probe() {
    local url=$1 mode=$2 out
    if [ -n "$PSQL" ]; then
        if [ "$mode" = admin ]; then
            out=$("$PSQL" -X -w -q -At -d "$url" \
                  -c 'select rolsuper or rolcreatedb from pg_roles where rolname = current_user' 2>/dev/null) || return 1
            [ "$out" = t ] || return 1
        else
            "$PSQL" -X -w -q -At -d "$url" -c 'select 1' >/dev/null 2>&1 || return 1
        fi
        return 0
    fi
    if [ -n "$PG_ISREADY" ]; then
        "$PG_ISREADY" -q -t 5 -d "$url" || return 1
        [ "$mode" = any ] && return 0
        return 2
    fi
    [[ $url == postgres://* || $url == postgresql://* ]] || return 1
    local hp
    read -r -a hp <<<"$(url_hostport "$url")"
    tcp_open "${hp[0]}" "${hp[1]}" || return 1
    return 2
}

# Port of the running private cluster (line 4 of postmaster.pid).
running_port() {
    sed -n 4p "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true
}

private_running() {
    [ -f "$PGDATA_DIR/postmaster.pid" ] || return 1
    as_pg "$BINDIR/pg_ctl" -D "$PGDATA_DIR" status >/dev/null 2>&1
}

# Choose BINDIR (cluster's own major version if it exists) and PG_OS_USER.
select_binaries() {
    BINDIR=""
    if [ -f "$PGDATA_DIR/PG_VERSION" ]; then
        local v
        v=$(cat "$PGDATA_DIR/PG_VERSION")
        BINDIR="/usr/lib/postgresql/$v/bin"
        [ -x "$BINDIR/pg_ctl" ] || {
            say "$PGDATA_DIR was made by PostgreSQL $v, whose binaries are gone; remove it (rm -rf .data/postgres) or install postgresql-$v"
            return 1
        }
        if [ "$IS_ROOT" -eq 1 ]; then
            PG_OS_USER=$(stat -c %U "$PGDATA_DIR")
            [ "$PG_OS_USER" = root ] && PG_OS_USER=postgres
        fi
    else
        BINDIR=$(newest_bindir) || return 1
    fi
    return 0
}

lock() {
    mkdir -p "$DATA_ROOT"
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$LOCK_FILE"
        flock -w 300 9 || die "timed out waiting for $LOCK_FILE"
    fi
}

# ---------------------------------------------------------------- stop

if [ "${1:-}" = stop ]; then
    if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
        say "no private cluster in .data/postgres; nothing to stop"
        exit 0
    fi
    lock
    select_binaries || exit 1
    if private_running; then
        as_pg "$BINDIR/pg_ctl" -D "$PGDATA_DIR" -m fast -w stop >/dev/null \
            || die "pg_ctl stop failed; see .data/postgres.log"
        say "stopped private cluster (.data/postgres)"
    else
        say "private cluster is not running"
    fi
    exit 0
elif [ $# -gt 0 ] && [ "$1" != start ]; then
    say "usage: $0 [start|stop]"
    exit 2
fi

# ---------------------------------------------------------------- 1. env URL

if [ -n "${IAMD_PG_ADMIN_URL:-}" ]; then
    rc=0; probe "$IAMD_PG_ADMIN_URL" any || rc=$?
    case $rc in
        0) emit "$IAMD_PG_ADMIN_URL" ;;
        2) say "IAMD_PG_ADMIN_URL: port is open (no psql/pg_isready to check further); using it"
           emit "$IAMD_PG_ADMIN_URL" ;;
        *) say "IAMD_PG_ADMIN_URL is set but does not answer; trying others" ;;
    esac
fi

# ---------------------------------------------------------------- 2. local server

LOCAL_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
rc=0; probe "$LOCAL_URL" admin || rc=$?
case $rc in
    0) emit "$LOCAL_URL" ;;
    2) say "something listens on 127.0.0.1:$PG_PORT but no psql to check login; assuming trust auth"
       emit "$LOCAL_URL" ;;
    *) if tcp_open 127.0.0.1 "$PG_PORT"; then
           say "127.0.0.1:$PG_PORT is up but user postgres cannot log in without a password; using a private cluster"
       fi ;;
esac

# ---------------------------------------------------------------- 3/4. private cluster

lock

if ! select_binaries; then
    [ -f "$PGDATA_DIR/PG_VERSION" ] && exit 1
    # 4. no server binaries: install them (root only).
    if [ "$IS_ROOT" -ne 1 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "no PostgreSQL server binaries in /usr/lib/postgresql; $INSTALL_HINT"
    fi
    apt_log="$DATA_ROOT/postgres-apt.log"
    say "no PostgreSQL server binaries; installing package postgresql (log: .data/postgres-apt.log)"
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } \
            >"$apt_log" 2>&1 3>&- 9>&- </dev/null; then
        tail -n 5 "$apt_log" | sed 's/^/  apt: /'
        die "apt-get install postgresql failed; $INSTALL_HINT"
    fi
    PSQL=$(find_psql || true)
    select_binaries || die "postgresql installed but no initdb/pg_ctl found; $INSTALL_HINT"
fi

# As root the server must run as an unprivileged user.
if [ "$IS_ROOT" -eq 1 ]; then
    if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
        say "creating system user $PG_OS_USER"
        useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
            --shell /bin/bash "$PG_OS_USER" || die "useradd $PG_OS_USER failed"
    fi
    as_pg test -x "$DATA_ROOT" ||
        die "user $PG_OS_USER cannot reach $DATA_ROOT (a parent directory is not searchable); chmod o+x it or run as a normal user"
fi

mkdir -p "$SOCK_DIR"
touch "$LOG_FILE"
if [ "$IS_ROOT" -eq 1 ]; then
    chown "$PG_OS_USER": "$SOCK_DIR" "$LOG_FILE"
fi

# Create the cluster once.
if [ ! -f "$PGDATA_DIR/PG_VERSION" ]; then
    if [ -d "$PGDATA_DIR" ] && [ -n "$(ls -A "$PGDATA_DIR")" ]; then
        die "$PGDATA_DIR exists but is not a cluster; remove it (rm -rf .data/postgres)"
    fi
    mkdir -p "$PGDATA_DIR"
    [ "$IS_ROOT" -eq 1 ] && chown "$PG_OS_USER": "$PGDATA_DIR"
    say "creating private cluster .data/postgres with $BINDIR/initdb"
    init_log="$DATA_ROOT/postgres-initdb.log"
    if ! as_pg "$BINDIR/initdb" -U postgres --auth=trust -E UTF8 -D "$PGDATA_DIR" >"$init_log" 2>&1; then
        tail -n 5 "$init_log" | sed 's/^/  initdb: /'
        rm -rf "$PGDATA_DIR"
        die "initdb failed (full output: .data/postgres-initdb.log)"
    fi
fi

PRIVATE_URL() { printf 'postgres://postgres@127.0.0.1:%s/postgres' "$1"; }

if private_running; then
    port=$(running_port)
    [ "$port" != "$PRIVATE_PORT" ] &&
        say "private cluster already runs on port $port (not $PRIVATE_PORT); stop it to change ports"
else
    if tcp_open 127.0.0.1 "$PRIVATE_PORT"; then
        die "port $PRIVATE_PORT is taken by another program; set IAMD_PG_PRIVATE_PORT to a free port"
    fi
    # Unix socket paths are limited to ~107 bytes; skip the socket if too long.
    sock_opt="-k '$SOCK_DIR'"
    [ $(( ${#SOCK_DIR} + 20 )) -gt 107 ] && sock_opt="-k ''"
    say "starting private cluster on 127.0.0.1:$PRIVATE_PORT (log: .data/postgres.log)"
    if ! as_pg "$BINDIR/pg_ctl" -D "$PGDATA_DIR" -l "$LOG_FILE" \
            -o "-p $PRIVATE_PORT $sock_opt -c listen_addresses=127.0.0.1" \
            -w start >/dev/null 2>&1; then
        tail -n 5 "$LOG_FILE" | sed 's/^/  log: /'
        die "could not start the private cluster (see .data/postgres.log)"
    fi
    port=$PRIVATE_PORT
fi

url=$(PRIVATE_URL "$port")
rc=0; probe "$url" admin || rc=$?
[ "$rc" -eq 1 ] && die "private cluster runs but $url does not let postgres in; see .data/postgres.log"
emit "$url"
