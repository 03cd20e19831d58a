#!/usr/bin/python3
"""test_faults_daemon.py: storage faults against a real daemon (issue 16), each checked against an
undisturbed run of the same small search: nothing acknowledged is lost, PRAGMA integrity_check
is ok, and the final leaderboard is the undisturbed run's.

- disk full (the fault VFS's flag file, and a real full tmpfs when mounting one is allowed): the
  job shows `paused` with the reason, writes are refused with a clear error, and the job resumes
  by itself when space returns;
- the database deleted while the daemon runs: every write request gets the message, once logged;
- fault injection in the style of SQLite's tests (storage/faultvfs.c, LOSSD_FAULT): the Nth
  write, fsync or truncate of the store fails, once (the daemon must recover by itself) or from
  then on (the daemon is killed with -9 and restarted without faults).

`make test` runs 4 N values spread over the run (each once and from-then-on: 8 runs, ~15 s);
`tests/fault_sweep.sh` (this file with --all, or --step K for every Kth N) runs every N up to the
undisturbed run's count and prints the counts docs/reliability.md reports.
Uses $LOSSD_BIN/lossd; prints "N passed, N failed" last."""
import os
import shutil
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import Daemon, board, state, wait_state  # noqa: E402

JOB = {"name": "faults", "seed": 7,
       "tasks": [{"data": "builtin:digits", "train": {"steps": 20}}],
       "budget": {"evaluations": 24}, "population": 4, "children": 2, "seeds": 1,
       "final": {"top": 2, "seeds": 2}}


def db_facts(db, jid):
    """(integrity_check, evaluation rows, {cand: expr}) read straight from the file."""
    integ = lib.db_query(db, "PRAGMA integrity_check")[0]
    n = lib.db_query(db, "SELECT count(*) FROM evaluations WHERE job_id = ?", (jid,))[0]
    cands = dict(lib.db_query(db, "SELECT cand, expr FROM candidates WHERE job_id = ?", (jid,), True))
    return integ, n, cands


def undisturbed(tmp, spec="count", tag="ref"):
    """The reference run: its leaderboard and the number of I/O operations (or, with spec
    "0,alloc", SQLite allocations) it counted."""
    db = os.path.join(tmp, tag + ".db")
    d = Daemon(tmp, db, {"LOSSD_FAULT": spec}, tag=tag)
    if not d.up():
        lib.bad("the reference daemon starts", d.logtext()[-2000:])
        return None, 0
    r = d.call("job.submit", {"job": JOB})
    jid = r["result"]["job_id"]
    s = wait_state(d, jid, ("done", "failed"))
    ref = board(d, jid)
    d.stop()
    ops = 0
    for ln in d.logtext().splitlines():
        if "fault injection:" in ln and "counted" in ln:
            ops = int(ln.split("fault injection:")[1].split()[0])
    lib.check("the undisturbed run is done with a leaderboard", s.get("state") == "done" and ref,
              s, ref[:3])
    return ref, ops


def run_fault(tmp, ref, n, persist, tag, kind=""):
    """One fault-injection run; returns a list of problems (empty: it passed). kind: "" (I/O
    operations) or "alloc" (SQLite's allocations)."""
    db = os.path.join(tmp, tag + ".db")
    spec = ("%d,persist" % n if persist else "%d" % n) + ("," + kind if kind else "")
    d = Daemon(tmp, db, {"LOSSD_FAULT": spec}, tag=tag)
    problems = []
    if not d.up():
        # the fault hit the daemon's start (opening, migrating): it must refuse cleanly
        d.stop()
        if d.p.returncode in (None, 0) or "store" not in d.logtext():
            problems.append("start failed without a store message: %s" % d.logtext()[-300:])
        d = Daemon(tmp, db, tag=tag + "r")
        if not d.up():
            return problems + ["restart without faults failed: %s" % d.logtext()[-500:]]
    jid = None
    # a careful client's submit: a commit whose fsync failed answers an error although its WAL
    # frames may survive a crash (the job is then there after the restart), so the retry below
    # carries the same client_token and finds that job instead of starting a second one
    token = "fault-" + tag
    try:
        r = d.call("job.submit", {"job": JOB, "client_token": token})
        if "result" in r:
            jid = r["result"]["job_id"]
    except (OSError, EOFError) as e:
        problems.append("submit: %s" % e)
    acked_evals, acked = 0, {}
    if jid is not None:
        t_end = time.time() + (60 if not persist else 20)
        while time.time() < t_end:
            s = state(d, jid)
            acked_evals = max(acked_evals, (s.get("progress") or {}).get("evaluations") or 0)
            for cand, expr, _ in board(d, jid):
                acked[cand] = expr
            if s.get("state") in ("done", "failed"):
                break
            if persist and s.get("state") == "paused" and "paused:" in (s.get("error") or ""):
                break
            time.sleep(0.05)
    if persist or not jid or state(d, jid).get("state") != "done":
        d.kill9()
        if jid is not None:
            integ, nrows, cands = db_facts(db, jid)
            if integ != "ok":
                problems.append("integrity_check after kill -9: %s" % integ)
            if nrows < acked_evals:
                problems.append("%d evaluations acknowledged, %d stored" % (acked_evals, nrows))
            lost = [c for c, e in acked.items() if cands.get(c) != e]
            if lost:
                problems.append("acknowledged candidates lost: %s" % lost[:5])
        d = Daemon(tmp, db, tag=tag + "r2")
        if not d.up():
            return problems + ["restart failed: %s" % d.logtext()[-500:]]
        if jid is None:
            r = d.call("job.submit", {"job": JOB, "client_token": token})
            jid = r.get("result", {}).get("job_id")
    s = wait_state(d, jid, ("done", "failed"))
    got = board(d, jid)
    d.stop()
    integ, _, _ = db_facts(db, jid)
    if s.get("state") != "done":
        problems.append("ended %s: %s" % (s.get("state"), s.get("error")))
    if integ != "ok":
        problems.append("integrity_check at the end: %s" % integ)
    if got != ref:
        problems.append("leaderboard differs: %s vs %s" % (got[:3], ref[:3]))
    for f in (db, db + "-wal", db + "-shm", db + ".lock"):
        try:
            os.unlink(f)
        except OSError:
            pass
    return problems


def run_kill9(tmp, ref, delay, tag):
    """kill -9 at `delay` seconds into the search (no fault), restart: the same checks."""
    db = os.path.join(tmp, tag + ".db")
    d = Daemon(tmp, db, tag=tag)
    if not d.up():
        return ["start failed: %s" % d.logtext()[-300:]]
    jid = d.call("job.submit", {"job": JOB})["result"]["job_id"]
    t_end = time.time() + delay
    acked_evals, acked = 0, {}
    while time.time() < t_end:
        s = state(d, jid)
        acked_evals = max(acked_evals, (s.get("progress") or {}).get("evaluations") or 0)
        for cand, expr, _ in board(d, jid):
            acked[cand] = expr
        if s.get("state") == "done":
            break
    d.kill9()
    problems = []
    integ, nrows, cands = db_facts(db, jid)
    if integ != "ok":
        problems.append("integrity_check after kill -9: %s" % integ)
    if nrows < acked_evals:
        problems.append("%d evaluations acknowledged, %d stored" % (acked_evals, nrows))
    if any(cands.get(c) != e for c, e in acked.items()):
        problems.append("acknowledged candidates lost")
    d = Daemon(tmp, db, tag=tag + "r")
    if not d.up():
        return problems + ["restart failed: %s" % d.logtext()[-300:]]
    s = wait_state(d, jid, ("done", "failed"))
    got = board(d, jid)
    d.stop()
    if s.get("state") != "done" or got != ref:
        problems.append("ended %s; leaderboard %s vs %s" % (s.get("state"), got[:2], ref[:2]))
    return problems


def test_disk_full_flag(tmp, ref):
    flag = os.path.join(tmp, "disk-full")
    db = os.path.join(tmp, "full.db")
    d = Daemon(tmp, db, {"LOSSD_FAULT_FILE": flag}, tag="full")
    if not d.up():
        lib.bad("daemon with the fault flag file starts", d.logtext()[-1000:])
        return
    jid = d.call("job.submit", {"job": JOB})["result"]["job_id"]
    # The fault starts as soon as the submit is acknowledged: the job cannot end without storing
    # its results, so it must meet the fault (waiting for a few evaluations first let a fast run
    # finish before the fault, and the test raced the search).
    open(flag, "w").close()  # the disk is full from now on
    s = wait_state(d, jid, ("paused",), timeout=60)
    lib.check("disk full: the job shows paused with the reason",
              s.get("state") == "paused" and "database or disk is full" in (s.get("error") or ""), s)
    r = d.call("job.submit", {"job": dict(JOB, name="while-full")})
    msg = (r.get("error") or {}).get("message", "")
    lib.check("disk full: a submit gets a clear error", "full" in msg, r)
    r = d.call("server.status")
    lib.check("disk full: reads are still answered", "result" in r, r)
    r = d.call("job.resume", {"job_id": jid})
    lib.check("disk full: job.resume says it resumes by itself",
              "resumes by itself" in (r.get("error") or {}).get("message", ""), r)
    os.unlink(flag)  # space returns
    s = wait_state(d, jid, ("done", "failed"), timeout=120)
    got = board(d, jid)
    d.stop()
    lib.check("disk full: the job resumes by itself and ends done", s.get("state") == "done", s)
    lib.check("disk full: its final leaderboard equals the undisturbed run's", got == ref,
              got[:3], ref[:3])
    lib.check("disk full: the log says paused, then resuming",
              "paused: " in d.logtext() and "writes succeed again" in d.logtext(),
              d.logtext()[-1500:])
    lib.check("disk full: integrity_check ok", db_facts(db, jid)[0] == "ok")


def test_disk_full_tmpfs(tmp, ref):
    """A real full file system: a small tmpfs, filled with a file, then emptied (root only)."""
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt],
                                           capture_output=True).returncode != 0:
        print("skip: a tmpfs cannot be mounted here (needs root); the flag-file test covers it")
        return
    try:
        db = os.path.join(mnt, "x.db")
        d = Daemon(tmp, db, tag="tmpfs")
        if not d.up():
            lib.bad("daemon on a tmpfs starts", d.logtext()[-1000:])
            return
        jid = d.call("job.submit", {"job": LONG_JOB})["result"]["job_id"]
        # filled as soon as the submit is acknowledged (see test_disk_full_flag)
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb", buffering=0) as f:  # unbuffered: closing must not flush into a full disk
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        s = wait_state(d, jid, ("paused", "done"), timeout=60)
        full_seen = s.get("state") == "paused" and "full" in (s.get("error") or "")
        os.unlink(filler)
        s = wait_state(d, jid, ("done", "failed"), timeout=120)
        got = board(d, jid)
        d.stop()
        lib.check("a full tmpfs: the job pauses with the reason", full_seen, s)
        lib.check("a full tmpfs: space returns, the job resumes and ends done, same leaderboard",
                  s.get("state") == "done" and got == ref, s.get("state"), got[:3], ref[:3])
        lib.check("a full tmpfs: integrity_check ok", db_facts(db, jid)[0] == "ok")
    finally:
        subprocess.run(["umount", "-l", mnt], capture_output=True)


# The locked-database case needs a job that cannot end before another process takes the lock:
# the 24-evaluation JOB ends in ~50 ms on an idle machine, sooner than sqlite3 gets its lock.
LONG_JOB = dict(JOB, name="faults-long", tasks=[{"data": "builtin:digits", "train": {"steps": 400}}],
                budget={"evaluations": 80}, population=8, children=4)


def long_reference(tmp):
    """The long job's leaderboard, undisturbed."""
    d = Daemon(tmp, os.path.join(tmp, "longref.db"), tag="longref")
    if not d.up():
        return None
    jid = d.call("job.submit", {"job": LONG_JOB})["result"]["job_id"]
    wait_state(d, jid, ("done", "failed"))
    got = board(d, jid)
    d.stop()
    return got


def test_locked_database(tmp, ref):
    """Another process holds SQLite's write lock for a while: the job pauses with "database is
    locked", requests that write get that error, reads are answered, and the job resumes."""
    db = os.path.join(tmp, "locked.db")
    d = Daemon(tmp, db, tag="locked")
    if not d.up():
        lib.bad("daemon for the locked-database test starts", d.logtext()[-1000:])
        return
    jid = d.call("job.submit", {"job": LONG_JOB})["result"]["job_id"]
    # The lock is taken as soon as the submit is acknowledged: the job cannot end without
    # storing its results, so it must meet the lock (waiting for a few evaluations first let a
    # fast run finish before the lock, and the test raced the search).
    con = sqlite3.connect(db, timeout=30, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    # Until the job shows the lock as its reason (a pause for another reason may come first,
    # and is logged), or ends.
    t_end = time.time() + 60
    s = state(d, jid)
    while time.time() < t_end and s.get("state") != "done" and not (
            s.get("state") == "paused" and "locked" in (s.get("error") or "")):
        time.sleep(0.05)
        s = state(d, jid)
    r = d.call("job.submit", {"job": dict(JOB, name="while-locked")})
    st = d.call("server.status")
    con.execute("ROLLBACK")
    con.close()
    lib.check("a locked database: the job shows paused with the reason",
              s.get("state") == "paused" and "locked" in (s.get("error") or ""), s,
              d.logtext()[-1000:])
    lib.check("a locked database: a submit gets a clear error, reads are answered",
              "locked" in (r.get("error") or {}).get("message", "") and "result" in st, r)
    s = wait_state(d, jid, ("done", "failed"), timeout=120)
    got = board(d, jid)
    d.stop()
    lib.check("a locked database: released, the job resumes, same leaderboard, integrity ok",
              s.get("state") == "done" and got == ref and db_facts(db, jid)[0] == "ok",
              s.get("state"), got[:2], ref[:2])


def test_deleted_database(tmp):
    d0 = os.path.join(tmp, "gone")
    os.mkdir(d0)
    d = Daemon(tmp, os.path.join(d0, "x.db"), tag="gone")
    if not d.up():
        lib.bad("daemon in a directory to remove starts", d.logtext()[-1000:])
        return
    shutil.rmtree(d0)
    time.sleep(1.5)  # the once-a-second check
    r = d.call("job.submit", {"job": JOB})
    msg = (r.get("error") or {}).get("message", "")
    lib.check("database directory removed: a submit is refused with the reason",
              "was deleted" in msg and "writes are refused" in msg, r)
    st = d.call("server.status").get("result") or {}
    lib.check("... server.status shows it", "was deleted" in (st.get("storage_error") or ""), st)
    d.stop()
    lib.check("... and the log says it once", d.logtext().count("was deleted") == 1,
              d.logtext()[-1000:])


def test_fake_clock_overflow(tmp):
    """$LOSSD_FAKE_CLOCK_FILE holding 99999999999999999999 (a test hook, but UB is UB): refused with
    a warning, the wall clock used, schedules still computed (the sanitizer suite runs this)."""
    clock = os.path.join(tmp, "clock")
    with open(clock, "w") as f:
        f.write("99999999999999999999\n")
    d = Daemon(tmp, os.path.join(tmp, "clock.db"), {"LOSSD_FAKE_CLOCK_FILE": clock}, tag="clock")
    if not d.up():
        lib.bad("daemon with a huge fake clock starts", d.logtext()[-1000:])
        return
    r = d.call("schedule.create", {"cron": "*/5 * * * *", "job": JOB})
    sid = (r.get("result") or {}).get("schedule_id") or (r.get("result") or {}).get("id")
    g = d.call("schedule.get", {"schedule_id": sid}) if sid else r
    time.sleep(1.2)
    alive = d.call("server.status")
    d.stop()
    log = d.logtext()
    lib.check("a fake clock of 99999999999999999999: refused with a warning, the daemon serves",
              "result" in r and "result" in alive and "cannot read a time" in log
              and "runtime error" not in log, r, g, log[-800:])


def sample(ops, count):
    """count N values spread over 1..ops (first and last included)."""
    if ops <= count:
        return list(range(1, ops + 1))
    return sorted(set(1 + (ops - 1) * i // (count - 1) for i in range(count)))


def sweep(tmp):
    full = "--all" in sys.argv or "--step" in sys.argv
    step = int(sys.argv[sys.argv.index("--step") + 1]) if "--step" in sys.argv else 1
    if not os.access(lib.LOSSD, os.X_OK):
        lib.bad("lossd exists", "missing " + lib.LOSSD)
        return
    ref, ops = undisturbed(tmp)
    if not ref:
        return
    print("undisturbed run: %d writes, syncs and truncates" % ops, flush=True)
    test_disk_full_flag(tmp, ref)
    long_ref = long_reference(tmp)  # the tmpfs and locked cases use the longer job
    test_disk_full_tmpfs(tmp, long_ref)
    test_locked_database(tmp, long_ref)
    test_deleted_database(tmp)
    test_fake_clock_overflow(tmp)
    # fault injection: every N (--all) or a sample; persistent faults end in kill -9 and a
    # restart, one-shot faults must be recovered from without one
    first = int(sys.argv[sys.argv.index("--from") + 1]) if "--from" in sys.argv else 1
    ns = (list(range(first, ops + 1, step)) if step > 0 else []) if full else sample(ops, 4)
    # --time-limit S: stop the I/O sweep after S seconds and say how far it got
    limit = float(sys.argv[sys.argv.index("--time-limit") + 1]) if "--time-limit" in sys.argv else 0
    t0 = time.time()
    runs = restarts = fails = done_n = 0
    for n in ns:
        if limit and time.time() - t0 > limit:
            print("time limit of %.0f s reached: stopped after %d of %d N values (up to N=%d)"
                  % (limit, done_n, len(ns), ns[done_n - 1] if done_n else 0), flush=True)
            break
        for persist in (True, False):
            probs = run_fault(tmp, ref, n, persist, "f%d%s" % (n, "p" if persist else "t"))
            runs += 1
            restarts += 1 if persist else 0
            if probs:
                fails += 1
                lib.bad("fault at operation %d (%s)" % (n, "from then on" if persist else "once"),
                        *probs)
            elif not full:
                lib.ok("fault at operation %d (%s): nothing lost, integrity ok, same leaderboard"
                       % (n, "from then on, kill -9, restart" if persist else "once, recovered"))
        done_n += 1
        if full and done_n % 50 == 0:
            print("... %d of %d N values, %d failed, %.0f s" % (done_n, len(ns), fails,
                                                                time.time() - t0), flush=True)
    print("fault injection: %d N values of %d operations (every %d from %d), %d runs, %d restarts "
          "after kill -9, %d leaderboards of %d entries compared, %d failed, %.0f s"
          % (done_n, ops, step, first, runs, restarts, runs, len(ref), fails, time.time() - t0),
          flush=True)
    # allocation failures: the Nth SQLite allocation fails once
    aref, allocs = undisturbed(tmp, "0,alloc", "aref")
    step_a = int(sys.argv[sys.argv.index("--alloc-step") + 1]) if "--alloc-step" in sys.argv else 0
    nas = list(range(1, allocs + 1, step_a)) if step_a else sample(allocs, 3)
    afails = 0
    t0 = time.time()
    for n in nas:
        probs = run_fault(tmp, ref, n, False, "a%d" % n, "alloc")
        if probs:
            afails += 1
            lib.bad("allocation %d fails" % n, *probs)
        elif not full:
            lib.ok("allocation %d fails (once): nothing lost, integrity ok, same leaderboard" % n)
    print("allocation faults: %d N values of %d allocations, %d failed, %.0f s"
          % (len(nas), allocs, afails, time.time() - t0), flush=True)
    fails += afails
    # kill -9 at moments spread over the search, no fault: the bar every fault must meet
    nk = int(sys.argv[sys.argv.index("--kill9") + 1]) if "--kill9" in sys.argv else 2
    kfails = 0
    for i in range(nk):
        delay = 0.1 + 1.2 * i / max(nk - 1, 1)  # noqa: E226
        probs = run_kill9(tmp, ref, delay, "k%d" % i)
        if probs:
            kfails += 1
            lib.bad("kill -9 at %.2f s" % delay, *probs)
        elif not full:
            lib.ok("kill -9 at %.2f s: nothing lost, integrity ok, same leaderboard" % delay)
    print("kill -9: %d runs at moments from 0.1 to 1.3 s into the search, %d failed"
          % (nk, kfails), flush=True)
    if full:
        lib.check("fault sweep: every run passed", fails == 0 and kfails == 0,
                  "%d of %d fault runs and %d of %d kill -9 runs failed" % (fails, runs, kfails, nk))


def main():
    lib.run("lossd-faults.", sweep)


if __name__ == "__main__":
    main()
