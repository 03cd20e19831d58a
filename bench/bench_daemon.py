#!/usr/bin/python3
"""bench_daemon.py: the daemon's latency and throughput with a large database. Fills a temporary
database with 100,000 evaluations (bench_store --keep: 200 jobs x 50 candidates x 10
evaluations), starts `lossd serve --workers 2` on it, then measures over the socket:
  (a) leaderboard.query latency (one client, back to back) for a filled job and for the
      classification family, once with the workers idle and once while a real search job keeps
      both workers training;
  (b) 100 concurrent clients (threads, one connection each) sending server.status, job.get (a
      filled job or the live one, at random) and leaderboard.query (a random filled job, and the
      classification family) in turn, back to back for ~10 s: requests/s, p50/p99 latency,
      errors; then each kind alone for a shorter time.
Beside the latencies it reports what the daemon's threads did (from /proc/PID/task/*/schedstat:
the loop thread's CPU and run-queue wait, the workers' CPU) and the job's training rate in each
phase, so a slow phase says whether the loop was saturated, starved of CPU, or blocked.
Prints a table, then one JSON line. Exits non-zero when a request failed or the daemon died.
The daemon and every temporary file are removed on every exit path. Standard library only.

Usage: bench/bench_daemon.py [--jobs 200] [--queries 300] [--clients 100] [--seconds 10]
                             [--kind-seconds 3] [--workers 2] [--steps 1000] [--bin DIR]
                             [--store-bench PATH]
Small sizes for a quick check: --jobs 10 --queries 30 --clients 10 --seconds 2 --kind-seconds 1
--growth SECONDS (with --jobs 2, say) measures something else: one fast job (50-step digits) on an
otherwise idle daemon, and per --window seconds how the loop thread's CPU per search round and a
client's server.hello latency grow with the job's candidates and saved search state.
"""
import argparse
import ctypes
import json
import math
import os
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def die_with_parent():
    """In the daemon's child before exec: SIGTERM when this script dies, even by SIGKILL
    (Linux prctl PR_SET_PDEATHSIG), so no daemon outlives its benchmark."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class RpcError(Exception):
    pass


class Conn:
    """One client connection: JSON-RPC requests answered in order; notifications skipped."""

    def __init__(self, path, timeout=60.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.f = self.s.makefile("rb")
        self.next_id = 1

    def call(self, method, params=None):
        """Returns the result; raises RpcError on an error reply, OSError on a broken socket."""
        rid = self.next_id
        self.next_id += 1
        req = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            req["params"] = params
        self.s.sendall((json.dumps(req, separators=(",", ":")) + "\n").encode())
        while True:
            line = self.f.readline()
            if not line:
                raise OSError("connection closed by the daemon")
            msg = json.loads(line)
            if "id" not in msg:
                continue  # an event notification
            if msg["id"] != rid:
                raise RpcError("reply id %r to request %d" % (msg["id"], rid))
            if "error" in msg:
                raise RpcError("%s: %s" % (method, msg["error"]))
            return msg["result"]

    def close(self):
        try:
            self.f.close()
            self.s.close()
        except OSError:
            pass


def quantile(v, q):
    """The same rule as bench_store.c: the ceil(q*n)-th smallest value."""
    if not v:
        return float("nan")
    s = sorted(v)
    return s[max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))]


def schedstat(pid):
    """(loop thread on-CPU s, loop thread runnable-but-waiting s, other threads on-CPU s) from
    /proc/PID/task/*/schedstat; the loop is the main thread (tid == pid). Zeros when absent."""
    loop_run = loop_wait = others = 0.0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                run, wait = (int(x) / 1e9 for x in f.read().split()[:2])
            if int(tid) == pid:
                loop_run, loop_wait = run, wait
            else:
                others += run
    except (OSError, ValueError):
        pass
    return loop_run, loop_wait, others


def sched_delta(s0, s1, wall):
    """Per second of wall time: the loop thread on a CPU, the loop thread runnable but not
    running (starved of CPU), and the other threads (workers) on a CPU."""
    return {"loop_cpu": round((s1[0] - s0[0]) / wall, 3),
            "loop_runqueue_wait": round((s1[1] - s0[1]) / wall, 3),
            "workers_cpu": round((s1[2] - s0[2]) / wall, 2)}


def stats_ms(v):
    return {"n": len(v), "median": round(quantile(v, 0.5), 3), "p99": round(quantile(v, 0.99), 3),
            "max": round(max(v), 3) if v else None}


class Bench:
    def __init__(self, args):
        self.a = args
        self.tmp = None
        self.proc = None
        self.conns = []
        self.log_path = None

    # ---- set-up and clean-up -----------------------------------------------------------

    def cleanup(self):
        for c in self.conns:
            c.close()
        self.conns = []
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def daemon_log_tail(self, n=20):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no daemon log)"

    def fill(self):
        db = os.path.join(self.tmp, "bench.db")
        t0 = time.monotonic()
        r = subprocess.run([self.a.store_bench, "--keep", db, str(self.a.jobs), "50"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise RuntimeError("bench_store failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
        store = json.loads(r.stdout.strip().splitlines()[-1])
        return db, store, time.monotonic() - t0

    def start_daemon(self, db):
        sock = os.path.join(self.tmp, "lossd.sock")
        self.log_path = os.path.join(self.tmp, "lossd.log")
        lossd = os.path.join(self.a.bin, "lossd")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([lossd, "serve", "--socket", sock, "--db", db,
                                          "--workers", str(self.a.workers)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         preexec_fn=die_with_parent)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("lossd serve exited with %d:\n%s"
                                   % (self.proc.returncode, self.daemon_log_tail()))
            try:
                c = self.connect(sock)
                c.call("server.hello", {"client": "bench_daemon"})
                return sock
            except (OSError, RpcError):
                if time.monotonic() > deadline:
                    raise RuntimeError("lossd serve did not answer within 30 s:\n"
                                       + self.daemon_log_tail())
                time.sleep(0.05)

    def connect(self, sock):
        c = Conn(sock)
        self.conns.append(c)
        return c

    # ---- measurements ------------------------------------------------------------------

    def single_client(self, sock, rng):
        """(a): n leaderboard.query calls of each kind from one client, interleaved."""
        c = self.connect(sock)
        tj, tf = [], []
        s0, w0 = schedstat(self.proc.pid), time.monotonic()
        for i in range(self.a.queries):
            job = rng.randint(1, self.a.jobs)
            t0 = time.perf_counter()
            r = c.call("leaderboard.query", {"job_id": job, "k": 10})
            t1 = time.perf_counter()
            f = c.call("leaderboard.query", {"family": "classification", "k": 10})
            t2 = time.perf_counter()
            if len(r["entries"]) != 10 or len(f["entries"]) != 10:
                raise RpcError("leaderboard of job %d: %d entries, family: %d (expected 10)"
                               % (job, len(r["entries"]), len(f["entries"])))
            tj.append((t1 - t0) * 1e3)
            tf.append((t2 - t1) * 1e3)
        sched = sched_delta(s0, schedstat(self.proc.pid), time.monotonic() - w0)
        return {"leaderboard_job_ms": stats_ms(tj), "leaderboard_family_ms": stats_ms(tf),
                "daemon_threads": sched}

    def requests_for(self, kind, live_job):
        """Request makers for a kind: 'mix' cycles status, job.get, job and family leaderboard."""
        jobs = self.a.jobs

        def status(rng):
            return "server.status", None

        def job_get(rng):
            return "job.get", {"job_id": rng.choice((rng.randint(1, jobs), live_job))}

        def lb_job(rng):
            return "leaderboard.query", {"job_id": rng.randint(1, jobs), "k": 10}

        def lb_family(rng):
            return "leaderboard.query", {"family": "classification", "k": 10}

        table = {"server.status": [status], "job.get": [job_get],
                 "leaderboard.job": [lb_job], "leaderboard.family": [lb_family],
                 "mix": [status, job_get, lb_job, lb_family]}
        return table[kind]

    def concurrent(self, sock, kind, seconds, live_job):
        """(b): clients threads, each its own connection, back to back for seconds."""
        makers = self.requests_for(kind, live_job)
        names = {"status": "server.status", "job_get": "job.get", "lb_job": "leaderboard.job",
                 "lb_family": "leaderboard.family"}
        n = self.a.clients
        conns = [self.connect(sock) for _ in range(n)]
        lat = [dict() for _ in range(n)]
        errors = [[] for _ in range(n)]
        start = threading.Barrier(n + 1)
        stop = threading.Event()

        def run(i):
            rng = random.Random(1000 + i)
            c = conns[i]
            k = i  # clients start at different points of the mix
            start.wait()
            while not stop.is_set():
                mk = makers[k % len(makers)]
                k += 1
                method, params = mk(rng)
                t0 = time.perf_counter()
                try:
                    c.call(method, params)
                except (RpcError, OSError, ValueError) as e:
                    errors[i].append("%s: %s" % (method, e))
                    if isinstance(e, OSError):
                        return
                    continue
                lat[i].setdefault(names[mk.__name__] if mk.__name__ in names else "x",
                                  []).append((time.perf_counter() - t0) * 1e3)

        threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        cpu0 = os.times()
        start.wait()
        t0 = time.monotonic()
        s0 = schedstat(self.proc.pid)
        time.sleep(seconds)
        s1 = schedstat(self.proc.pid)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        wall = time.monotonic() - t0
        cpu1 = os.times()
        hung = sum(t.is_alive() for t in threads)
        for c in conns:
            c.close()
        by = {}
        for d in lat:
            for m, v in d.items():
                by.setdefault(m, []).extend(v)
        every = [x for v in by.values() for x in v]
        errs = [e for v in errors for e in v]
        if hung:
            errs.append("%d client threads still waiting for a reply 60 s after the end" % hung)
        client_cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        return {"kind": kind, "clients": n, "seconds": round(wall, 2), "requests": len(every),
                "requests_per_s": round(len(every) / wall, 1),
                "latency_ms": {"p50": round(quantile(every, 0.5), 3),
                               "p99": round(quantile(every, 0.99), 3),
                               "max": round(max(every), 3) if every else None},
                "by_method": {m: {"n": len(v), "p50": round(quantile(v, 0.5), 3),
                                  "p99": round(quantile(v, 0.99), 3)} for m, v in sorted(by.items())},
                "errors": len(errs), "error_examples": errs[:5],
                "client_cpu_s_per_s": round(client_cpu / wall, 2),
                "daemon_threads": sched_delta(s0, s1, seconds)}

    # ---- the run -----------------------------------------------------------------------

    def growth(self):
        """--growth: one fast job (50-step digits) on an otherwise idle daemon for a.growth
        seconds; per window: the job's candidates, its saved search state, rounds, the loop
        thread's CPU per round and server.hello latency (what the loop's stalls cost a client)."""
        a = self.a
        self.tmp = tempfile.mkdtemp(prefix="lossd_bench_daemon.")
        print("== growth: filling %d jobs, then one 50-step digits job for %g s"
              % (a.jobs, a.growth), flush=True)
        db, store, fill_s = self.fill()
        sock = self.start_daemon(db)
        c = self.connect(sock)
        job = {"name": "bench-growth", "seed": 7, "warm_start": False,
               "tasks": [{"data": "builtin:digits", "train": {"steps": 50}}],
               "budget": {"evaluations": 1000000}}
        live = c.call("job.submit", {"job": job})["job_id"]
        ro = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
        windows, prev = [], None
        t_end = time.monotonic() + a.growth
        while time.monotonic() < t_end:
            s0, w0, lat = schedstat(self.proc.pid), time.monotonic(), []
            while time.monotonic() < w0 + a.window:
                t0 = time.perf_counter()
                c.call("server.hello")
                lat.append((time.perf_counter() - t0) * 1e3)
                time.sleep(0.005)
            s1, w1 = schedstat(self.proc.pid), time.monotonic()
            g = c.call("job.get", {"job_id": live})["progress"]
            row = ro.execute("SELECT (SELECT length(state) FROM search_state WHERE job_id = ?),"
                             " (SELECT count(*) FROM candidates WHERE job_id = ?)",
                             (live, live)).fetchone()
            ev, rd = g["evaluations"], g["round"]
            if prev:
                dr, de = rd - prev[1], ev - prev[0]
                windows.append({
                    "candidates": row[1], "state_bytes": row[0], "evaluations": ev,
                    "rounds_per_s": round(dr / (w1 - w0), 2),
                    "evals_per_s": round(de / (w1 - w0), 1),
                    "loop_cpu": round((s1[0] - s0[0]) / (w1 - w0), 3),
                    "loop_cpu_ms_per_round": round(1e3 * (s1[0] - s0[0]) / dr, 1) if dr else None,
                    "hello_ms": {"p50": round(quantile(lat, 0.5), 2),
                                 "p99": round(quantile(lat, 0.99), 2),
                                 "max": round(max(lat), 2)}})
                print("  %6d candidates, state %8d bytes: %5.1f rounds/s, %6.1f evals/s, loop CPU"
                      " %5.1f ms per round (%3.0f%% busy), server.hello p50 %6.2f p99 %7.2f max"
                      " %7.2f ms" % (row[1], row[0] or 0, windows[-1]["rounds_per_s"],
                                     windows[-1]["evals_per_s"],
                                     windows[-1]["loop_cpu_ms_per_round"] or 0,
                                     100 * windows[-1]["loop_cpu"], quantile(lat, 0.5),
                                     quantile(lat, 0.99), max(lat)), flush=True)
            prev = (ev, rd)
        ro.close()
        if self.proc.poll() is not None:
            raise RuntimeError("lossd exited during the benchmark (%d):\n%s"
                               % (self.proc.returncode, self.daemon_log_tail()))
        return {"bench": "daemon_growth", "workers": a.workers, "seconds": a.growth,
                "windows": windows}

    def run(self):
        a = self.a
        self.tmp = tempfile.mkdtemp(prefix="lossd_bench_daemon.")
        rng = random.Random(42)
        out = {"bench": "daemon", "workers": a.workers}

        print("== filling a database: %d jobs x 50 candidates x 10 evaluations (bench_store --keep)"
              % a.jobs, flush=True)
        db, store, fill_s = self.fill()
        out["evaluations_stored"] = store["evaluations"]
        out["fill_s"] = round(fill_s, 1)
        out["store_direct_ms"] = {"leaderboard_job": store["leaderboard_job_ms"],
                                  "leaderboard_family": store["leaderboard_family_ms"]}
        sock = self.start_daemon(db)
        mon = self.connect(sock)
        st = mon.call("server.status")
        if st["workers"] != a.workers:
            raise RuntimeError("server.status says %d workers, asked for %d"
                               % (st["workers"], a.workers))

        print("== (a) idle: %d x leaderboard.query (job, family), one client" % a.queries, flush=True)
        out["idle"] = self.single_client(sock, rng)
        if mon.call("server.status")["workers_busy"] != 0:
            raise RuntimeError("workers busy before any job was submitted")

        # A real search that outlasts the measurement: digits with longer training, large rounds.
        job = {"name": "bench-daemon", "seed": 7,
               "tasks": [{"data": "builtin:digits", "train": {"steps": a.steps}}],
               "population": 64, "children": 32, "warm_start": False,
               "budget": {"evaluations": 100000, "seconds": 3600}}
        live = mon.call("job.submit", {"job": job})["job_id"]
        deadline = time.monotonic() + 60
        busy_seen = 0
        while busy_seen < 3:  # three polls in a row with every worker training
            st = mon.call("server.status")
            busy_seen = busy_seen + 1 if st["workers_busy"] == a.workers else 0
            if time.monotonic() > deadline:
                raise RuntimeError("workers never all busy within 60 s: %s" % json.dumps(st))
            time.sleep(0.05)
        print("== workers busy (job %d)" % live, flush=True)

        # Watch the workers through the loaded phases on a separate connection.
        samples, stop_mon = [], threading.Event()

        def watch():
            c = Conn(sock)
            try:
                while not stop_mon.wait(0.25):
                    s = c.call("server.status")
                    samples.append((s["workers_busy"], s["evals_per_s"], s["evaluations_total"]))
            except (OSError, RpcError, ValueError) as e:
                samples.append(("error", str(e), 0))
            finally:
                c.close()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        def timed(fn, *args):
            """fn's result with the training rate over its run (evaluations_total's change)."""
            e0, t0 = mon.call("server.status")["evaluations_total"], time.monotonic()
            r = fn(*args)
            e1, t1 = mon.call("server.status")["evaluations_total"], time.monotonic()
            r["training_evals_per_s"] = round((e1 - e0) / (t1 - t0), 1)
            return r

        def quiet(seconds):
            s0, w0 = schedstat(self.proc.pid), time.monotonic()
            time.sleep(seconds)
            return {"daemon_threads": sched_delta(s0, schedstat(self.proc.pid),
                                                  time.monotonic() - w0)}

        try:
            print("== training alone, 3 s", flush=True)
            out["training_alone"] = timed(quiet, 3)
            print("== (a) busy: %d x leaderboard.query (job, family), one client" % a.queries,
                  flush=True)
            out["busy"] = timed(self.single_client, sock, rng)
            print("== (b) %d clients, mixed requests, %g s" % (a.clients, a.seconds), flush=True)
            out["concurrent"] = timed(self.concurrent, sock, "mix", a.seconds, live)
            out["concurrent_by_kind"] = {}
            if a.kind_seconds > 0:
                for kind in ("server.status", "job.get", "leaderboard.job", "leaderboard.family"):
                    print("== (b) %d clients, %s only, %g s" % (a.clients, kind, a.kind_seconds),
                          flush=True)
                    out["concurrent_by_kind"][kind] = timed(self.concurrent, sock, kind,
                                                            a.kind_seconds, live)
        finally:
            stop_mon.set()
            watcher.join(timeout=30)
        errs = [s for s in samples if s[0] == "error"]
        good = [s for s in samples if s[0] != "error"]
        out["workers_busy_fraction"] = round(
            sum(s[0] for s in good) / (a.workers * len(good)), 3) if good else None
        out["monitor_errors"] = len(errs)
        final = mon.call("server.status")
        out["job_evaluations"] = mon.call("job.get", {"job_id": live})["progress"]["evaluations"]
        out["db_bytes"] = final["db_bytes"]
        if self.proc.poll() is not None:
            raise RuntimeError("lossd exited during the benchmark (%d):\n%s"
                               % (self.proc.returncode, self.daemon_log_tail()))
        return out


def table(out):
    rows = [("", "median ms", "p99 ms", "max ms")]
    rows.append(("store call, job (bench_store, no socket)",)
                + tuple(out["store_direct_ms"]["leaderboard_job"][k] for k in ("median", "p99"))
                + ("",))
    rows.append(("store call, family (bench_store, no socket)",)
                + tuple(out["store_direct_ms"]["leaderboard_family"][k] for k in ("median", "p99"))
                + ("",))
    for phase in ("idle", "busy"):
        for k in ("job", "family"):
            s = out[phase]["leaderboard_%s_ms" % k]
            rows.append(("leaderboard.query %s, workers %s" % (k, phase), s["median"], s["p99"],
                         s["max"]))
    w = max(len(r[0]) for r in rows)
    print()
    print("(a) %d evaluations stored, %d workers; one client, back to back" %
          (out["evaluations_stored"], out["workers"]))
    for r in rows:
        print("  %-*s %10s %10s %10s" % (w, r[0], r[1], r[2], r[3]))
    for phase in ("idle", "busy", "training_alone"):
        t = out[phase]["daemon_threads"]
        print("  daemon threads, %-21s loop on CPU %3.0f%%, waiting for a CPU %3.0f%%; workers on"
              " CPU %.2f cores%s" % ({"idle": "workers idle:", "busy": "workers busy:",
                                      "training_alone": "training, no queries:"}[phase],
                                     100 * t["loop_cpu"], 100 * t["loop_runqueue_wait"],
                                     t["workers_cpu"],
                                     ", %s evals/s" % out[phase]["training_evals_per_s"]
                                     if "training_evals_per_s" in out[phase] else ""))
    print()
    print("(b) %d clients at once, each its own connection, a job training (%.0f%% of status "
          "samples: every worker busy)" % (out["concurrent"]["clients"],
                                           100 * (out["workers_busy_fraction"] or 0)))
    rows = [("requests", "req/s", "p50 ms", "p99 ms", "max ms", "errors", "loop cpu", "loop wait",
             "workers", "client", "evals/s")]
    runs = [("mix", out["concurrent"])] + list(out["concurrent_by_kind"].items())
    for name, r in runs:
        t = r["daemon_threads"]
        rows.append((name, r["requests_per_s"], r["latency_ms"]["p50"], r["latency_ms"]["p99"],
                     r["latency_ms"]["max"], r["errors"], "%.0f%%" % (100 * t["loop_cpu"]),
                     "%.0f%%" % (100 * t["loop_runqueue_wait"]), t["workers_cpu"],
                     r["client_cpu_s_per_s"], r["training_evals_per_s"]))
        if name == "mix":
            for m, v in r["by_method"].items():
                rows.append(("  mix: " + m, v["n"], v["p50"], v["p99"], "", "", "", "", "", "",
                             ""))
    w = max(len(str(r[0])) for r in rows)
    for r in rows:
        print("  %-*s %9s %9s %9s %9s %6s %8s %9s %7s %6s %7s" % ((w,) + tuple(str(x) for x in r)))
    print("  loop cpu / loop wait: share of the time the daemon's loop thread ran / was runnable but"
          " waiting for a CPU;\n  workers, client: CPU cores used by the worker threads and by this"
          " Python client;\n  evals/s: the job's training rate meanwhile (mix rows: request counts)")
    print()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=200, help="filled jobs (x500 evaluations)")
    p.add_argument("--queries", type=int, default=300, help="leaderboard calls of each kind in (a)")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10, help="length of the mixed run in (b)")
    p.add_argument("--kind-seconds", type=float, default=3, help="each kind alone (0: skip)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=1000, help="training steps of the live job")
    p.add_argument("--growth", type=float, default=0,
                   help="instead: watch one fast job grow for this many seconds")
    p.add_argument("--window", type=float, default=5, help="--growth: seconds per line")
    p.add_argument("--bin", default=os.path.join(ROOT, os.environ.get("LOSSD_BIN", "bin")))
    p.add_argument("--store-bench", default=os.path.join(ROOT, "build", "bench", "bench_store"))
    args = p.parse_args()
    if args.jobs < 1 or args.queries < 1 or args.clients < 1 or args.workers < 1:
        p.error("--jobs, --queries, --clients and --workers must be at least 1")
    if not os.access(args.store_bench, os.X_OK):
        p.error("%s not found: make %s" % (args.store_bench,
                                           os.path.relpath(args.store_bench, ROOT)))

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    b = Bench(args)
    try:
        if args.growth > 0:
            out = b.growth()
            b.cleanup()
            print(json.dumps(out, separators=(",", ":")))
            return 0
        out = b.run()
    except (RuntimeError, RpcError, OSError, ValueError, KeyError) as e:
        print("bench_daemon: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench_daemon: interrupted", file=sys.stderr)
        return 130
    finally:
        b.cleanup()
    table(out)
    print(json.dumps(out, separators=(",", ":")))
    bad = out["concurrent"]["errors"] + sum(r["errors"] for r in out["concurrent_by_kind"].values())
    return 1 if bad or out["monitor_errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
