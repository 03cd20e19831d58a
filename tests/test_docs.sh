#!/usr/bin/env bash
# test_docs.sh: the fast part of `make docs-check`: every command example of README.md and docs/
# that runs in a moment (lossd eval, help texts, lossctl export --expr, errors an empty daemon
# gives) exits as documented and prints output of the documented shape and figures.
cd "$(dirname "$0")/.." || exit 1
exec /usr/bin/python3 tests/docs_check.py --bin "${LOSSD_BIN:-bin}"
