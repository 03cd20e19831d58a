#!/usr/bin/env bash
# results.sh: runs every evidence job (bench/jobs/*.json) over several search seeds, re-trains
# each search's winner and the baseline on fresh seeds with `lossd eval`, and writes the table of
# measured results to docs/results.md (bench/results.py does the work). A benchmark run by hand:
# about 5-15 minutes on 2 cores, everything under nice -n 19.
#   bench/results.sh
#   SEARCH_SEEDS="1 2" EVAL_SEEDS=5 OUT=/tmp/results.md bench/results.sh     a quick look
#   RAW_DIR=/tmp/reports bench/results.sh                                    keep every report
set -eu
cd "$(dirname "$0")/.."
BIN=${LOSSD_BIN:-bin}
[ -x "$BIN/lossd" ] || { echo "results.sh: $BIN/lossd not found: run make first" >&2; exit 2; }
exec /usr/bin/python3 bench/results.py
