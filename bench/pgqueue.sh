#!/usr/bin/env bash
# pgqueue.sh: the PostgreSQL queue's benchmark (build/bench/bench_pgqueue) against a throwaway
# durable cluster (tests/pg_cluster.sh with fsync on, Unix socket only), or against the server
# in $LOSSD_PG_CONNINFO when set (a real deployment: another host, TLS). Extra arguments go to
# bench_pgqueue (--rt N, --evals N, --eval-ms MS, --sync). Says so and exits 0 when PostgreSQL's
# server binaries are absent.
set -u
cd "$(dirname "$0")/.."
BENCH=${BUILD:-build}/bench/bench_pgqueue
[ -x "$BENCH" ] || { echo "pgqueue.sh: $BENCH missing (run make unit)"; exit 1; }
if [ -n "${LOSSD_PG_CONNINFO:-}" ]; then
    exec "$BENCH" "$LOSSD_PG_CONNINFO" "$@"
fi
if ! tests/pg_cluster.sh bindir >/dev/null; then
    echo "pgqueue.sh: skipped: no PostgreSQL server binaries (Debian's postgresql package)"
    exit 0
fi
dir=${TMPDIR:-/tmp}/lossd-pgbench.$$
conninfo=$(tests/pg_cluster.sh start "$dir" $$ durable) || exit 1
trap 'tests/pg_cluster.sh stop "$dir"' EXIT
"$BENCH" "$conninfo" "$@"
