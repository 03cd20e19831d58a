#!/usr/bin/python3
"""bench_replay.py: restart replay time (issue 13). A fast job (digits, 10 steps, population 16)
runs until N evaluations are stored, the daemon is killed with kill -9 and restarted on the same
database; prints the stored rows and candidates, the time from starting `lossd serve` to its first
answer (the jobs are loaded before the socket answers) and to the job's first new evaluation
(the rounds after the saved state replayed from the stored results). Standard library only.

Usage: bench/bench_replay.py [N ...]      (default: 2000 6000; LOSSD_BIN picks the build)
"""
import os
import shutil
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "tests"))
import test_faults_daemon as t  # noqa: E402  (its Daemon: lossd serve on a socket, kill -9)

JOB = {"name": "replay", "seed": 5, "tasks": [{"data": "builtin:digits", "train": {"steps": 10}}],
       "budget": {"evaluations": 100000}, "population": 16, "children": 8, "seeds": 1}


def one(target):
    tmp = tempfile.mkdtemp(prefix="lossd_bench_replay.")
    try:
        db = os.path.join(tmp, "r.db")
        d = t.Daemon(tmp, db, tag="a")
        jid = d.call("job.submit", {"job": JOB})["result"]["job_id"]
        while t.state(d, jid)["progress"]["evaluations"] < target:
            time.sleep(0.2)
        time.sleep(1.0)  # somewhere between two saves of the engine state (every 2 s)
        d.kill9()
        c = sqlite3.connect(db)
        rows = c.execute("SELECT count(*) FROM evaluations WHERE job_id = ?", (jid,)).fetchone()[0]
        cands = c.execute("SELECT count(*) FROM candidates WHERE job_id = ?", (jid,)).fetchone()[0]
        c.close()
        t0 = time.monotonic()
        d = t.Daemon(tmp, db, tag="b")
        t1 = time.monotonic()
        base = t.state(d, jid)["progress"]["evaluations"]
        while t.state(d, jid)["progress"]["evaluations"] <= base:
            time.sleep(0.01)
        t2 = time.monotonic()
        d.call("job.cancel", {"job_id": jid})
        d.stop()
        print("%6d evaluations, %5d candidates: first answer %5.0f ms, first new evaluation %5.0f ms"
              % (rows, cands, (t1 - t0) * 1000, (t2 - t0) * 1000), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for n in [int(x) for x in sys.argv[1:]] or [2000, 6000]:
        one(n)
