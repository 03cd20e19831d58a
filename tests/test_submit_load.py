#!/usr/bin/python3
"""test_submit_load.py: a job's data is read and parsed off the daemon's loop (issue 16). While a
large CSV job (24 MB, 380,000 rows; $LOAD_MB sets the size) is being loaded for a job.submit, another
client's server.status keeps being answered: the test counts those replies and prints the worst
latency seen during the load. Also: the submit's own reply is the usual one, a request pipelined
behind it on the same connection is answered after it (order kept), and a data error still
comes back as the submit's error.
Uses $LOSSD_BIN/lossd; prints "N passed, N failed" last."""
import json
import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import Conn, Daemon  # noqa: E402

TARGET_BYTES = int(float(os.environ.get("LOAD_MB", "24")) * (1 << 20))


def write_csv(path):
    """wine.csv's rows repeated up to TARGET_BYTES; returns the number of data rows."""
    with open(os.path.join(lib.ROOT, "data", "wine.csv")) as f:
        header, *rows = f.read().splitlines()
    block = "\n".join(rows) + "\n"
    reps = TARGET_BYTES // len(block) + 1
    with open(path, "w") as f:
        f.write(header + "\n")
        for _ in range(reps):
            f.write(block)
    return reps * len(rows)


def job(path):
    return {"name": "big", "seed": 1,
            "tasks": [{"data": path, "train": {"steps": 20}}],
            "budget": {"evaluations": 8}, "population": 2, "children": 1, "seeds": 1}


def poll_status(sock, stop, out):
    """server.status in a loop on its own connection: out gets (sent, answered) times."""
    c = Conn(sock)
    while not stop.is_set():
        t0 = time.monotonic()
        r = c.call("server.status")
        out.append((t0, time.monotonic(), "result" in r,
                    (r.get("result") or {}).get("submits_loading")))
    c.close()


def main():
    with tempfile.TemporaryDirectory(prefix="lossd-load-") as tmp:
        csv = os.path.join(tmp, "big.csv")
        nrows = write_csv(csv)
        d = Daemon(tmp, os.path.join(tmp, "l.db"), tag="l")
        lib.check("daemon starts", d.up(), d.logtext())
        if not d.up():
            lib.finish()

        stop = threading.Event()
        seen = []
        th = threading.Thread(target=poll_status, args=(d.sock, stop, seen))
        th.start()
        sub = Conn(d.sock, timeout=600)
        try:
            time.sleep(0.2)
            t0 = time.monotonic()
            r = sub.call("job.submit", {"job": job(csv)})
            t1 = time.monotonic()
        finally:
            stop.set()
            th.join()
            sub.close()
        jid = (r.get("result") or {}).get("job_id")
        lib.check("the large CSV job is submitted (%d rows, %.0f MB, %.0f ms)"
                  % (nrows, os.path.getsize(csv) / 1e6, (t1 - t0) * 1000),
                  jid and r["result"].get("state") in ("queued", "running"), r)
        during = [s for s in seen if s[0] >= t0 and s[1] <= t1]
        worst = max([s[1] - s[0] for s in seen if s[1] >= t0 and s[0] <= t1] or [0])
        print("server.status during the %.0f ms load: %d replies, worst latency %.1f ms"
              % ((t1 - t0) * 1000, len(during), worst * 1000))
        lib.check("another client's server.status is answered while the data loads "
                  "(%d replies)" % len(during),
                  len(during) >= 3 and all(s[2] for s in seen), len(during), (t1 - t0))
        lib.check("server.status counts the submit loading",
                  any(s[3] == 1 for s in during) and seen[-1][3] == 0, during[:3], seen[-1:])
        if jid:
            g = d.call("job.get", {"job_id": jid, "full": True}).get("result") or {}
            info = ((g.get("spec") or {}).get("tasks") or [{}])[0].get("data_info") or {}
            lib.check("the job holds the whole table", info.get("rows") == nrows, info)
            d.call("job.cancel", {"job_id": jid})

        # pipelined behind a submit on one connection: answered after it, in order
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(d.sock)
        bad = dict(job(os.path.join(tmp, "missing.csv")), name="bad")
        lines = [{"jsonrpc": "2.0", "id": "a", "method": "job.submit", "params": {"job": bad}},
                 {"jsonrpc": "2.0", "id": "b", "method": "server.hello"},
                 {"jsonrpc": "2.0", "id": "c", "method": "job.submit",
                  "params": {"job": dict(job("builtin:wine"), name="small")}},
                 {"jsonrpc": "2.0", "id": "d", "method": "server.hello"}]
        s.sendall("".join(json.dumps(x) + "\n" for x in lines).encode())
        buf = b""
        while buf.count(b"\n") < 4:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
        replies = [json.loads(x) for x in buf.splitlines()]
        ids = [x.get("id") for x in replies]
        lib.check("requests pipelined behind submits are answered in order", ids == list("abcd"),
                  ids)
        err = (replies[0].get("error") or {}) if replies else {}
        lib.check("a missing data file is the submit's error, naming the file",
                  err.get("code") == -32602 and "missing.csv" in err.get("message", ""), err)
        lib.check("the small job after it is submitted",
                  len(replies) > 2 and (replies[2].get("result") or {}).get("job_id"), replies)
        d.stop()
    lib.finish()


if __name__ == "__main__":
    main()
