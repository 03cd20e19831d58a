"""lib.py: what the Python integration tests share (the counterpart of lib.sh): the binaries'
paths, pass/fail counters and the closing "N passed, N failed" line. tests/run.sh runs only
test_*, so this module is imported, never run.

    import lib
    lib.check("name", condition, detail...)
    ...
    lib.finish()          # prints the counts, exits non-zero when anything failed
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("LOSSD_BIN", "bin")
BIN = BIN if os.path.isabs(BIN) else os.path.join(ROOT, BIN)
LOSSD = os.path.join(BIN, "lossd")
LOSSCTL = os.path.join(BIN, "lossctl")

passed = 0
failed = 0


def ok(name):
    global passed
    passed += 1
    print("ok   " + name, flush=True)


def bad(name, *detail):
    """A failure, each detail on its own indented line (cut to 2000 characters)."""
    global failed
    failed += 1
    print("FAIL " + name, flush=True)
    for d in detail:
        print("     " + str(d)[:2000], flush=True)


def check(name, cond, *detail):
    if cond:
        ok(name)
    else:
        bad(name, *detail)


def finish():
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
