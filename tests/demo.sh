#!/usr/bin/env bash
# demo.sh: what `make demo` runs. Starts lossd on a temporary socket and database, submits
# examples/demo.job.json (a real loss search on builtin:digits with noisy labels, about two to
# three minutes on two cores), watches it, prints the leaderboard, the winner and the winner as
# PyTorch code, then shuts the daemon down and removes everything it made.
#   LOSSD_DEMO_BUDGET=N   evaluations instead of the job's budget (e.g. 40 for a quick check)
#   LOSSD_DEMO_SECONDS=S  wall-clock budget instead of the job's
#   LOSSD_BIN=DIR         where lossd and lossctl are (default bin)
set -eu
cd "$(dirname "$0")/.."
BIN=${LOSSD_BIN:-bin}
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
LOSSD="$BIN/lossd"
CTL="$BIN/lossctl"
JOB_FILE=examples/demo.job.json
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
TMP=$(mktemp -d "${TMPDIR:-/tmp}/lossd-demo.XXXXXX")
SOCK="$TMP/lossd.sock"
DPID=""

cleanup() {
    if [ -n "$DPID" ] && kill -0 "$DPID" 2>/dev/null; then
        kill -TERM "$DPID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$DPID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo; echo "demo: interrupted"; exit 130' INT TERM

for f in "$LOSSD" "$CTL"; do
    [ -x "$f" ] || { echo "demo: $f is missing: run make first" >&2; exit 1; }
done

say() {
    if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi
}
ctl() { "$CTL" --socket "$SOCK" "$@"; }

say "starting lossd serve (socket $SOCK)"
"$LOSSD" serve --socket "$SOCK" --db "$TMP/lossd.db" >"$TMP/lossd.log" 2>&1 &
DPID=$!
for _ in $(seq 1 300); do
    ctl status >/dev/null 2>&1 && break
    if ! kill -0 "$DPID" 2>/dev/null; then
        echo "demo: lossd exited at start-up:" >&2
        cat "$TMP/lossd.log" >&2
        exit 1
    fi
    sleep 0.1
done
ctl status

# A smaller budget for a quick check: rewrite a copy of the job (its data is built in, so the
# copy needs no relative paths).
if [ -n "${LOSSD_DEMO_BUDGET:-}${LOSSD_DEMO_SECONDS:-}" ]; then
    "$PY" - "$JOB_FILE" "$TMP/demo.job.json" <<'PY'
import json, os, sys
job = json.load(open(sys.argv[1]))
b = job.setdefault("budget", {})
if os.environ.get("LOSSD_DEMO_BUDGET"):
    b["evaluations"] = int(os.environ["LOSSD_DEMO_BUDGET"])
if os.environ.get("LOSSD_DEMO_SECONDS"):
    b["seconds"] = float(os.environ["LOSSD_DEMO_SECONDS"])
json.dump(job, open(sys.argv[2], "w"), indent=1)
PY
    JOB_FILE="$TMP/demo.job.json"
fi

say "submitting $JOB_FILE"
JOB=$(ctl submit "$JOB_FILE")
echo "job $JOB"

say "watching job $JOB"
ctl watch "$JOB" || { echo "demo: job $JOB did not finish"; tail -20 "$TMP/lossd.log"; exit 1; }

say "leaderboard of job $JOB"
ctl leaderboard "$JOB" --top 10

WIN=$(ctl leaderboard "$JOB" --top 1 | awk 'NR == 2 { print $2 }')
say "the winner, $WIN"
ctl show "$WIN"

say "the winner as PyTorch code (lossctl export $WIN --as pytorch)"
ctl export "$WIN" --as pytorch >"$TMP/winner.py"
cat "$TMP/winner.py"
if "$PY" -c "import torch" 2>/dev/null; then
    say "the exported loss on a random batch (64 samples, 10 classes), with its gradient"
    "$PY" - "$TMP/winner.py" <<'PY'
import sys, torch
ns = {}
exec(open(sys.argv[1]).read(), ns)
torch.manual_seed(0)
z = torch.randn(64, 10, requires_grad=True)
target = torch.randint(0, 10, (64,))
loss = ns["lossd_loss"](z, target, t=1.0)
loss.backward()
print("lossd_loss = %.6f, |grad| = %.6f" % (loss.item(), z.grad.norm().item()))
PY
fi

say "shutting down"
ctl shutdown
wait "$DPID" || true
DPID=""
echo "demo: done"
