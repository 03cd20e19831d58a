#!/usr/bin/env bash
# test_pg_serve.sh: lossd serve --queue end to end (issue 11) on a throwaway PostgreSQL cluster
# (tests/pg_cluster.sh). Evaluations are deterministic, so every run must give the leaderboard
# the local thread pool gives:
# - the daemon's own thread leasing from the queue with 0, 1 and 5 `lossd worker` processes;
#   lossctl workers lists them (and the daemon's own threads);
# - a job cancelled while workers run its evaluations: the queue forgets it and the workers stop
#   the running evaluations;
# - with 3 workers, two of them killed (kill -9) while holding leases, then the daemon killed
#   (kill -9) in the same job and restarted on the same database and queue;
# - a second daemon on the same PostgreSQL database under its own --schema, running a job on a
#   CSV file its worker cannot see: the data travels by content (SHA-256) through PostgreSQL.
# Skipped (one pass, saying so) when the PostgreSQL server binaries are missing.
. "$(dirname "$0")/lib.sh" test_pg_serve

need_binaries
if ! tests/pg_cluster.sh bindir >/dev/null 2>&1; then
    ok "SKIPPED: no PostgreSQL server binaries (apt-get install postgresql); nothing run"
    finish
fi
chmod 755 "$TMP" # the cluster runs as an unprivileged user when we are root
CI=$(tests/pg_cluster.sh start "$TMP/pg" $$) || {
    bad "a throwaway cluster starts"
    finish
}
ok "a throwaway cluster starts"

cat >"$TMP/job.json" <<'JOB'
{"name": "pg-serve", "tasks": [{"name": "digits", "data": "builtin:digits", "model": {"hidden": [128, 128]},
             "train": {"steps": 300}}],
 "budget": {"evaluations": 9}, "population": 6, "children": 3, "seeds": 1,
 "final": {"top": 1, "seeds": 2}, "seed": 5, "warm_start": false, "baseline": "ce"}
JOB
# the job killed in the middle: evaluations long enough to be caught holding a lease (each poll
# of the listing reads the queue afresh, so a lease must last several polls; the sanitizer build
# trains three times slower, so it takes as long with fewer steps)
KSTEPS=2000
[ "${LOSSD_SUITE:-}" = asan ] && KSTEPS=700
sed -e "s/\"steps\": 300/\"steps\": $KSTEPS/" -e 's/"pg-serve"/"pg-kill"/' "$TMP/job.json" >"$TMP/kill.json"
# a slow job to cancel: each evaluation runs far longer than the test waits
sed -e 's/"steps": 300/"steps": 2000000/' -e 's/"pg-serve"/"pg-cancel"/' "$TMP/job.json" >"$TMP/slow.json"
# a user's CSV (a copy of the wine data) next to its job file, in a folder workers cannot see
mkdir -p "$TMP/private"
cp data/wine.csv "$TMP/private/mywine.csv"
cat >"$TMP/private/csvjob.json" <<'JOB'
{"name": "pg-csv", "tasks": [{"name": "mywine", "data": "mywine.csv", "model": {"hidden": [32]},
             "train": {"steps": 300}}],
 "budget": {"evaluations": 9}, "population": 6, "children": 3, "seeds": 1,
 "final": {"top": 1, "seeds": 2}, "seed": 3, "warm_start": false, "baseline": "ce"}
JOB

# wait_state JOB STATE: waits (up to 3 min) for the job to reach STATE.
wait_state() {
    local i s=
    for i in $(seq 1 1800); do
        s=$(job_field "$1" 'd["state"]' 2>/dev/null)
        [ "$s" = "$2" ] && return 0
        sleep 0.1
    done
    echo "job $1 stayed $s, wanted $2" >&2
    return 1
}
# wait_evals JOB N: waits until the job has stored at least N evaluations.
wait_evals() {
    local i n=0
    for i in $(seq 1 1800); do
        n=$(job_field "$1" 'd["progress"]["evaluations"]' 2>/dev/null)
        [ "${n:-0}" -ge "$2" ] 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
leaderboard_key() {
    ctl --json leaderboard "$1" --top 20 |
        json '"\n".join("%s %s %.9g %.9g" % (e["cand"], e["expr"], e["fitness"], e["mean"]) for e in d["entries"])'
}
# start_queue_daemon [ARGS...]: lossd serve --queue on $SOCK/$DB (DPID), 2 s leases, one
# thread of its own unless ARGS say otherwise.
start_queue_daemon() {
    "$LOSSD" serve --socket "$SOCK" --db "$DB" --queue "$CI" --lease 2 --workers 1 "$@" >>"$LOG" 2>&1 &
    DPID=$!
    PIDS+=("$DPID")
    local i
    for i in $(seq 1 600); do
        ctl status >/dev/null 2>&1 && return 0
        kill -0 "$DPID" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
# start_worker N [ARGS...]: a lossd worker with one thread and a 2 s lease (WPID[N]).
WPID=()
start_worker() {
    local n=$1
    shift
    "$LOSSD" worker --queue "$CI" --threads 1 --lease 2 "$@" >>"$TMP/worker$n.log" 2>&1 &
    WPID[$n]=$!
    PIDS+=("$!")
}
stop_workers() {
    local w
    for w in "$@"; do kill "${WPID[$w]}" 2>/dev/null; done
    for w in "$@"; do wait "${WPID[$w]}" 2>/dev/null; done
}
# queue_field EXPR [ARGS...]: over lossd workers --json (d) read from the queue directly
queue_field() {
    local e=$1
    shift
    "$LOSSD" workers --queue "$CI" --json "$@" | json "$e" 2>/dev/null
}
# leases_of PID: leases the worker with that pid holds now
leases_of() { queue_field "sum(len(w[\"leases\"]) for w in d[\"workers\"] if w[\"pid\"] == $1)"; }
# wait_leases PID...: waits (up to 1 min) until each worker holds a lease
wait_leases() {
    local i p all
    for i in $(seq 1 1200); do
        all=1
        for p in "$@"; do [ "$(leases_of "$p")" -ge 1 ] 2>/dev/null || all=0; done
        [ $all = 1 ] && return 0
        sleep 0.05
    done
    return 1
}

# freeze_with_lease PID: stops (SIGSTOP) the worker at a moment it holds a lease, tried until it
# does (up to 1 min): a frozen worker holds its leases until they run out.
freeze_with_lease() {
    local i
    for i in $(seq 1 600); do
        if [ "$(leases_of "$1")" -ge 1 ] 2>/dev/null; then
            kill -STOP "$1"
            HELD=$(leases_of "$1")
            [ "$HELD" -ge 1 ] 2>/dev/null && return 0
            kill -CONT "$1"
        fi
        sleep 0.02
    done
    return 1
}

# ---- the references: the local thread pool -----------------------------------------------------
SOCK="$TMP/local.sock" DB="$TMP/local.db" LOG="$TMP/local.log"
start_daemon "$SOCK" "$DB" "$LOG" || { bad "the local daemon starts" "$(tail -5 "$LOG")"; finish; }
JL=$(ctl submit "$TMP/job.json")
JC=$(ctl submit "$TMP/private/csvjob.json")
JLK=$(ctl submit "$TMP/kill.json")
wait_state "$JL" done && wait_state "$JC" done && wait_state "$JLK" done
check "the jobs finish on the local thread pool" $? "$(tail -5 "$LOG")"
REF=$(leaderboard_key "$JL")
REFCSV=$(leaderboard_key "$JC")
REFK=$(leaderboard_key "$JLK")
n=$(ctl --json workers | json 'd["executor"] + " " + str(len(d["workers"])) + " " + str(d["workers"][0]["threads"])')
[ "$n" = "threads 1 2" ]
check "lossctl workers: the thread pool is one local entry of 2 threads" $? "got: $n"
stop_daemon

# ---- the daemon's own thread and 0, 1, 5 remote workers -----------------------------------------
SOCK="$TMP/q.sock" DB="$TMP/q.db" LOG="$TMP/q.log"
out=$("$LOSSD" serve --socket "$SOCK" --db "$DB" --queue "host=$TMP/pg password=x" 2>&1)
[ $? = 2 ] && echo "$out" | grep -q "password"
check "serve --queue refuses a password on the command line" $? "got: $out"
out=$("$LOSSD" serve --socket "$SOCK" --db "$DB" --workers 0 2>&1)
[ $? = 2 ] && echo "$out" | grep -q "only with --queue"
check "serve --workers 0 needs --queue" $? "got: $out"
start_queue_daemon || { bad "lossd serve --queue starts" "$(tail -5 "$LOG")"; finish; }
ok "lossd serve --queue starts"
for nw in 0 1 5; do
    while [ "${#WPID[@]}" -lt "$nw" ]; do start_worker $((${#WPID[@]} + 1)); done
    J=$(ctl submit "$TMP/job.json")
    wait_state "$J" done
    check "the job finishes with the daemon's thread and $nw remote workers" $? "$(tail -5 "$LOG")"
    got=$(leaderboard_key "$J")
    [ -n "$REF" ] && [ "$got" = "$REF" ]
    check "its leaderboard equals the local thread pool's ($nw remote workers)" $? "local:" "$REF" "queue:" "$got"
    if [ "$nw" = 0 ]; then
        # the daemon's own thread did it all, through the queue (server.workers reads the
        # queue's listing when asked: no waiting for the next sweep)
        own_listed() {
            n=$(ctl --json workers | json '" ".join("%s %s %s" % (w["local"], w["threads"], w["evals_done"] >= 13) for w in d["workers"] if w["state"] == "alive")')
            [ "$n" = "True 1 True" ]
        }
        own_listed
        check "lossctl workers: the daemon's own thread, 1 thread, did the job's evaluations" $? "got: $n"
    fi
done
want=$(printf '%s\n' "${WPID[@]}" | sort -n | paste -sd, | sed 's/,/, /g')
five_listed() {
    n=$(ctl --json workers | json 'sorted(w["pid"] for w in d["workers"] if w["state"] == "alive" and not w["local"] and w["threads"] == 1)')
    [ "$n" = "[$want]" ]
}
five_listed
check "lossctl workers lists the 5 remote workers by pid" $? "got: $n" "want: [$want]"
six_printed() {
    ctl workers >"$TMP/workers.txt" 2>&1 && grep -q "the daemon's own threads" "$TMP/workers.txt" &&
        [ "$(grep -c " alive " "$TMP/workers.txt")" = 6 ]
}
six_printed
check "lossctl workers prints the 6 worker processes, the daemon's own marked" $? "$(cat "$TMP/workers.txt")"
stop_workers 4 5
# server.workers reads the queue's listing when asked: the two workers that just stopped (they
# mark themselves stopped before exiting) show stopped at once, not after the next sweep
n=$(ctl --json workers | json "sorted(w['pid'] for w in d['workers'] if w['state'] == 'stopped' and w['pid'] in (${WPID[4]}, ${WPID[5]}))")
want45=$(printf '%s\n' "${WPID[4]}" "${WPID[5]}" | sort -n | paste -sd, | sed 's/,/, /g')
[ "$n" = "[$want45]" ]
check "lossctl workers right after workers 4 and 5 stopped shows them stopped" $? "got: $n" "want: [$want45]"

# ---- cancel through the queue --------------------------------------------------------------------
JX=$(ctl submit "$TMP/slow.json")
wait_leases "${WPID[1]}" "${WPID[2]}"
check "remote workers run the slow job's evaluations" $? "$(queue_field 'd')"
ctl cancel "$JX" >/dev/null
wait_state "$JX" cancelled
check "the slow job is cancelled" $? "$(tail -5 "$LOG")"
for _ in $(seq 1 600); do
    n=$(queue_field 'd["queue"]["pending"] + d["queue"]["leased"]')
    [ "$n" = 0 ] && break
    sleep 0.1
done
[ "$n" = 0 ]
check "the queue holds none of its evaluations" $? "pending + leased: $n"
# each worker notices at its own next heartbeat: wait for both
for _ in $(seq 1 1200); do
    [ "$(grep -l "job $JX seq [0-9]* is no longer ours" "$TMP/worker1.log" "$TMP/worker2.log" | wc -l)" = 2 ] && break
    sleep 0.1
done
[ "$(grep -l "job $JX seq [0-9]* is no longer ours" "$TMP/worker1.log" "$TMP/worker2.log" | wc -l)" = 2 ]
check "both workers stopped the running evaluations" $? "$(tail -n 3 "$TMP/worker1.log" "$TMP/worker2.log")"

# ---- 3 workers: kill -9 two of them holding leases, then the daemon, in one job -------------------
# The daemon runs without a thread of its own here, so only workers 1 and 2 evaluate (worker 3
# is held with SIGSTOP) and each holds leases while the job has work: they are frozen at a
# moment each holds one and killed together with the daemon, before the job can end (the frozen
# leases keep it open). Then the daemon starts again, with its own thread, and worker 3 goes on.
stop_daemon
start_queue_daemon --workers 0 || { bad "the daemon starts again with no thread of its own" "$(tail -5 "$LOG")"; finish; }
kill -STOP "${WPID[3]}"
JK=$(ctl submit "$TMP/kill.json")
HELD=0 held=
freeze_with_lease "${WPID[1]}" && held=$HELD && freeze_with_lease "${WPID[2]}"
check "workers 1 and 2 are caught holding leases of the job" $? "$(queue_field 'd')"
held="$held and $HELD"
# at once, while worker 2's lease holds the job open (whether it did is checked below: the
# restarted daemon resumes the job only if it had not ended)
kill -9 "${WPID[1]}" "${WPID[2]}" "$DPID" 2>/dev/null
wait "${WPID[1]}" "${WPID[2]}" "$DPID" 2>/dev/null
echo "     (the killed workers held $held leases)"
kill -CONT "${WPID[3]}"
start_queue_daemon
check "the daemon restarts on the same queue" $? "$(tail -5 "$LOG")"
# recovery loads the job off the loop, so the line follows the first answer: wait for it
for _ in $(seq 1 200); do grep -q "job $JK: resuming" "$LOG" && break; sleep 0.05; done
grep -q "job $JK: resuming" "$LOG"
check "it resumes the job it was killed in (two workers and the daemon killed mid-job)" $? "$(tail -5 "$LOG")"
wait_state "$JK" done
check "the job finishes after kill -9 of two workers and the daemon" $? "$(tail -5 "$LOG")"
got=$(leaderboard_key "$JK")
[ -n "$REFK" ] && [ "$got" = "$REFK" ]
check "its leaderboard still equals the local thread pool's" $? "local:" "$REFK" "queue:" "$got"
mm=$(queue_field 'd["queue"]["mismatches"]')
[ "$mm" = 0 ]
check "no late result disagreed with the first" $? "mismatches: $mm"

# ---- a second daemon, its own schema, a CSV its worker cannot see ---------------------------------
# Daemon 1 keeps running on schema lossd; daemon 2 uses schema other on the same database, with no
# thread of its own. Its first job is job 1, as daemon 1's first was: one shared schema would mix them.
SOCK1=$SOCK DPID1=$DPID
SOCK="$TMP/b.sock" DB="$TMP/b.db" LOG="$TMP/b.log"
start_queue_daemon --workers 0 --schema other || { bad "a second daemon starts on --schema other" "$(tail -5 "$LOG")"; finish; }
ok "a second daemon starts on --schema other"
JB=$(ctl submit "$TMP/private/csvjob.json")
for _ in $(seq 1 600); do
    n=$(queue_field 'd["queue"]["pending"]' --schema other)
    [ "${n:-0}" -ge 1 ] 2>/dev/null && break
    sleep 0.1
done
# the daemon has stored the task and its data in the queue: the file goes, the worker starts
# elsewhere
mv "$TMP/private" "$TMP/gone"
mkdir -p "$TMP/elsewhere"
(cd "$TMP/elsewhere" && exec "$LOSSD" worker --queue "$CI" --schema other --threads 1 --lease 2 \
    >>"$TMP/worker_b.log" 2>&1) &
WB=$!
PIDS+=("$WB")
wait_state "$JB" done
check "the CSV job finishes on the other schema's worker" $? "$(tail -5 "$LOG")" "$(tail -5 "$TMP/worker_b.log")"
got=$(leaderboard_key "$JB")
[ "$JB" = "$JL" ] && [ -n "$REFCSV" ] && [ "$got" = "$REFCSV" ]
check "job $JB (an id daemon 1 used too): the leaderboard the CSV gives on the local pool" $? "local:" "$REFCSV" "queue:" "$got"
n=$(ctl --json failures "$JB" | json 'len(d["reasons"])')
[ "$n" = 0 ]
check "none of its evaluations failed" $? "$(ctl failures "$JB" 2>&1 | head -5)"
# the listing is a snapshot the daemon refreshes each second: a busy machine may lag
for _ in $(seq 1 300); do
    n=$(ctl --json workers | json 'sorted(w["pid"] for w in d["workers"])')
    [ "$n" = "[$WB]" ] && break
    sleep 0.1
done
[ "$n" = "[$WB]" ]
check "lossctl workers on the second daemon lists only its schema's worker" $? "got: $n"
n=$(SOCK=$SOCK1 ctl --json workers | json "[w['pid'] for w in d['workers'] if w['pid'] == $WB]")
[ "$n" = "[]" ]
check "the first daemon's listing does not show it" $? "got: $n"
kill "$WB"
wait "$WB" 2>/dev/null
stop_daemon
SOCK=$SOCK1 DPID=$DPID1
stop_daemon
stop_workers 3
tests/pg_cluster.sh stop "$TMP/pg"
# sanitizer builds (LOSSD_BIN=build/asan/bin) report into the logs
! grep -h -m3 -E "AddressSanitizer|LeakSanitizer|runtime error" "$TMP"/*.log
check "no sanitizer reports in the daemons' and workers' logs" $?
finish
