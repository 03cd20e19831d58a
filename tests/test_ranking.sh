#!/usr/bin/env bash
# test_ranking.sh: one ranking everywhere. The job of issue 16 (two fidelity levels, 20 and 40
# steps) once ranked a candidate trained only at 20 steps above job.get's best; the leaderboard,
# job.get, lossctl's table and the store's order must agree: highest level reached first, then
# fitness (docs/jobs.md). Prints "N passed, N failed" last.
. "$(dirname "$0")/lib.sh" lossd-ranking

need_binaries
SOCK="$TMP/r.sock"
DB="$TMP/r.db"
LOG="$TMP/r.log"
if start_daemon "$SOCK" "$DB" "$LOG"; then ok "daemon starts"; else
    bad "daemon starts" "$(tail -5 "$LOG")"
    finish
fi

cat >"$TMP/job.json" <<'EOF2'
{"name": "levels", "tasks": ["builtin:digits"], "seed": 42, "budget": {"evaluations": 240},
 "population": 12, "children": 6, "seeds": 1, "fidelity": {"steps": [20, 40]},
 "final": {"top": 2, "seeds": 3}, "warm_start": false}
EOF2
JOB=$(ctl --json submit "$TMP/job.json" | json 'd["job_id"]')
[ -n "$JOB" ]
check "the job is submitted" $? "no job id"
for i in $(seq 1 1800); do
    s=$(job_field "$JOB" 'd["state"]' 2>/dev/null)
    [ "$s" = done ] || [ "$s" = failed ] && break
    sleep 0.1
done
[ "$s" = done ]
check "the job ends done" $? "state $s: $(tail -3 "$LOG")"

best=$(job_field "$JOB" '"%s|%.9g" % (d["progress"]["best_expr"], d["progress"]["best_fitness"])')
lb=$(ctl --json leaderboard "$JOB" --top 50)
top=$(echo "$lb" | json '"%s|%.9g" % (d["entries"][0]["expr"], d["entries"][0]["fitness"])')
[ -n "$best" ] && [ "$best" = "$top" ]
check "leaderboard rank 1 is job.get's best" $? "job.get $best, leaderboard rank 1 $top"

# the store's order: level never increases down the table (levels from candidate.get)
levels=$(echo "$lb" | json '" ".join(str(e["cand"]) for e in d["entries"][:12])')
prev=99
order_ok=0
seen=""
for c in $levels; do
    l=$(ctl --json call candidate.get "{\"job_id\": $JOB, \"cand\": $c}" |
        json 'max([t["steps"] for t in d.get("tasks", []) if not t.get("holdout")] or [0])')
    seen="$seen $c:$l"
    if [ "$l" -gt "$prev" ]; then order_ok=1; fi
    prev=$l
done
[ $order_ok = 0 ]
check "entries rank by the highest fidelity reached first" $? "cand:steps down the table:$seen"

# lossctl's table shows the same winner in its first row
row1=$(ctl leaderboard "$JOB" --top 3 | grep -m1 -E '^ *1 ')
bexpr=${best%|*}
echo "$row1" | grep -qF -- "$bexpr"
check "lossctl's rank 1 row is the same expression" $? "row: $row1; best: $bexpr"

# a job whose baseline fails every run fails with the baseline's error (it ended done before)
cat >"$TMP/bfail.json" <<'EOF2'
{"name": "bfail", "tasks": [{"data": "builtin:digits", "train": {"steps": 30}}],
 "baseline": "focal(-1e30)", "seed": 1, "budget": {"evaluations": 24}, "population": 4,
 "children": 4, "seeds": 1, "fidelity": {"steps": [30]}, "final": {"top": 1, "seeds": 2},
 "warm_start": false}
EOF2
BJ=$(ctl --json submit "$TMP/bfail.json" | json 'd["job_id"]')
for i in $(seq 1 600); do
    s=$(job_field "$BJ" 'd["state"]' 2>/dev/null)
    [ "$s" = done ] || [ "$s" = failed ] && break
    sleep 0.1
done
why=$(job_field "$BJ" 'd["error"]')
[ "$s" = failed ] && echo "$why" | grep -q "baseline .* failed on every run"
check "a job whose baseline fails every run fails with its error" $? "state $s, error $why"

stop_daemon
finish
