#!/usr/bin/env bash
# record.sh: rewrites tests/golden/eval.jsonl from the current build (bin/lossd, or $1). Only
# in a commit that says which recorded result changes and why.
cd "$(dirname "$0")/../.." || exit 1
python3 tests/golden/run_cases.py "${1:-bin/lossd}" >tests/golden/eval.jsonl.new && mv tests/golden/eval.jsonl.new tests/golden/eval.jsonl
