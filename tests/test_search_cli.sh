#!/usr/bin/env bash
# test_search_cli.sh: `lossd search` end to end on a tiny real search (builtin:digits, 60 steps):
# the report's shape and counts, 1 and 2 workers giving the same leaderboard, --db recording and
# warm starts, and invalid jobs refused with exit 2 and every problem named.
. "$(dirname "$0")/lib.sh" lossd_search_cli

cat >"$TMP/tiny.json" <<'EOF'
{"name": "tiny", "tasks": ["builtin:digits"], "population": 6, "children": 4,
 "budget": {"evaluations": 12}, "fidelity": {"steps": [30, 60], "promote": 0.5},
 "seeds": 1, "final": {"top": 2, "seeds": 2}, "seed": 5, "baseline": "ce"}
EOF

# 1. a whole search, one worker
"$LOSSD" search "$TMP/tiny.json" --workers 1 >"$TMP/w1.json" 2>"$TMP/w1.err"
rc=$?
if [ "$rc" = 0 ] && [ "$(json_get "$TMP/w1.json" "len(d['leaderboard']) > 0")" = True ]; then
    ok "search with 1 worker (exit 0, $(json_get "$TMP/w1.json" "len(d['leaderboard'])") ranked)"
else
    bad "search with 1 worker: exit $rc, stderr: $(tail -3 "$TMP/w1.err")"
fi
got=$(json_get "$TMP/w1.json" "d['evaluations']")
if [ "$got" = 12 ]; then ok "budget: 12 evaluations"; else bad "budget: $got evaluations, want 12"; fi
keys=$(json_get "$TMP/w1.json" "all(k in d for k in ['leaderboard','pareto','evaluations','cache_hits','signature_hits','rejections','promotions','wall_s','search_overhead_s'])")
if [ "$keys" = True ]; then ok "report has every count"; else bad "report lacks a key: $(head -c 400 "$TMP/w1.json")"; fi
entry=$(json_get "$TMP/w1.json" "all('expr' in e and 'fitness' in e and len(e['tasks']) == 1 and 'vs_baseline' in e for e in d['leaderboard'])")
if [ "$entry" = True ]; then ok "every entry has expr, fitness, per-task metrics, baseline comparison"; else bad "leaderboard entries incomplete"; fi
fin=$(json_get "$TMP/w1.json" "sum(1 for e in d['leaderboard'] if 'final' in e and e['final']['vs_baseline']['n'] == 2)")
if [ "${fin:-0}" -ge 2 ]; then ok "final paired comparison on $fin entries"; else bad "final comparison missing ($fin)"; fi
if grep -q "evals 12/12" "$TMP/w1.err"; then ok "progress lines on stderr"; else bad "no progress line: $(head -2 "$TMP/w1.err")"; fi
share=$(json_get "$TMP/w1.json" "d['search_overhead_share']")
echo "#   engine overhead share: $share of wall time"

# 2. two workers: the same leaderboard and pareto front
"$LOSSD" search "$TMP/tiny.json" --workers 2 --quiet >"$TMP/w2.json" 2>"$TMP/w2.err"
rc=$?
same=$("$PY" -c "
import json,sys
a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
print(a['leaderboard']==b['leaderboard'] and a['pareto']==b['pareto'])" "$TMP/w1.json" "$TMP/w2.json" 2>&1)
if [ "$rc" = 0 ] && [ "$same" = True ]; then
    ok "2 workers give the same leaderboard as 1"
else
    bad "2 workers: exit $rc, same=$same"
fi
if [ ! -s "$TMP/w2.err" ]; then ok "--quiet prints nothing on stderr"; else bad "--quiet printed: $(head -2 "$TMP/w2.err")"; fi

# 3. --seed changes the search, deterministically
"$LOSSD" search "$TMP/tiny.json" --workers 2 --quiet --seed 9 >"$TMP/s9a.json" 2>/dev/null
"$LOSSD" search "$TMP/tiny.json" --workers 1 --quiet --seed 9 >"$TMP/s9b.json" 2>/dev/null
same=$("$PY" -c "
import json,sys
a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
print(a['leaderboard']==b['leaderboard'])" "$TMP/s9a.json" "$TMP/s9b.json" 2>&1)
if [ "$same" = True ]; then ok "--seed 9 is reproducible"; else bad "--seed 9: $same"; fi

# 4. --db records the job and a second search warm-starts from it
"$LOSSD" search "$TMP/tiny.json" --workers 2 --quiet --db "$TMP/x.db" >"$TMP/db1.json" 2>"$TMP/db1.err"
rc=$?
if [ "$rc" = 0 ] && [ "$(json_get "$TMP/db1.json" "d['db_job']")" = 1 ]; then
    ok "--db records job 1"
else
    bad "--db: exit $rc: $(tail -3 "$TMP/db1.err")"
fi
"$LOSSD" search "$TMP/tiny.json" --workers 2 --quiet --db "$TMP/x.db" >"$TMP/db2.json" 2>"$TMP/db2.err"
warm=$(json_get "$TMP/db2.json" "d['stats']['warm_used']")
if [ "${warm:-0}" -ge 1 ] && [ "$(json_get "$TMP/db2.json" "d['db_job']")" = 2 ]; then
    ok "second search warm-started from $warm stored losses"
else
    bad "warm start: warm_used=$warm, stderr: $(tail -3 "$TMP/db2.err")"
fi
hits=$(json_get "$TMP/db2.json" "d['result_cache_hits']")
if [ "${hits:-0}" -ge 1 ]; then ok "second search reused $hits stored results"; else bad "no stored result reused ($hits)"; fi
if command -v sqlite3 >/dev/null 2>&1; then
    n=$(sqlite3 "$TMP/x.db" "select count(*) from evaluations" 2>/dev/null)
    if [ "${n:-0}" -ge 24 ]; then ok "evaluations stored: $n"; else bad "evaluations stored: $n"; fi
fi

# 5. invalid jobs: exit 2 before any work, every problem named
cat >"$TMP/bad.json" <<'EOF'
{"tasks": [{"family": "classification"}], "space": {"max_nodes": 1}, "budget": {"evaluations": 0}, "colour": 1}
EOF
"$LOSSD" search "$TMP/bad.json" >"$TMP/bad.out" 2>"$TMP/bad.err"
rc=$?
err=$(cat "$TMP/bad.err")
if [ "$rc" = 2 ] && [ ! -s "$TMP/bad.out" ] && echo "$err" | grep -qF "bad.json: " &&
    echo "$err" | grep -qF "tasks[0]" && echo "$err" | grep -qF "space.max_nodes: must be at least 3, got 1" &&
    echo "$err" | grep -qF "budget.evaluations: must be at least 1, got 0" &&
    echo "$err" | grep -qF "colour: unknown key"; then
    ok "invalid job: exit 2, every problem named ($err)"
else
    bad "invalid job: exit $rc, stderr: $err"
fi
echo '{"tasks": ["builtin:digits"],' >"$TMP/notjson.json"
"$LOSSD" search "$TMP/notjson.json" >/dev/null 2>"$TMP/nj.err"
rc=$?
if [ "$rc" = 2 ] && grep -q "not valid JSON" "$TMP/nj.err"; then ok "not JSON: exit 2"; else bad "not JSON: exit $rc: $(cat "$TMP/nj.err")"; fi
"$LOSSD" search "$TMP/missing.json" >/dev/null 2>"$TMP/m.err"
rc=$?
if [ "$rc" = 2 ]; then ok "missing file: exit 2 ($(cat "$TMP/m.err"))"; else bad "missing file: exit $rc"; fi
"$LOSSD" search "$TMP/tiny.json" --workers 0 >/dev/null 2>"$TMP/w0.err"
rc=$?
if [ "$rc" = 2 ]; then ok "--workers 0: exit 2"; else bad "--workers 0: exit $rc"; fi


# 6. a baseline that fails every run leaves fitness meaningless: the search fails with its error
# (both used to end "done" with a best fitness of 0.854)
for base in '1e308*1e308*ce' 'focal(-1e30)'; do
    cat >"$TMP/bfail.json" <<EOF
{"tasks": [{"data": "builtin:digits", "train": {"steps": 30}}], "baseline": "$base", "seed": 1,
 "budget": {"evaluations": 24}, "population": 4, "children": 4, "seeds": 1,
 "fidelity": {"steps": [30]}, "final": {"top": 1, "seeds": 2}, "warm_start": false}
EOF
    "$LOSSD" search "$TMP/bfail.json" --quiet >"$TMP/bf.out" 2>"$TMP/bf.err"
    rc=$?
    if [ "$rc" = 1 ] && grep -q "the baseline .* failed on every run" "$TMP/bf.err"; then
        ok "baseline $base failing every run: exit 1 ($(cat "$TMP/bf.err"))"
    else
        bad "baseline $base failing every run: exit $rc, stderr: $(cat "$TMP/bf.err")"
    fi
done

finish
