#!/usr/bin/python3
"""bench_small.py: small-request throughput of `lossd serve` (issue 13): requests per second for
pipelined server.status and leaderboard.query (a filled job, k=10) while a real search
keeps both workers training. The database is filled as bench_daemon.py fills it (bench_store
--keep: JOBS x 500 evaluations); --clients connections each send --batch requests at once and
read the replies, for --seconds per kind, so the client's own cost per request stays small and
the daemon's loop is what is measured. Prints a table, then one JSON line. Standard library only.

Usage: bench/bench_small.py [--jobs 50] [--clients 4] [--batch 100] [--seconds 3] [--bin DIR]
"""
import argparse
import json
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_daemon import ROOT, Bench, schedstat  # noqa: E402

KINDS = {
    "server.status": lambda rng, a: ("server.status", {}),
    "leaderboard.query": lambda rng, a: ("leaderboard.query",
                                         {"job_id": rng.randint(1, a.jobs), "k": 10}),
}


def pipelined(sock, kind, a, pid):
    """a.clients connections, each sending a.batch requests of kind at once, for a.seconds.
    Also the loop thread's CPU time per request (schedstat of the daemon's main thread): on a
    shared machine the requests per second follow the CPU share the loop gets, the CPU time
    per request does not."""
    counts, errors = [0] * a.clients, [0] * a.clients
    stop = threading.Event()

    def run(i):
        rng = random.Random(i)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(sock)
        buf = b""
        while not stop.is_set():
            lines = []
            for k in range(a.batch):
                method, params = KINDS[kind](rng, a)
                lines.append(json.dumps({"jsonrpc": "2.0", "id": k, "method": method,
                                         "params": params}, separators=(",", ":")))
            s.sendall(("\n".join(lines) + "\n").encode())
            got = 0
            while got < a.batch:
                chunk = s.recv(1 << 20)
                if not chunk:
                    raise SystemExit("connection closed")
                buf += chunk
                *done, buf = buf.split(b"\n")
                for ln in done:
                    if b'"id"' not in ln[:40] and b'"method":"event"' in ln:
                        continue
                    got += 1
                    errors[i] += b'"error"' in ln
            counts[i] += got
        s.close()

    th = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(a.clients)]
    s0 = schedstat(pid)
    t0 = time.monotonic()
    for t in th:
        t.start()
    time.sleep(a.seconds)
    stop.set()
    for t in th:
        t.join(timeout=60)
    wall = time.monotonic() - t0
    s1 = schedstat(pid)
    n = sum(counts)
    loop_cpu, loop_wait, workers = (s1[i] - s0[i] for i in range(3))
    return {"kind": kind, "requests": n, "seconds": round(wall, 2),
            "requests_per_s": round(n / wall, 1), "errors": sum(errors),
            "loop_cpu_us_per_request": round(loop_cpu * 1e6 / n, 1) if n else None,
            "requests_per_loop_cpu_s": round(n / loop_cpu, 1) if loop_cpu > 0 else None,
            "loop_cpu_share": round(loop_cpu / wall, 3),
            "loop_runqueue_wait_share": round(loop_wait / wall, 3),
            "workers_cpu_share": round(workers / wall, 2)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--jobs", type=int, default=50, help="filled jobs (x500 evaluations)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: " + ", ".join(KINDS))
    p.add_argument("--pause", type=float, default=0,
                   help="seconds to wait before each kind (to attach a profiler)")
    p.add_argument("--steps", type=int, default=1000, help="training steps of the live job")
    p.add_argument("--bin", default=os.path.join(ROOT, os.environ.get("LOSSD_BIN", "bin")))
    p.add_argument("--store-bench", default=os.path.join(ROOT, "build", "bench", "bench_store"))
    a = p.parse_args()
    b = Bench(a)
    out = {"bench": "small_requests", "jobs": a.jobs, "clients": a.clients, "batch": a.batch,
           "kinds": []}
    try:
        import tempfile
        b.tmp = tempfile.mkdtemp(prefix="lossd_bench_small.")
        db, _, _ = b.fill()
        sock = b.start_daemon(db)
        c = b.connect(sock)
        job = {"name": "live", "seed": 1, "tasks": [{"data": "builtin:digits",
                                                    "train": {"steps": a.steps}}],
               "budget": {"evaluations": 100000}, "population": 8, "children": 4, "seeds": 1}
        live = c.call("job.submit", {"job": job})["job_id"]
        time.sleep(1)
        print("daemon pid %d" % b.proc.pid, flush=True)
        for kind in a.kinds.split(","):
            time.sleep(a.pause)
            r = pipelined(sock, kind, a, b.proc.pid)
            r["workers_busy"] = c.call("server.status")["workers_busy"]
            out["kinds"].append(r)
        c.call("job.cancel", {"job_id": live})
    finally:
        b.cleanup()
    print("%-20s %12s %14s %10s %8s %8s" % ("request", "requests/s", "loop us/req",
                                             "loop cpu", "workers", "errors"))
    for r in out["kinds"]:
        print("%-20s %12.0f %14.1f %10.2f %8.2f %8d"
              % (r["kind"], r["requests_per_s"], r["loop_cpu_us_per_request"] or 0,
                 r["loop_cpu_share"], r["workers_cpu_share"], r["errors"]))
    print(json.dumps(out, separators=(",", ":")))
    return 1 if any(r["errors"] for r in out["kinds"]) else 0


if __name__ == "__main__":
    sys.exit(main())
