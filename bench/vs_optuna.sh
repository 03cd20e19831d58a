#!/usr/bin/env bash
# vs_optuna.sh: lossd's search against the Optuna TPE peer and the best single textbook loss on
# the rows of bench/results.sh; rewrites the "Against a tuned mixture" section of
# docs/results.md (bench/vs_optuna.py does the work; `make bench-optuna` runs this).
#   bench/vs_optuna.sh                                           every row, 5 search seeds
#   ROWS="noisy_labels outliers" SEARCH_SEEDS="1 2 3" bench/vs_optuna.sh
#   OUT=/tmp/r.md RAW_DIR=/tmp/raw bench/vs_optuna.sh            elsewhere, keep every report
set -eu
cd "$(dirname "$0")/.."
BIN=${LOSSD_BIN:-bin}
[ -x "$BIN/lossd" ] || { echo "vs_optuna.sh: $BIN/lossd not found: run make first" >&2; exit 2; }
/usr/bin/python3 -c "import optuna" 2>/dev/null || { echo "vs_optuna.sh: needs python3-optuna (make bench-deps)" >&2; exit 2; }
exec /usr/bin/python3 bench/vs_optuna.py
