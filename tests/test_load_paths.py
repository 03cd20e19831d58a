#!/usr/bin/python3
"""test_load_paths.py: every way a stored or scheduled job is loaded reads and parses its data off
the daemon's loop (issue 16), as job.submit does (tests/test_submit_load.py): a run fired by a
schedule's tick, schedule.trigger, the reload after a storage fault (disk full, then space
again), start-up recovery, and job.resume of a failed job (its data file was gone at a restart). For each, one client polls
server.status in a loop on its own connection while an 8 MB CSV ($LOAD_MB) loads; the test counts
the replies that report the load in flight (submits_loading) and prints the worst latency seen.
Also: the triggered and resumed jobs hold the whole table, a resume's reply comes after the load,
a schedule's run being prepared counts as active, and the recovered job resumes.
Uses $LOSSD_BIN/lossd; prints "N passed, N failed" last."""
import calendar
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import Conn, Daemon  # noqa: E402
from test_submit_load import write_csv  # noqa: E402
import test_submit_load  # noqa: E402

test_submit_load.TARGET_BYTES = int(float(os.environ.get("LOAD_MB", "8")) * (1 << 20))
T0 = calendar.timegm((2026, 1, 1, 2, 59, 50, 0, 0, 0))  # the fake clock: 10 s before 03:00 UTC


class Poller:
    """server.status in a loop on its own connection (reconnecting until the daemon answers):
    samples of (sent, answered, submits_loading)."""

    def __init__(self, sock):
        self.sock, self.samples, self.stop_ev = sock, [], threading.Event()
        self.th = threading.Thread(target=self.run)
        self.th.start()

    def run(self):
        c = None
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                if c is None:
                    c = Conn(self.sock, timeout=600)
                r = c.call("server.status")
            except OSError:
                if c:
                    c.close()
                c = None
                time.sleep(0.005)
                continue
            self.samples.append((t0, time.monotonic(),
                                 (r.get("result") or {}).get("submits_loading", 0)))
        if c:
            c.close()

    def ready(self):
        """Waits until the poller is answered (so a load starts with it connected)."""
        n = len(self.samples)
        return wait_until(lambda: len(self.samples) >= n + 5, 60, 0.01)

    def stop(self):
        self.stop_ev.set()
        self.th.join()

    def window(self, a, b, what):
        """Prints and returns (replies reporting a load in [a, b], worst latency ms overlapping)."""
        s = [x for x in self.samples if x[1] >= a and x[0] <= b]
        loading = sum(1 for x in s if x[2] and x[2] > 0 and x[0] >= a)
        worst = max([x[1] - x[0] for x in s] or [0]) * 1000
        print("%s: %.0f ms, %d server.status replies (%d reporting the load), worst latency %.1f ms"
              % (what, (b - a) * 1000, len(s), loading, worst))
        return loading, worst


def wait_until(fn, timeout=120, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


def loaded_after(p, a, timeout=120):
    """The first time after a that the poller saw no load in flight, having seen one (or the
    first reply after a, for a daemon that blocks while loading)."""
    def f():
        seen = False
        for x in p.samples:
            if x[0] < a:
                continue
            if x[2]:
                seen = True
            elif seen or x[1] - x[0] > 0.5:
                return x[1]
        return None
    return wait_until(f, timeout, 0.02)


def job(path, **kw):
    j = {"name": "big", "seed": 1, "tasks": [{"data": path, "train": {"steps": 20}}],
         "budget": {"evaluations": 8}, "population": 2, "children": 1, "seeds": 1,
         "warm_start": False}
    j.update(kw)
    return j


def get(d, jid):
    return d.call("job.get", {"job_id": jid, "full": True}).get("result") or {}


def rows_of(g):
    return (((g.get("spec") or {}).get("tasks") or [{}])[0].get("data_info") or {}).get("rows")


def main():
    results = {}
    with tempfile.TemporaryDirectory(prefix="lossd-paths-") as tmp:
        csv = os.path.join(tmp, "big.csv")
        nrows = write_csv(csv)
        print("data: %d rows, %.0f MB" % (nrows, os.path.getsize(csv) / 1e6))
        clock = os.path.join(tmp, "clock")
        full = os.path.join(tmp, "full")
        with open(clock, "w") as f:
            f.write(str(T0))
        db = os.path.join(tmp, "p.db")
        env = {"LOSSD_FAKE_CLOCK_FILE": clock, "LOSSD_FAULT_FILE": full}
        d = Daemon(tmp, db, env=env, tag="a")
        lib.check("daemon starts", d.up(), d.logtext())
        if not d.up():
            lib.finish()
        p = Poller(d.sock)

        # 1. schedule.trigger: answered when the run's job is loaded
        r = d.call("schedule.create", {"cron": "0 3 * * *", "tz": "UTC", "job": job(csv)})
        sid = (r.get("result") or {}).get("schedule_id")
        lib.check("a schedule of the large CSV job is created", sid, r)
        sub = Conn(d.sock, timeout=600)
        p.ready()
        a = time.monotonic()
        r = sub.call("schedule.trigger", {"schedule_id": sid})
        b = time.monotonic()
        sub.close()
        results["schedule.trigger"] = p.window(a, b, "schedule.trigger")
        tj = (r.get("result") or {}).get("job_id")
        lib.check("schedule.trigger answers with the run's job once it is loaded",
                  tj and rows_of(get(d, tj)) == nrows, r)
        if tj:
            d.call("job.cancel", {"job_id": tj})

        # 2. the tick fires the schedule at 03:00 (fake clock); the run loads off the loop
        p.ready()
        with open(clock, "w") as f:
            f.write(str(T0 + 40))
        a = time.monotonic()

        def fired_run():
            runs = (d.call("schedule.get", {"schedule_id": sid}).get("result") or {}).get("runs") or []
            ids = [x.get("job_id") for x in runs if x.get("job_id") != tj]
            return ids[0] if ids else None
        fj = wait_until(fired_run, 60)
        b = loaded_after(p, a) or time.monotonic()
        results["schedule tick"] = p.window(a, b, "a run fired by the schedule's tick")
        lib.check("the tick's run is a job holding the whole table",
                  fj and rows_of(get(d, fj)) == nrows, fj)
        if fj:
            d.call("job.cancel", {"job_id": fj})

        # 3. a long job, stalled by a full disk, reloads when space returns
        r = d.call("job.submit", {"job": job(csv, name="long", budget={"evaluations": 100000},
                                             population=4, children=4)})
        lj = (r.get("result") or {}).get("job_id")
        lib.check("a long job of the large CSV is submitted", lj, r)
        wait_until(lambda: (get(d, lj).get("progress") or {}).get("evaluations", 0) >= 2, 120)
        open(full, "w").close()
        paused = wait_until(lambda: "full" in (get(d, lj).get("error") or ""), 60)
        lib.check("a full disk pauses the job", paused, get(d, lj))
        time.sleep(0.3)
        p.ready()
        os.unlink(full)
        a = time.monotonic()
        back = wait_until(lambda: not get(d, lj).get("error") and
                          get(d, lj).get("state") == "running", 60)
        b = loaded_after(p, a) or time.monotonic()
        results["storage-fault retry"] = p.window(a, b, "the reload after a storage fault")
        lib.check("the job reloads and runs when space returns", back, get(d, lj))
        p.stop()
        d.stop()

        # 4. start-up recovery: the daemon answers while the running job's data loads
        d = None
        p = Poller(os.path.join(tmp, "b.sock"))
        a = time.monotonic()
        d = Daemon(tmp, db, env=env, tag="b")
        b = loaded_after(p, a) or time.monotonic()
        results["start-up recovery"] = p.window(a, b, "start-up recovery")
        lib.check("the long job is resumed at start-up",
                  wait_until(lambda: get(d, lj).get("state") == "running" and
                             "resuming" in d.logtext(), 60), d.logtext()[-2000:])
        p.stop()
        d.stop()

        # 5. job.resume of a failed job: its data file was gone at the restart, so the recovery
        # failed it; with the file back, the resume loads it
        os.rename(csv, csv + ".away")
        d = Daemon(tmp, db, env=env, tag="c")
        failed = wait_until(lambda: get(d, lj).get("state") == "failed", 60)
        lib.check("a job whose data file is gone at start-up fails, naming the file",
                  failed and "big.csv" in (get(d, lj).get("error") or ""), get(d, lj))
        os.rename(csv + ".away", csv)
        p = Poller(d.sock)
        sub = Conn(d.sock, timeout=600)
        p.ready()
        a = time.monotonic()
        r = sub.call("job.resume", {"job_id": lj})
        b = time.monotonic()
        sub.close()
        results["job.resume of a failed job"] = p.window(a, b, "job.resume of a failed job")
        lib.check("the failed job's resume is answered once it is loaded",
                  (r.get("result") or {}).get("state") in ("queued", "running") and
                  rows_of(get(d, lj)) == nrows, r)
        d.call("job.cancel", {"job_id": lj})
        p.stop()
        d.stop()
        for what, (loading, worst) in results.items():
            lib.check("%s: other clients' replies keep flowing during the load (%d replies "
                      "reporting it, worst latency %.1f ms)" % (what, loading, worst),
                      loading >= 3, loading, worst)
        log = "".join(open(os.path.join(tmp, t + ".log")).read() for t in "abc")
        lib.check("no sanitizer reports in the daemon's logs", "runtime error" not in log and
                  "AddressSanitizer" not in log, log[-2000:])
    lib.finish()


if __name__ == "__main__":
    main()
