#!/usr/bin/python3
"""bench_replay.py: restart replay time (issue 13). A fast job (digits, 10 steps, population 16)
runs until N evaluations are stored, the daemon is killed with kill -9 and restarted on the same
database; prints the stored rows and candidates, the time from starting `lossd serve` to its first
answer (the jobs are loaded before the socket answers) and to the job's first new evaluation
(the rounds after the saved state replayed from the stored results). Standard library only.

Usage: bench/bench_replay.py [--bin DIR ...] [N ...]   (default: 2000 6000)
The job runs with $LOSSD_BIN (the build's bin/ by default); each --bin DIR restarts a copy of the
same killed database with DIR/lossd instead, one after the other (a before/after on one state).
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


def cpu_ms(pid):
    """The process's CPU time so far (user + system, every thread), in ms."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def restart(tmp, db, jid, tag, binary):
    """Restarts lossd (binary) on db: (first answer, first new evaluation, the daemon's CPU time
    until then) in ms. The CPU time does not depend on how busy the machine is."""
    t.lib.LOSSD = binary
    t0 = time.monotonic()
    d = t.Daemon(tmp, db, tag=tag)
    t1 = time.monotonic()
    base = t.state(d, jid)["progress"]["evaluations"]
    while t.state(d, jid)["progress"]["evaluations"] <= base:
        time.sleep(0.01)
    t2 = time.monotonic()
    cpu = cpu_ms(d.p.pid)
    d.call("job.cancel", {"job_id": jid})
    d.stop()
    return (t1 - t0) * 1000, (t2 - t0) * 1000, cpu


def one(target, bins):
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
        own = t.lib.LOSSD
        for i, b in enumerate(bins or [own]):
            copy = os.path.join(tmp, "r%d.db" % i)
            for ext in ("", "-wal"):  # the WAL holds what was committed since the checkpoint
                if os.path.exists(db + ext):
                    shutil.copy(db + ext, copy + ext)
            first, new, cpu = restart(tmp, copy, jid, "b%d" % i,
                                      os.path.join(b, "lossd") if bins else b)
            print("%6d evaluations, %5d candidates: first answer %5.0f ms, first new evaluation "
                  "%5.0f ms, CPU %5.0f ms%s" % (rows, cands, first, new, cpu,
                                                "  (%s)" % b if bins else ""), flush=True)
        t.lib.LOSSD = own
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    args, bins = sys.argv[1:], []
    while "--bin" in args:
        i = args.index("--bin")
        bins.append(os.path.abspath(args[i + 1]))
        del args[i:i + 2]
    for n in [int(x) for x in args] or [2000, 6000]:
        one(n, bins)
