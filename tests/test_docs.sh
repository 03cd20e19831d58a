#!/usr/bin/env bash
# test_docs.sh: `make docs-check` inside `make test`: every command example of README.md and docs/
# that does not run for minutes (lossd eval, help texts, and every lossctl example against a
# daemon put in the state the docs describe) and docs/protocol.md's JSON-RPC requests exit as
# documented and print output of the documented shape and figures (about 20 s).
cd "$(dirname "$0")/.." || exit 1
exec /usr/bin/python3 tests/docs_check.py --bin "${LOSSD_BIN:-bin}"
