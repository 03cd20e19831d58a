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
from bench_daemon import ROOT, Bench  # noqa: E402

KINDS = {
    "server.status": lambda rng, a: ("server.status", {}),
    "leaderboard.query": lambda rng, a: ("leaderboard.query",
                                         {"job_id": rng.randint(1, a.jobs), "k": 10}),
}


def pipelined(sock, kind, a):
    """a.clients connections, each sending a.batch requests of kind at once, for a.seconds."""
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
    t0 = time.monotonic()
    for t in th:
        t.start()
    time.sleep(a.seconds)
    stop.set()
    for t in th:
        t.join(timeout=60)
    wall = time.monotonic() - t0
    return {"kind": kind, "requests": sum(counts), "seconds": round(wall, 2),
            "requests_per_s": round(sum(counts) / wall, 1), "errors": sum(errors)}


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
            r = pipelined(sock, kind, a)
            r["workers_busy"] = c.call("server.status")["workers_busy"]
            out["kinds"].append(r)
        c.call("job.cancel", {"job_id": live})
    finally:
        b.cleanup()
    print("%-20s %12s %8s %8s" % ("request", "requests/s", "errors", "busy"))
    for r in out["kinds"]:
        print("%-20s %12.0f %8d %8d" % (r["kind"], r["requests_per_s"], r["errors"],
                                         r["workers_busy"]))
    print(json.dumps(out, separators=(",", ":")))
    return 1 if any(r["errors"] for r in out["kinds"]) else 0


if __name__ == "__main__":
    sys.exit(main())
