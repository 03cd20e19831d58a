#!/usr/bin/env bash
# test_jobs_manage.sh: jobs a user can manage (issue 19), tried as a new user would: a job whose
# data file vanished fails with the reason in `lossctl jobs`' ERROR column, is resumed after the
# file is back and finishes; rename; failures by reason; delete with its stored evaluations
# (refused while the job runs); every new command's JSON-RPC method.
. "$(dirname "$0")/lib.sh" lossd_jobs_manage
need_binaries
SOCK="$TMP/s.sock" DB="$TMP/lossd.db" LOG="$TMP/daemon.log"
export LOSSD_NOSYNC=1

cp data/wine.csv "$TMP/wine.csv"
cat >"$TMP/job.json" <<JSON
{"name": "wine-small", "tasks": [{"data": "wine.csv", "train": {"steps": 60}}],
 "budget": {"evaluations": 400}, "population": 8, "children": 4, "seeds": 1,
 "final": {"top": 1, "seeds": 2}, "seed": 3}
JSON
start_daemon "$SOCK" "$DB" "$LOG" || { bad "daemon starts" "$(tail -5 "$LOG")"; finish; }
J=$(ctl submit "$TMP/job.json")
check "submit a job reading a CSV file" $? "$J"

# the data file vanishes while the daemon is down: the job fails on recovery, and says why
kill -9 "$DPID"; wait "$DPID" 2>/dev/null
mv "$TMP/wine.csv" "$TMP/wine.csv.away"
start_daemon "$SOCK" "$DB" "$LOG" || { bad "daemon restarts" "$(tail -5 "$LOG")"; finish; }
state=$(job_field "$J" 'd["state"]')
[ "$state" = failed ] && ok "job with a missing data file is failed" || bad "job failed" "state $state"
ctl jobs >"$TMP/jobs.txt"
if head -1 "$TMP/jobs.txt" | grep -q "ERROR" && grep -q "wine.csv" "$TMP/jobs.txt"; then
    ok "lossctl jobs has an ERROR column naming the file"
else
    bad "lossctl jobs has an ERROR column" "$(cat "$TMP/jobs.txt")"
fi
out=$(ctl resume "$J" 2>&1)
rc=$?
[ "$rc" = 1 ] && echo "$out" | grep -q "cannot resume" && ok "resume while the file is still missing: refused, says why" ||
    bad "resume refused while missing" "exit $rc: $out"
[ "$(job_field "$J" 'd["state"]')" = failed ] && ok "it stays failed" || bad "stays failed"

# the cause is fixed: resume goes on to the end
mv "$TMP/wine.csv.away" "$TMP/wine.csv"
out=$(ctl resume "$J" 2>&1)
check "resume a failed job after the cause is fixed" $? "$out"
timeout 300 "$CTL" --socket "$SOCK" watch "$J" --interval 0.5 >"$TMP/watch.txt" 2>&1
check "the resumed job finishes (watch exits 0)" $? "$(tail -3 "$TMP/watch.txt")"
[ "$(job_field "$J" 'd["error"]')" = None ] && ok "the error is cleared" || bad "error cleared" "$(job_field "$J" 'd["error"]')"

# leaderboard options (issue 19): the family table, an extra metric, one-seed rows
awk '/evaluations/ {for (i = 1; i <= NF; i++) if ($i == "evaluations") {split($(i+1), a, "/"); print a[1]}}' \
    "$TMP/watch.txt" >"$TMP/counts"
if [ -s "$TMP/counts" ] && sort -n -c "$TMP/counts" 2>/dev/null; then
    ok "watch's search count never goes back ($(tr '\n' ' ' <"$TMP/counts" | cut -c1-80))"
else
    bad "watch's search count never goes back" "$(cat "$TMP/counts" | tr '\n' ' ')" "$(cat "$TMP/watch.txt")"
fi
ctl leaderboard --family classification --top 5 >"$TMP/fam.txt"
check "leaderboard --family classification" $? "$(cat "$TMP/fam.txt")"
if head -1 "$TMP/fam.txt" | grep -q "SCORE" && ! grep -q " 0:0 " "$TMP/fam.txt" &&
    [ "$(sed -n 2p "$TMP/fam.txt" | awk '{print $3}')" != "-" ]; then
    ok "family rows have a score, values and an expression"
else
    bad "family rows" "$(cat "$TMP/fam.txt")"
fi
ctl leaderboard "$J" --metric balanced_accuracy --top 3 >"$TMP/ba.txt" 2>&1
check "leaderboard --metric balanced_accuracy (listed by show)" $? "$(cat "$TMP/ba.txt")"
grep -q "ranked by balanced_accuracy" "$TMP/ba.txt" && ok "ranked by balanced_accuracy" || bad "ranked by" "$(cat "$TMP/ba.txt")"
ctl --json leaderboard "$J" --top 50 >"$TMP/lb.json"
one=$(json_get "$TMP/lb.json" 'sum(1 for e in d["entries"] if e.get("runs") == 1)')
okspread=$(json_get "$TMP/lb.json" 'all(e["spread"] is None for e in d["entries"] if e.get("runs") == 1)')
[ "${one:-0}" -gt 0 ] && [ "$okspread" = True ] && ok "one-run rows ($one) have no spread (null), with runs 1" ||
    bad "one-run rows" "one=$one spread-null=$okspread"
ctl leaderboard "$J" --top 50 | awk 'NR > 1 && $6 == "1" && $5 != "-"' >"$TMP/bad_rows"
[ ! -s "$TMP/bad_rows" ] && ok "lossctl shows '-' spread for one-run rows" || bad "one-run rows show '-'" "$(cat "$TMP/bad_rows")"

# rename
out=$(ctl rename "$J" wine-renamed)
check "rename" $? "$out"
[ "$(job_field "$J" 'd["name"]')" = wine-renamed ] && ok "job.get shows the new name" || bad "new name" "$(job_field "$J" 'd["name"]')"
ctl jobs | grep -q "wine-renamed" && ok "lossctl jobs shows the new name" || bad "jobs shows the name"
ctl rename 999 x >/dev/null 2>"$TMP/err"
[ $? = 1 ] && grep -q "not found" "$TMP/err" && ok "rename of a missing job: not found" || bad "rename missing" "$(cat "$TMP/err")"

# failures: a job whose loss cannot train (every evaluation non-finite or rejected)
ctl --json failures "$J" >"$TMP/f.json"
check "job.failures answers" $? "$(cat "$TMP/f.json")"
n=$(json_get "$TMP/f.json" 'sum(r["count"] for r in d["reasons"])')
f=$(json_get "$TMP/f.json" 'd["failed"]')
[ -n "$n" ] && [ "$n" = "$f" ] && ok "failure counts add up ($f)" || bad "failure counts" "$(cat "$TMP/f.json")"
ctl failures "$J" --examples 1 >"$TMP/f.txt"
check "lossctl failures prints" $? "$(cat "$TMP/f.txt")"
head -1 "$TMP/f.txt" | grep -qE "^job $J: [0-9]+ of [0-9]+ stored evaluations" && ok "failures: a summary line" ||
    bad "failures summary" "$(head -3 "$TMP/f.txt")"

# delete: refused while the job runs, then it and its evaluations are gone
cp "$TMP/job.json" "$TMP/job2.json"
J2=$(ctl submit "$TMP/job2.json")
ctl delete "$J2" >/dev/null 2>"$TMP/err"
[ $? = 1 ] && grep -q "cancel it first" "$TMP/err" && ok "delete of a running job is refused" || bad "delete running" "$(cat "$TMP/err")"
ctl cancel "$J2" >/dev/null
for i in $(seq 1 600); do ctl delete "$J2" >/dev/null 2>"$TMP/err" && break; sleep 0.1; done
[ "$i" -lt 600 ] && ok "a cancelled job is deleted" || bad "delete cancelled" "$(cat "$TMP/err")"
ctl --json call job.get "{\"job_id\": $J2}" >/dev/null 2>&1
[ $? = 1 ] && ok "the deleted job is not found" || bad "deleted job not found"
before=$("$PY" -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select count(*) from evaluations where job_id=?',(int(sys.argv[2]),)).fetchone()[0])" "$DB" "$J")
[ "$before" -gt 0 ] && ok "job $J has $before stored evaluations" || bad "evaluations stored" "$before"
out=$(ctl delete "$J")
check "delete a done job" $? "$out"
after=$("$PY" -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select count(*) from evaluations where job_id=?',(int(sys.argv[2]),)).fetchone()[0], c.execute('select count(*) from candidates where job_id=?',(int(sys.argv[2]),)).fetchone()[0])" "$DB" "$J")
[ "$after" = "0 0" ] && ok "its evaluations and candidates are gone" || bad "evaluations deleted" "$after"
ctl jobs | grep -qE "^ +$J " && bad "lossctl jobs still lists job $J" || ok "lossctl jobs no longer lists it"
ctl leaderboard --family classification >/dev/null 2>&1
check "the family leaderboard still answers" $?
ctl delete abc >/dev/null 2>&1
[ $? = 2 ] && ok "delete abc: bad usage" || bad "delete abc"

[ -n "${SHOW:-}" ] && { cat "$TMP/jobs.txt" "$TMP/f.txt" "$TMP/fam.txt" "$TMP/ba.txt"; ctl leaderboard "$J" --top 4; }
stop_daemon
finish
