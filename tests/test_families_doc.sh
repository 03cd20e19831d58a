#!/usr/bin/env bash
# test_families_doc.sh: the measured figures of docs/families.md (physics and contrastive tables
# and the sentences quoting them) equal what the program gives now: bench/families.py --check
# retrains every row and compares it with the file, line by line. The sanitizer build (-O1) sums
# floating point in another order, so there the script only regenerates the physics part into a
# copy of the file (every generated part found, every run ok).
cd "$(dirname "$0")/.." || exit 1
bin=${LOSSD_BIN:-bin}
if [ "${LOSSD_SUITE:-unit}" = asan ]; then
    tmp=$(mktemp --suffix=.md) || exit 1
    trap 'rm -f "$tmp"' EXIT
    cp docs/families.md "$tmp"
    if /usr/bin/python3 bench/families.py --bin "$bin" --doc "$tmp" --only physics; then
        echo "1 passed, 0 failed"
    else
        echo "0 passed, 1 failed"; exit 1
    fi
    exit 0
fi
exec /usr/bin/python3 bench/families.py --check --bin "$bin"
