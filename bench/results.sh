#!/usr/bin/env bash
# results.sh: runs every evidence job (bench/jobs/*.json) over several search seeds, re-trains
# each search's winner and the baseline on fresh seeds with `lossd eval`, and writes the table of
# measured results to docs/results.md (bench/results.py does the work); then the generative
# family's two rows (issue 9: the autoencoder under pixel noise against rec, the GAN against
# nsgan; bench/gen_results.py rewrites their sections of docs/results.md). A benchmark run by
# hand: about 5-15 minutes on 2 cores for the jobs and 5 for the generative rows, everything under
# nice -n 19.
#   bench/results.sh
#   SEARCH_SEEDS="1 2" EVAL_SEEDS=5 OUT=/tmp/results.md bench/results.sh     a quick look
#   RAW_DIR=/tmp/reports bench/results.sh                                    keep every report
#   ROWS=generative bench/results.sh           only the generative rows (ROWS=jobs: only the jobs)
set -eu
cd "$(dirname "$0")/.."
BIN=${LOSSD_BIN:-bin}
[ -x "$BIN/lossd" ] || { echo "results.sh: $BIN/lossd not found: run make first" >&2; exit 2; }
ROWS=${ROWS:-all}
case "$ROWS" in all | jobs) /usr/bin/python3 bench/results.py ;; generative) ;;
*) echo "results.sh: ROWS must be all, jobs or generative, not '$ROWS'" >&2; exit 2 ;; esac
case "$ROWS" in all | generative) LOSSD_BIN="$BIN" /usr/bin/python3 bench/gen_results.py ;; esac
