#!/usr/bin/env bash
# test_eval_batch.sh: `lossd eval --batch` tried as the Optuna peer and a script would use it:
# every answer equals a single `lossd eval` run on the same loss, seed and steps (with 1 and 2
# workers), answers come in input order, a bad line gets its own error line and the others
# still run, and answers stream back while the input is still open.
. "$(dirname "$0")/lib.sh" lossd_eval_batch

TASK=builtin:digits
STEPS=60
cat >"$TMP/in.jsonl" <<'JL'
{"loss": "ce", "seed": 3, "id": "first"}
{"loss": "0.7*ce + 0.3*focal(2)", "seed": 1}

{"loss": "ce + foo", "id": 7}
not json at all
{"loss": "mae", "seed": 2, "steps": 30}
{"seed": 4}
{"loss": "1e30*exp(10*ce)"}
{"loss": "ce", "seed": -2}
{"loss": "smooth(0.1)", "seed": 0}
{"loss": "ce + phys"}
{"loss": "poly1(1)", "seed": 5}
JL

for w in 1 2; do
    "$LOSSD" eval --task $TASK --batch "$TMP/in.jsonl" --workers $w --steps $STEPS >"$TMP/out$w.jsonl" 2>"$TMP/err$w"
    echo $? >"$TMP/rc$w"
done
rc=$(cat "$TMP/rc2")
[ "$rc" = 1 ] && ok "exit 1 when some lines failed or were errors" || bad "exit $rc (want 1)" "$(cat "$TMP/err2")"
[ ! -s "$TMP/err2" ] && ok "nothing on stderr for per-line errors" || bad "stderr: $(cat "$TMP/err2")"

# Each good line, run alone, must give the same numbers (wall_ms aside).
"$PY" - "$TMP" "$LOSSD" "$TASK" "$STEPS" >"$TMP/cmp.txt" <<'PY'
import json, subprocess, sys
tmp, lossd, task, steps = sys.argv[1:]
lines = [l for l in open(f"{tmp}/in.jsonl")]
want = [(i + 1, l) for i, l in enumerate(lines) if l.strip()]
outs = {w: [json.loads(l) for l in open(f"{tmp}/out{w}.jsonl")] for w in (1, 2)}
def strip(d):
    d = dict(d)
    for k in ("wall_ms", "line", "id", "loss", "seed"):
        d.pop(k, None)
    return d
res = []
res.append(("one answer per non-blank line, in order",
            [o["line"] for o in outs[2]] == [n for n, _ in want] and len(outs[1]) == len(outs[2]),
            [o.get("line") for o in outs[2]]))
res.append(("1 and 2 workers give the same answers",
            [strip(o) for o in outs[1]] == [strip(o) for o in outs[2]], ""))
errors = {o["line"]: o for o in outs[2] if o.get("status") == "error"}
res.append(("bad lines get per-line errors",
            sorted(errors) == [4, 5, 7, 9, 11] and errors[4].get("id") == 7
            and "unknown name 'foo'" in errors[4]["error"] and errors[5]["error"] == "not a JSON object"
            and errors[7]["error"] == "loss: missing" and errors[9]["error"].startswith("seed:")
            and "not available for regression" not in errors[11]["error"] and "phys" in errors[11]["error"],
            {k: v.get("error") for k, v in errors.items()}))
failed = [o for o in outs[2] if o.get("status") == "failed"]
res.append(("a diverging loss is status failed, not an error",
            len(failed) == 1 and failed[0]["line"] == 8 and "non-finite" in failed[0]["error"],
            failed))
for o in outs[2]:
    if o.get("status") != "ok":
        continue
    src = json.loads(lines[o["line"] - 1])
    cmd = [lossd, "eval", "--task", task, "--loss", src["loss"], "--seed", str(src.get("seed", 0)),
           "--steps", str(src.get("steps", steps))]
    single = json.loads(subprocess.run(cmd, capture_output=True, text=True).stdout)
    same = strip(single) == strip(o)
    res.append((f"line {o['line']} ({src['loss']}, seed {src.get('seed', 0)}) equals a single run",
                same and o.get("id") == src.get("id") and o["loss"] == src["loss"],
                f"batch test {o.get('test')} single {single.get('test')}"))
for name, good, detail in res:
    print(("ok   " if good else "FAIL ") + name + ("" if good else f": {detail}"))
PY
while IFS= read -r line; do
    case "$line" in
    "ok   "*) ok "${line#ok   }" ;;
    *) bad "${line#FAIL }" ;;
    esac
done <"$TMP/cmp.txt"

# Streaming: the first answer arrives before the input ends (an ask-and-tell caller).
"$PY" - "$LOSSD" "$TASK" >"$TMP/stream.txt" 2>&1 <<'PY'
import json, subprocess, sys
lossd, task = sys.argv[1:]
p = subprocess.Popen([lossd, "eval", "--task", task, "--batch", "-", "--workers", "2", "--steps", "20"],
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
got = []
for seed in range(3):
    p.stdin.write(json.dumps({"loss": "ce", "seed": seed}) + "\n")
    p.stdin.flush()
    got.append(json.loads(p.stdout.readline()))  # would block forever without streaming
p.stdin.close()
rest = p.stdout.read()
print("ok" if [g["seed"] for g in got] == [0, 1, 2] and not rest.strip() and p.wait() == 0 else f"bad {got} {rest!r}")
PY
[ "$(cat "$TMP/stream.txt")" = ok ] && ok "answers stream back while the input is open (exit 0)" ||
    bad "streaming: $(cat "$TMP/stream.txt")"

# Whole-batch problems: exit 2 with one line on stderr.
"$LOSSD" eval --task $TASK --batch "$TMP/nothere.jsonl" >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] && grep -q "nothere.jsonl: cannot open" "$TMP/err" && ok "missing batch file: exit 2 ($(cat "$TMP/err"))" ||
    bad "missing batch file: exit $rc, $(cat "$TMP/err")"
echo '{"loss":"ce"}' | "$LOSSD" eval --task $TASK --batch - --loss ce >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] && grep -q "no --loss" "$TMP/err" && ok "--batch with --loss: exit 2" || bad "--batch with --loss: exit $rc, $(cat "$TMP/err")"
echo '{"loss":"ce"}' | "$LOSSD" eval --task $TASK --batch - --workers 0 >/dev/null 2>"$TMP/err"
rc=$?
[ "$rc" = 2 ] && grep -q -- "--workers" "$TMP/err" && ok "--workers 0: exit 2" || bad "--workers 0: exit $rc, $(cat "$TMP/err")"
finish
