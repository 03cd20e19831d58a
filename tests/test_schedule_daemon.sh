#!/usr/bin/env bash
# test_schedule_daemon.sh: cron schedules in a running lossd, driven through lossctl with the
# fake clock test hook ($LOSSD_FAKE_CLOCK_FILE: a file holding epoch seconds that the schedule
# tick reads instead of the wall clock): fires at their time, runs linked to their schedule,
# catch_up across a restart, concurrency forbid, until deadlines, trigger, pause/resume,
# delete, validation errors, schedules surviving a restart. Tiny jobs on builtin:digits.
# Uses $LOSSD_BIN/lossd and $LOSSD_BIN/lossctl; prints "N passed, N failed" last.
. "$(dirname "$0")/lib.sh" lossd-sched

SOCK="$TMP/s.sock"
DB="$TMP/s.db"
LOG="$TMP/s.log"
CLOCK="$TMP/clock"

# The fake clock. T0 = 2030-01-15T00:50:00Z.
T0=1894668600
set_clock() { echo "$1" >"$CLOCK.tmp" && mv "$CLOCK.tmp" "$CLOCK"; }
set_clock "$T0"

# start_fake_clock_daemon: lossd serve on $SOCK, $DB, $LOG reading the fake clock.
start_fake_clock_daemon() { LOSSD_FAKE_CLOCK_FILE="$CLOCK" start_daemon "$SOCK" "$DB" "$LOG"; }

# job_file PATH EVALS: a tiny search on digits (30 steps, one seed).
job_file() {
    cat >"$1" <<EOF
{"name": "sched-test", "tasks": [{"data": "builtin:digits", "train": {"steps": 30}}],
 "budget": {"evaluations": $2}, "population": 4, "children": 4, "seeds": 1,
 "fidelity": {"steps": [30]}, "final": {"top": 1, "seeds": 2}}
EOF
}
job_file "$TMP/tiny.json" 4
job_file "$TMP/long.json" 100000

# runs SID: the schedule's run job ids, newest first, one line.
runs() { ctl --json schedule show "$1" | json '" ".join(str(int(r["job_id"])) for r in d["runs"])'; }
nruns() { ctl --json schedule show "$1" | json 'len(d["runs"])'; }
sched_field() { ctl --json schedule show "$1" | json "$2"; }
# wait_for CMD...: polls (max 60 s) until the command succeeds.
wait_for() {
    local i
    for i in $(seq 1 600); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    return 1
}
nruns_is() { [ "$(nruns "$1")" = "$2" ]; }
job_state_in() {
    local s w
    s=$(job_field "$1" 'd["state"]')
    shift
    for w in "$@"; do [ "$s" = "$w" ] && return 0; done
    return 1
}
log_has() { grep -qF -- "$1" "$LOG"; }
# events: every stored event as one JSON object a line ({"kind":..., "data":...}).
events() {
    "$PY" - "$SOCK" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(1.0)
s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"events.subscribe","params":{"since":0}}\n')
buf = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        buf += chunk
except socket.timeout:
    pass
for line in buf.split(b"\n"):
    if not line.strip(): continue
    m = json.loads(line)
    if m.get("method") == "event":
        print(json.dumps(m["params"]))
EOF
}

need_binaries
if start_fake_clock_daemon; then ok "daemon starts with the fake clock"; else
    bad "daemon starts with the fake clock" "$(tail -5 "$LOG")"
    finish
fi

# ---- validation --------------------------------------------------------------------------
create_err() { # create_err PARAMS_JSON: prints "code message" of schedule.create's error
    ctl --json call schedule.create "$1" 2>/dev/null | json '"%s %s" % (d["code"], d["message"])'
}
out=$(create_err '{"cron":"0 25 * * *","job":{"tasks":["builtin:digits"]}}')
[[ "$out" == "-32602 params.cron: cron field 2 (hour)"* ]]
check "invalid cron: -32602 naming params.cron" $? "got: $out"
out=$(create_err '{"cron":"0 1 * * *","tz":"Europe/Berln","job":{"tasks":["builtin:digits"]}}')
[[ "$out" == "-32602 params.tz: unknown time zone 'Europe/Berln'"* ]]
check "unknown zone: -32602 naming params.tz" $? "got: $out"
out=$(create_err '{"cron":"0 1 * * *","until":"01:00","job":{"tasks":["builtin:digits"]}}')
[[ "$out" == "-32602 params.until: "* ]]
check "until leaving no time: -32602 naming params.until" $? "got: $out"
out=$(create_err '{"cron":"0 1 * * *","job":{"budget":{"evaluations":4}}}')
[[ "$out" == "-32602 params.job: "* ]]
check "invalid job template: -32602 naming params.job" $? "got: $out"
out=$(ctl schedule add --cron "0 1 * *" "$TMP/tiny.json" 2>&1)
st=$?
[ $st = 1 ] && [[ "$out" == *"params.cron: expected 5 fields, got 4"* ]]
check "lossctl schedule add with a bad cron exits 1 with the daemon's message" $? "exit $st: $out"
n=$(ctl --json schedule list | json 'len(d["schedules"])')
[ "$n" = 0 ]
check "refused schedules are not stored" $? "got $n schedules"

# ---- a fire at its time --------------------------------------------------------------------
S1=$(ctl schedule add --cron "0 1 * * *" --tz UTC --name nightly "$TMP/tiny.json")
[[ "$S1" =~ ^[0-9]+$ ]]
check "schedule add prints an id" $? "got: $S1"
out=$(ctl --json call schedule.create "{\"cron\":\"0 1 * * *\",\"tz\":\"Europe/Berlin\",\"job\":$(cat "$TMP/tiny.json")}")
nr=$(echo "$out" | json '",".join(d["next_runs"])')
[ "$nr" = "2030-01-16T01:00:00+01:00,2030-01-17T01:00:00+01:00,2030-01-18T01:00:00+01:00,2030-01-19T01:00:00+01:00,2030-01-20T01:00:00+01:00" ]
check "schedule.create returns the next 5 fires with their offset" $? "got: $out"
SB=$(echo "$out" | json 'd["schedule_id"]')
nf=$(sched_field "$S1" 'd["next_fire"]')
[ "$nf" = "2030-01-15T01:00:00+00:00" ]
check "next fire computed from the (fake) clock" $? "got $nf"

[ "$(nruns "$S1")" = 0 ]
check "no run before the fire time" $? "runs: $(runs "$S1")"
set_clock $((T0 + 600 + 3)) # 01:00:03
wait_for nruns_is "$S1" 1
check "the schedule fires at its time" $? "runs: $(runs "$S1"); log: $(tail -3 "$LOG")"
R1=$(runs "$S1")
sid=$(job_field "$R1" 'd["schedule_id"]')
[ "$sid" = "$S1" ]
check "the run is an ordinary job linked to its schedule" $? "job $R1 schedule_id $sid"
wait_for job_state_in "$R1" done
check "the run finishes" $? "state $(job_field "$R1" 'd["state"]')"
lf=$(sched_field "$S1" 'd["last_fire"]')
nf=$(sched_field "$S1" 'd["next_fire"]')
[ "$lf" = "2030-01-15T01:00:00+00:00" ] && [ "$nf" = "2030-01-16T01:00:00+00:00" ]
check "last_fire and next_fire advance" $? "last $lf next $nf"
be=$(ctl --json schedule show "$S1" | json 'd["runs"][0]["progress"]["best_expr"]')
[ -n "$be" ] && [ "$be" != None ]
check "schedule show reports the run's best loss" $? "got: $be"
out=$(ctl schedule show "$S1")
echo "$out" | grep -q "nightly" && echo "$out" | grep -qE "^ +$R1 +done"
check "lossctl schedule show prints the schedule and its runs" $? "$out"
ev=$(events | grep '"schedule.fired"' | grep -c "\"job_id\": $R1")
[ "$ev" = 1 ]
check "a schedule.fired event names the job" $? "got $ev"

# ---- trigger, warm start from earlier runs, forbid ------------------------------------------
R2=$(ctl schedule run "$S1")
[[ "$R2" =~ ^[0-9]+$ ]] && [ "$R2" != "$R1" ]
check "schedule run (trigger) returns a new job id" $? "got: $R2"
sid=$(job_field "$R2" 'd["schedule_id"]')
[ "$sid" = "$S1" ]
check "the triggered run is linked" $? "schedule_id $sid"
wait_for job_state_in "$R2" done
log_has "schedule $S1: job $R2 seeded with" && ! log_has "schedule $S1: job $R2 seeded with 0 "
check "the second run is warm-started from the first run's leaderboard" $? \
    "$(grep "job $R2 seeded" "$LOG")"
seeds=$(job_field "$R2" 'len(d["spec"]["seed_losses"])')
# the seeds are sorted by fitness (a finalist's is on its fresh seeds, so rank 1 need not be the
# highest: docs/jobs.md "Final selection")
best1=$(ctl --json leaderboard "$R1" --top 8 | json 'max(d["entries"], key=lambda e: e["fitness"])["expr"]')
first=$(job_field "$R2" 'd["spec"]["seed_losses"][0]')
[ "$seeds" -ge 1 ] 2>/dev/null && [ "$first" = "$best1" ]
check "its seed_losses start with the first run's best loss" $? "got $seeds seeds, first '$first', run 1 best '$best1'"

S2=$(ctl schedule add --cron "*/10 * * * *" --tz UTC "$TMP/long.json")
set_clock $((T0 + 1200 + 2)) # 01:10:02
wait_for nruns_is "$S2" 1
check "an every-10-minutes schedule fires" $? "runs: $(runs "$S2")"
R3=$(runs "$S2")
ctl pause "$R3" >/dev/null
job_state_in "$R3" paused
check "its long run is paused (a paused run still counts as going)" $? "state $(job_field "$R3" 'd["state"]')"
out=$(ctl schedule run "$S2" 2>&1)
st=$?
[ $st = 1 ] && [[ "$out" == *"a run is still going (concurrency forbid)"* ]]
check "trigger refused while a run is going (forbid)" $? "exit $st: $out"
set_clock $((T0 + 1800 + 2)) # 01:20:02
wait_for log_has "schedule $S2: fire at 2030-01-15T01:20:00+00:00 skipped: 1 run(s) still going (concurrency forbid)"
check "forbid: the next fire is skipped and logged" $? "$(grep "schedule $S2" "$LOG" | tail -3)"
[ "$(nruns "$S2")" = 1 ]
check "forbid: no second run" $? "runs: $(runs "$S2")"
ev=$(events | grep '"schedule.skipped"' | grep '"reason": "skip-running"' | grep -c "\"schedule_id\": $S2")
[ "$ev" = 1 ]
check "forbid: a schedule.skipped event with reason skip-running" $? "got $ev"
ctl cancel "$R3" >/dev/null
ctl schedule pause "$S2" >/dev/null # its long runs are not needed any more

S3=$(ctl schedule add --cron "*/10 * * * *" --tz UTC --concurrency allow "$TMP/long.json")
a=$(ctl schedule run "$S3") && b=$(ctl schedule run "$S3")
[[ "$a" =~ ^[0-9]+$ ]] && [[ "$b" =~ ^[0-9]+$ ]] && [ "$a" != "$b" ]
check "concurrency allow: two overlapping runs" $? "got '$a' '$b'"
ctl cancel "$a" >/dev/null
ctl cancel "$b" >/dev/null
ctl schedule rm "$S3" >/dev/null

# ---- until: budget.seconds and the absolute deadline --------------------------------------
S4=$(ctl schedule add --cron "30 1 * * *" --tz UTC --until 02:00 "$TMP/long.json")
set_clock $((T0 + 2400 + 5)) # 01:30:05
wait_for nruns_is "$S4" 1
check "a schedule with until fires" $? "runs: $(runs "$S4")"
R4=$(runs "$S4")
bs=$(job_field "$R4" 'd["progress"]["budget_s"]')
[ "$bs" = 1795 ] || [ "$bs" = 1795.0 ]
check "until 02:00 from 01:30:05 gives budget.seconds 1795" $? "got $bs"
set_clock $((T0 + 4200 + 1)) # 02:00:01
wait_for job_state_in "$R4" expired
check "the run is stopped at its until deadline and ends expired (not cancelled)" $? "state $(job_field "$R4" 'd["state"]')"
grep -q "schedule $S4: job $R4 reached its until deadline while running: expired" "$LOG"
check "the log says the run expired at its deadline" $? "$(grep "schedule $S4" "$LOG" | tail -2)"

# ---- pause and resume ---------------------------------------------------------------------
ctl schedule pause "$S1" >/dev/null
p=$(sched_field "$S1" 'd["paused"]')
[ "$p" = True ]
check "pause" $? "paused: $p"
set_clock $((T0 + 86400 + 600 + 3)) # next day 01:00:03
wait_for log_has "schedule $S1: fire at 2030-01-16T01:00:00+00:00 dropped: paused"
check "a paused schedule drops its fire (logged)" $? "$(grep "schedule $S1" "$LOG" | tail -2)"
[ "$(nruns "$S1")" = 2 ]
check "a paused schedule makes no run" $? "runs: $(runs "$S1")"
out=$(ctl schedule resume "$S1")
[[ "$out" == *"next fire 2030-01-17T01:00:00+00:00"* ]]
check "resume: the next fire counts from now (no backlog)" $? "got: $out"

# ---- restart across fire times: catch_up once and skip --------------------------------------
S5=$(ctl schedule add --cron "0 3 * * *" --tz UTC --catch-up once "$TMP/tiny.json")
S6=$(ctl schedule add --cron "0 3 * * *" --tz UTC --catch-up skip "$TMP/tiny.json")
before=$(ctl --json schedule list | json '[[s["schedule_id"], s["cron"], s["tz"], s["until"], s["catch_up"], s["concurrency"], s["paused"]] for s in d["schedules"]]')
stop_daemon
set_clock $((T0 + 86400 + 3 * 86400 + 3 * 3600)) # 2030-01-19 03:50: the 03:00 fires of the 16th to the 19th missed
if start_fake_clock_daemon; then ok "daemon restarts"; else
    bad "daemon restarts" "$(tail -5 "$LOG")"
    finish
fi
after=$(ctl --json schedule list | json '[[s["schedule_id"], s["cron"], s["tz"], s["until"], s["catch_up"], s["concurrency"], s["paused"]] for s in d["schedules"]]')
[ "$before" = "$after" ]
check "schedules survive a restart (fields and paused state)" $? "before $before" "after  $after"
[ "$(nruns "$S5")" = 1 ]
check "catch_up once: one run for the fires missed while down" $? "runs: $(runs "$S5")"
R5=$(runs "$S5")
[ "$(job_field "$R5" 'd["schedule_id"]')" = "$S5" ]
check "the catch-up run is linked" $? ""
[ "$(nruns "$S6")" = 0 ]
check "catch_up skip: no run" $? "runs: $(runs "$S6")"
log_has "schedule $S6: 4 fire(s) missed while the daemon was down"
check "catch_up skip: the missed fires are logged" $? "$(grep "schedule $S6" "$LOG" | tail -2)"
nf=$(sched_field "$S6" 'd["next_fire"]')
[ "$nf" = "2030-01-20T03:00:00+00:00" ]
check "after the restart the next fire comes from the clock" $? "got $nf"
wait_for job_state_in "$R5" done
check "the catch-up run finishes" $? "state $(job_field "$R5" 'd["state"]')"

# ---- delete ---------------------------------------------------------------------------------
out=$(ctl schedule rm "$S1")
st=$?
[ $st = 0 ]
check "schedule rm" $? "exit $st: $out"
out=$(ctl --json call schedule.get "{\"schedule_id\": $S1}" 2>/dev/null | json '"%s %s" % (d["code"], d["message"])')
[ "$out" = "-32001 schedule $S1: not found" ]
check "a deleted schedule is gone (-32001)" $? "got: $out"
st=$(job_field "$R1" 'd["state"]')
[ "$st" = done ]
check "its jobs stay" $? "job $R1 state $st"
out=$(ctl schedule rm "$S1" 2>&1)
st=$?
[ $st = 1 ] && [[ "$out" == *"not found"* ]]
check "rm of an unknown schedule exits 1" $? "exit $st: $out"
! ctl schedule list | grep -qE "^ +$S1 "
check "schedule list no longer shows it" $? "$(ctl schedule list)"
n=$(ctl --json schedule list | json 'len(d["schedules"])')
[ "$n" = 5 ]
check "the others remain" $? "got $n (S2 S4 S5 S6 and $SB expected)"

# ---- the wall clock going back ----------------------------------------------------------------
SM=$(ctl schedule add --cron "0 * * * *" --tz UTC "$TMP/tiny.json") # next fire 04:00
set_clock $((T0 + 4 * 86400 + 3600 + 600)) # 2030-01-19 02:00: 1 h 50 min back
wait_for log_has "schedule $SM: the wall clock went back; next fire 2030-01-19T03:00:00+00:00"
check "a clock stepped back: the next fire is recomputed from the clock" $? \
    "$(grep "schedule $SM" "$LOG" | tail -2)"
nf=$(sched_field "$S5" 'd["next_fire"]')
[ "$nf" = "2030-01-20T03:00:00+00:00" ] && [ "$(nruns "$S5")" = 1 ]
check "a step back of under 3 h does not repeat a fire already made" $? "next $nf, runs $(runs "$S5")"
set_clock $((T0 + 2 * 86400 + 11 * 3600 + 600)) # 2030-01-17 12:00: two days back
wait_for log_has "schedule $S6: the wall clock went back; next fire 2030-01-18T03:00:00+00:00"
check "a clock stepped back by days: the next night fires (no hole)" $? \
    "$(grep "schedule $S6" "$LOG" | tail -2)"
ctl schedule rm "$SM" >/dev/null

stop_daemon
! grep -qE "Sanitizer|runtime error" "$LOG"
check "no sanitizer reports in the daemon's log" $? "$(grep -A5 -E "Sanitizer|runtime error" "$LOG" | head -20)"
finish
