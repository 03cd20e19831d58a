#!/usr/bin/env bash
# pgqueue_scale.sh: evaluations per second of one search through lossd serve --queue with 0, 1,
# 2 and 4 `lossd worker` processes on this host (issue 11), against the thread pool without a
# queue, on a slow task (digits, hidden [128, 128], 2000 steps: about half a second per
# evaluation here). Each row runs the same job (same seed, so the same evaluations) on a fresh
# daemon and a throwaway durable PostgreSQL cluster (tests/pg_cluster.sh); evals/s is the job's
# stored evaluations over the time from submit to done. Rows:
#   pool      lossd serve --workers 1 (no queue): the reference
#   queue+0   lossd serve --queue --workers 1: the daemon's own thread, leasing from the queue
#   queue+K   lossd serve --queue --workers 0 and K worker processes of one thread each
# Every process here shares this host's cores: K above the core count measures the queue's
# overhead under contention, not scale-out; on K hosts the rows scale with the hosts.
# Says so and exits 0 without PostgreSQL's server binaries.
#   bench/pgqueue_scale.sh [EVALUATIONS (default 24)] [STEPS (default 2000)]
set -u
cd "$(dirname "$0")/.."
BIN=${LOSSD_BIN:-bin}
EVALS=${1:-24}
STEPS=${2:-2000}
if ! tests/pg_cluster.sh bindir >/dev/null 2>&1; then
    echo "pgqueue_scale.sh: skipped: no PostgreSQL server binaries (Debian's postgresql package)"
    exit 0
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lossd-pgscale.XXXXXX")
chmod 755 "$TMP"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -9 "$p" 2>/dev/null; done
    for p in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$p" 2>/dev/null; done
    tests/pg_cluster.sh stop "$TMP/pg" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT
CI=$(tests/pg_cluster.sh start "$TMP/pg" $$ durable) || exit 1
cat >"$TMP/job.json" <<JOB
{"name": "pgscale", "tasks": [{"name": "digits", "data": "builtin:digits", "model": {"hidden": [128, 128]},
             "train": {"steps": $STEPS}}],
 "budget": {"evaluations": $EVALS}, "population": 8, "children": 4, "seeds": 1,
 "final": {"top": 1, "seeds": 2}, "seed": 11, "warm_start": false, "baseline": "ce"}
JOB

ctl() { "$BIN/lossctl" --socket "$SOCK" "$@"; }
now() { date +%s.%N; }

# run LABEL K SERVE_ARGS...: a fresh daemon (and schema) with K worker processes; prints a row
n=0
run() {
    local label=$1 k=$2 i
    shift 2
    n=$((n + 1))
    SOCK="$TMP/s$n.sock"
    local schema="scale$n" wp=()
    local extra=()
    case " $* " in *" --queue "*) extra=(--schema "$schema") ;; esac
    "$BIN/lossd" serve --socket "$SOCK" --db "$TMP/d$n.db" "$@" "${extra[@]+"${extra[@]}"}" >>"$TMP/d$n.log" 2>&1 &
    local dpid=$!
    PIDS+=("$dpid")
    for i in $(seq 1 600); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
    for i in $(seq 1 "$k"); do
        "$BIN/lossd" worker --queue "$CI" --schema "$schema" --threads 1 >>"$TMP/w$n.log" 2>&1 &
        wp+=($!)
        PIDS+=($!)
    done
    local t0 t1 job st evals
    t0=$(now)
    job=$(ctl submit "$TMP/job.json") || { echo "pgqueue_scale.sh: the job was refused" >&2; exit 1; }
    for i in $(seq 1 36000); do
        st=$(ctl --json call job.get "{\"job_id\": $job}" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["state"], d["progress"]["evaluations"])')
        [ "${st%% *}" = done ] && break
        sleep 0.1
    done
    t1=$(now)
    evals=${st##* }
    python3 -c "import sys; w=float(sys.argv[2])-float(sys.argv[1]); e=int(sys.argv[3]); print('%-9s %3d %9d %9.2f %9.2f' % (sys.argv[4], int(sys.argv[5]), e, w, e / w))" "$t0" "$t1" "$evals" "$label" "$k"
    ctl shutdown >/dev/null 2>&1
    for p in "${wp[@]+"${wp[@]}"}"; do kill "$p" 2>/dev/null; done
    for p in "${wp[@]+"${wp[@]}"}" "$dpid"; do wait "$p" 2>/dev/null; done
}

echo "digits hidden [128, 128], $STEPS steps, budget $EVALS (+4 final), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo "row     procs     evals    wall s   evals/s"
run pool 0 --workers 1
run queue+0 0 --workers 1 --queue "$CI"
for k in 1 2 4; do run "queue+$k" "$k" --workers 0 --queue "$CI"; done
echo "load at the end $(cut -d' ' -f1 /proc/loadavg)"
