#!/usr/bin/env bash
# pg_cluster.sh: a throwaway PostgreSQL cluster for the queue's tests and benchmark: initdb and
# pg_ctl in a temporary directory, Unix socket only (listen_addresses=''), run as an unprivileged
# user when called as root. Not a test itself (tests/run.sh runs only test_*).
#
#   tests/pg_cluster.sh bindir          prints the server binaries' directory, or exits 1
#   tests/pg_cluster.sh start DIR PID [durable]
#                                       creates DIR (must not exist), starts a cluster in it and
#                                       prints a libpq conninfo for it. A watcher stops the
#                                       cluster and removes DIR when process PID exits, so a
#                                       crashed test leaves nothing running. "durable" keeps
#                                       fsync on (benchmarks); tests run with fsync off.
#   tests/pg_cluster.sh restart DIR     restarts the server (fast shutdown): clients lose their
#                                       connections, the data stays
#   tests/pg_cluster.sh stop DIR        stops the cluster (immediate) and removes DIR
#
# As root the cluster runs as $LOSSD_PG_USER (default nobody) and DIR is given to that user;
# the superuser role is "lossd" with trust authentication on the socket, which only DIR's owner
# and root can reach (DIR is 0700).
set -u

bindir() {
    local d
    for d in ${LOSSD_PG_BINDIR:-} /usr/lib/postgresql/*/bin /usr/local/pgsql/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
    done
    d=$(command -v initdb 2>/dev/null) && [ -x "$(dirname "$d")/pg_ctl" ] &&
        { dirname "$d"; return 0; }
    return 1
}

# as_owner CMD...: runs CMD as the cluster's owner (root runs it as the unprivileged user).
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "${LOSSD_PG_USER:-nobody}" -- "$@"
    else
        "$@"
    fi
}

stop() {
    local dir=$1 bin
    bin=$(bindir) || return 1
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
    fi
    rm -rf "$dir"
}

start() {
    local dir=$1 watch=$2 durable=${3:-} bin fsync=off
    bin=$(bindir) || { echo "pg_cluster: no PostgreSQL server binaries" >&2; return 1; }
    [ "$durable" = durable ] && fsync=on
    mkdir -m 700 "$dir" || return 1
    if [ "$(id -u)" = 0 ]; then chown "${LOSSD_PG_USER:-nobody}" "$dir" || return 1; fi
    if ! as_owner "$bin/initdb" -D "$dir/data" -U lossd -A trust -E UTF8 --no-sync \
        --no-instructions >"$dir/initdb.log" 2>&1; then
        echo "pg_cluster: initdb failed:" >&2
        tail -5 "$dir/initdb.log" >&2
        rm -rf "$dir"
        return 1
    fi
    # Small and quiet: a test cluster needs few connections, little memory and no TCP port.
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$dir'
max_connections = 40
shared_buffers = 16MB
fsync = $fsync
full_page_writes = $fsync
autovacuum = on
logging_collector = off
EOF
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
        >/dev/null 2>&1; then
        echo "pg_cluster: the server did not start:" >&2
        tail -5 "$dir/server.log" >&2
        stop "$dir"
        return 1
    fi
    # The watcher: when the caller exits (even by a crash), stop the cluster and remove DIR.
    (
        trap '' HUP INT
        while kill -0 "$watch" 2>/dev/null && [ -d "$dir" ]; do sleep 1; done
        stop "$dir"
    ) </dev/null >/dev/null 2>&1 &
    echo "host=$dir dbname=postgres user=lossd"
}

restart() {
    local bin
    bin=$(bindir) || return 1
    as_owner "$bin/pg_ctl" -D "$1/data" -l "$1/server.log" -m fast -w -t 60 restart >/dev/null 2>&1
}

case "${1:-}" in
bindir) bindir ;;
restart) [ $# -ge 2 ] || { echo "usage: $0 restart DIR" >&2; exit 2; }; restart "$2" ;;
start) [ $# -ge 3 ] || { echo "usage: $0 start DIR PID [durable]" >&2; exit 2; }; start "$2" "$3" "${4:-}" ;;
stop) [ $# -ge 2 ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
*) echo "usage: $0 bindir | start DIR PID [durable] | restart DIR | stop DIR" >&2; exit 2 ;;
esac
