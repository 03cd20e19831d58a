#!/usr/bin/python3
"""test_protocol.py: abuses lossd's wire protocol (docs/protocol.md) on a real daemon: malformed
lines, bad envelopes and params, oversized lines, half lines, clients that never read, and many
clients at once; the daemon must answer correctly and stay up. Standard library only.
Uses $LOSSD_BIN/lossd; prints "N passed, N failed" last."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import LOSSD, Conn, bad, check, ok  # noqa: E402


def err_code(reply):
    e = reply.get("error") if isinstance(reply, dict) else None
    return e.get("code") if isinstance(e, dict) else None


def err_msg(reply):
    e = reply.get("error") if isinstance(reply, dict) else None
    return e.get("message", "") if isinstance(e, dict) else ""


def main():
    tmp = tempfile.mkdtemp(prefix="lossd-proto.")
    sock = os.path.join(tmp, "p.sock")
    db = os.path.join(tmp, "p.db")
    log = open(os.path.join(tmp, "daemon.log"), "w")
    proc = None
    try:
        if not os.access(LOSSD, os.X_OK):
            bad("lossd exists", "missing " + LOSSD + " (run make)")
            return
        proc = subprocess.Popen([LOSSD, "serve", "--socket", sock, "--db", db, "--workers", "1"],
                                stdout=log, stderr=subprocess.STDOUT)
        up = False
        for _ in range(600):
            if proc.poll() is not None:
                break
            try:
                c = Conn(sock, timeout=5)
                r = c.call("server.hello")
                c.close()
                up = "result" in r
                if up:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        if not up:
            log.flush()
            bad("daemon starts", open(os.path.join(tmp, "daemon.log")).read()[-2000:])
            return
        ok("daemon starts and answers server.hello")
        run_tests(sock, proc)
        run_exactness_tests(sock)
        run_hostile_data_tests(sock, tmp)
        run_pipelining_test(sock)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=30)
                check("SIGTERM at the end: the daemon exits 0", rc == 0, "exit %s" % rc)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                bad("SIGTERM at the end: the daemon exits", "it did not within 30 s")
        log.close()
        if lib.failed:
            try:
                print("---- daemon log (tail)")
                print(open(os.path.join(tmp, "daemon.log")).read()[-3000:])
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


def raw_call(sock, line):
    """Sends one raw request line; returns the raw reply line (bytes, without newline)."""
    c = Conn(sock)
    c.send_raw(line + b"\n")
    while b"\n" not in c.buf:
        chunk = c.s.recv(65536)
        if not chunk:
            break
        c.buf += chunk
    c.close()
    return c.buf.split(b"\n", 1)[0]


def run_exactness_tests(sock):
    """Issue 16: ids byte for byte, numbers that round-trip, strings with NUL or invalid UTF-8
    refused naming where, long problem messages kept, a 1 MiB line with CRLF."""
    for rid in (b"9007199254740993", b"1e400", b"12345678901234567890123", b"-0", b'"\\u00e9"'):
        out = raw_call(sock, b'{"jsonrpc":"2.0","id":' + rid + b',"method":"server.hello"}')
        check("id %s is echoed byte for byte" % rid.decode(), out.startswith(
            b'{"jsonrpc":"2.0","id":' + rid + b","), out[:200])
    out = raw_call(sock, b'{"jsonrpc":"2.0","id":1,"method":"server.status\\u0000x"}')
    r = json.loads(out)
    check("a method name with \\u0000 is refused, naming the method",
          err_code(r) == -32600 and "method: a string holding a NUL" in err_msg(r), r)
    job = {"name": "a\u0000b", "tasks": [{"data": "builtin:digits"}]}
    c = Conn(sock)
    r = c.call("job.submit", {"job": job})
    check("a job name with \\u0000 is refused, naming params.job.name",
          err_code(r) == -32602 and "params.job.name: a string holding a NUL" in err_msg(r), r)
    c.close()
    out = raw_call(sock, b'{"jsonrpc":"2.0","id":1,"method":"job.submit","params":{"job":'
                   b'{"name":"\xff\xfe","tasks":[]}}}')
    r = json.loads(out)
    check("a job name that is not UTF-8 is refused, naming params.job.name",
          err_code(r) == -32602 and "params.job.name: a string that is not valid UTF-8" in err_msg(r),
          out[:300])
    c = Conn(sock)
    r = c.call("job.submit", {"job": {"tasks": [{"data": "builtin:digits"}], "k" * 300: 1}})
    m = err_msg(r)
    check("a problem message over 256 bytes is kept (cut), not replaced by '(and 1 more)'",
          err_code(r) == -32602 and "kkkkkkkk" in m and "(and 1 more)" not in m, r)
    # the cut never splits a character: a 300-character key of two-byte letters
    r = c.call("job.submit", {"job": {"tasks": [{"data": "builtin:digits"}], "\u00e9" * 300: 1}})
    check("... and cutting it keeps whole UTF-8 characters", err_code(r) == -32602 and "\u00e9\u00e9" in err_msg(r), r)
    c.close()
    # A line of exactly 1 MiB (without CR LF) ending in CR LF: the CR is ignored, as documented.
    c = Conn(sock)
    head = b'{"jsonrpc":"2.0","id":3,"method":"server.hello","params":{"pad":"'
    tail = b'"}}'
    line = head + b"y" * ((1 << 20) - len(head) - len(tail)) + tail
    c.send_raw(line + b"\r\n")
    try:
        r = c.reply()
        check("a line of exactly 1 MiB ending in CR LF is served", r.get("id") == 3 and "result" in r, r)
    except (EOFError, OSError) as e:
        bad("a line of exactly 1 MiB ending in CR LF is served", e)
    c.close()


def run_hostile_data_tests(sock, tmp):
    """A task whose data is a FIFO named x.csv, or a 1 GB (sparse) file: refused at once with a
    clear error, and the daemon keeps serving (the FIFO used to freeze every client)."""
    fifo = os.path.join(tmp, "x.csv")
    os.mkfifo(fifo)
    big = os.path.join(tmp, "big.csv")
    with open(big, "wb") as f:
        f.truncate(1 << 30)
    c = Conn(sock, timeout=20)
    try:
        r = c.call("job.submit", {"job": {"tasks": [{"data": fifo}]}})
        check("a FIFO named x.csv as data: refused, not a freeze",
              err_code(r) == -32602 and "not a regular file" in err_msg(r), r)
        r = c.call("job.submit", {"job": {"tasks": [{"data": big}]}})
        check("a 1 GB data file: refused with the documented limit",
              err_code(r) == -32602 and "more than the 256 MiB" in err_msg(r), r)
        r = c.call("server.status")
        check("... and the daemon serves", "result" in r, r)
    except (OSError, EOFError) as e:
        bad("a FIFO or a 1 GB file as data", e)
    c.close()
    os.unlink(big)
    # the same rule for a job file given to lossd search
    jf = os.path.join(tmp, "nul.job.json")
    with open(jf, "w") as f:
        f.write('{"name":"a\\u0000b","tasks":[{"data":"builtin:digits"}]}')
    p = subprocess.run([LOSSD, "search", jf], capture_output=True, text=True, timeout=60)
    check("lossd search: a job file with \\u0000 in a name is refused, naming it",
          p.returncode == 2 and "name: a string holding a NUL" in p.stderr, p.returncode, p.stderr)


def run_pipelining_test(sock):
    """2,000 pipelined requests with ~20 KB replies each (40 MB in all, 5x the output bound; one
    64 KB read holds ~750 of them), read as fast as the client can: every one is answered, the
    client is slowed, never dropped. The replies: candidate.get of a baseline evaluated 30 times."""
    c = Conn(sock, timeout=120)
    r = c.call("job.submit", {"job": {"name": "big-replies",
                                      "tasks": [{"data": "builtin:digits", "train": {"steps": 30}}],
                                      "budget": {"evaluations": 30}, "seeds": 3, "population": 4,
                                      "children": 2, "final": {"top": 2, "seeds": 10}}})
    if "result" not in r:
        bad("pipelining: the job is accepted", r)
        return
    jid = r["result"]["job_id"]
    t_end = time.time() + 300
    while time.time() < t_end:
        g = c.call("job.get", {"job_id": jid})
        if g.get("result", {}).get("state") in ("done", "failed", "cancelled"):
            break
        time.sleep(0.2)
    probe = c.call("candidate.get", {"job_id": jid, "cand": 0}, rid=7)
    size = len(json.dumps(probe))
    n = 2000
    reqs = b"".join((json.dumps({"jsonrpc": "2.0", "id": i, "method": "candidate.get",
                                 "params": {"job_id": jid, "cand": 0}}) + "\n").encode()
                    for i in range(n))
    got = set()
    err = None

    def sender():
        try:
            c.s.sendall(reqs)
        except OSError:
            pass

    th = threading.Thread(target=sender)
    th.start()
    try:
        while len(got) < n:
            m = c.line()
            if "id" in m and "result" in m:
                got.add(m["id"])
    except (EOFError, OSError, ValueError) as e:
        err = e
    th.join(timeout=60)
    check("2,000 pipelined requests with %d-byte replies are all answered (backpressure, no drop)"
          % size, len(got) == n and size > 10000, "%d of %d answered; %s" % (len(got), n, err))
    c.close()


def run_tests(sock, proc):
    # ---- malformed JSON: -32700 and the connection still serves ---------------------------
    c = Conn(sock)
    c.send_raw(b'{"jsonrpc": "2.0", "id": 1, "method": \n')
    r = c.reply()
    check("malformed JSON gets -32700 with id null", err_code(r) == -32700 and r.get("id") is None,
          r)
    r = c.call("server.status", rid=2)
    check("the connection still serves the next line", "result" in r and r.get("id") == 2, r)
    c.send_raw(b"\xff\xfe garbage \x00\n")
    r = c.reply()
    check("binary garbage gets -32700", err_code(r) == -32700, r)
    c.send_raw(b"\r\n\n")  # empty lines are skipped, not answered
    r = c.call("server.hello", rid=3)
    check("empty lines are ignored", r.get("id") == 3 and "result" in r, r)
    c.close()

    # ---- invalid request shapes: -32600 ----------------------------------------------------
    shapes = [
        ("an array (batch)", [{"jsonrpc": "2.0", "id": 1, "method": "server.hello"}]),
        ("a number", 42),
        ("a string", "hello"),
        ("no jsonrpc member", {"id": 1, "method": "server.hello"}),
        ("jsonrpc 1.0", {"jsonrpc": "1.0", "id": 1, "method": "server.hello"}),
        ("method a number", {"jsonrpc": "2.0", "id": 1, "method": 7}),
        ("no method", {"jsonrpc": "2.0", "id": 1}),
        ("id an object", {"jsonrpc": "2.0", "id": {"a": 1}, "method": "server.hello"}),
        ("params an array", {"jsonrpc": "2.0", "id": 1, "method": "job.get", "params": [1]}),
        ("params a string", {"jsonrpc": "2.0", "id": 1, "method": "job.get", "params": "x"}),
    ]
    c = Conn(sock)
    for name, obj in shapes:
        c.send(obj)
        r = c.reply()
        check("invalid request (%s) gets -32600" % name, err_code(r) == -32600, r)
    r = c.call("server.status", rid=99)
    check("the connection survives invalid requests", r.get("id") == 99 and "result" in r, r)

    # ---- unknown method, wrong params ------------------------------------------------------
    r = c.call("job.frobnicate", rid=5)
    check("unknown method gets -32601 naming it",
          err_code(r) == -32601 and "job.frobnicate" in err_msg(r) and r.get("id") == 5, r)
    r = c.call("job.get", {"job_id": "1"}, rid="s1")
    check("job_id as a string gets -32602 naming the field",
          err_code(r) == -32602 and "job_id" in err_msg(r) and r.get("id") == "s1", r)
    r = c.call("job.get", {"job_id": 1.5})
    check("job_id 1.5 gets -32602", err_code(r) == -32602 and "job_id" in err_msg(r), r)
    r = c.call("job.get", {})
    check("job_id missing gets -32602 naming it",
          err_code(r) == -32602 and "job_id" in err_msg(r), r)
    r = c.call("job.submit", {"job": "not an object"})
    check("job.submit job as a string gets -32602 naming it",
          err_code(r) == -32602 and "job" in err_msg(r), r)
    r = c.call("job.submit", {"job": {"budget": {"evaluations": -1}}})
    check("an invalid job gets -32602 naming every problem",
          err_code(r) == -32602 and "tasks" in err_msg(r) and "budget" in err_msg(r), r)
    r = c.call("leaderboard.query", {"job_id": 1, "k": "ten"})
    check("leaderboard k as a string gets -32602", err_code(r) == -32602 and "k" in err_msg(r), r)
    r = c.call("candidate.export", {"job_id": 1, "cand": 1, "format": 3})
    check("export format as a number gets -32602",
          err_code(r) == -32602 and "format" in err_msg(r), r)
    r = c.call("job.get", {"job_id": 424242})
    check("unknown job gets -32001", err_code(r) == -32001 and "424242" in err_msg(r), r)
    r = c.call("job.pause", {"job_id": 424242})
    check("pausing an unknown job gets -32001", err_code(r) == -32001, r)
    # A notification (no id) is never answered: the next reply is for the next request.
    c.send({"jsonrpc": "2.0", "method": "server.status"})
    r = c.call("server.hello", rid=77)
    check("a notification gets no reply", r.get("id") == 77, r)
    # Replies keep request order on one connection.
    c.send_raw(b"".join((json.dumps({"jsonrpc": "2.0", "id": i, "method": "server.status"}) +
                         "\n").encode() for i in range(100, 150)))
    ids = [c.reply().get("id") for _ in range(50)]
    check("50 pipelined requests get replies in order", ids == list(range(100, 150)), ids)
    c.close()

    # ---- a line over 1 MiB is refused --------------------------------------------------------
    c = Conn(sock)
    big = b'{"jsonrpc":"2.0","id":1,"method":"server.hello","params":{"pad":"' + \
        b"x" * (1 << 20) + b'"}}\n'
    try:
        c.send_raw(big)
    except OSError:
        pass  # the server may close before reading everything
    try:
        r = c.reply()
        check("a line over 1 MiB gets -32600", err_code(r) == -32600 and r.get("id") is None, r)
    except (EOFError, OSError) as e:
        bad("a line over 1 MiB gets -32600", "no reply: %s" % e)
    try:
        more = c.s.recv(100)
        closed = more == b""
    except OSError:
        closed = True
    check("... and the connection is closed", closed)
    c.close()
    # A line of exactly 1 MiB (without its newline) is allowed.
    c = Conn(sock)
    head = b'{"jsonrpc":"2.0","id":2,"method":"server.hello","params":{"pad":"'
    tail = b'"}}'
    line = head + b"y" * ((1 << 20) - len(head) - len(tail)) + tail
    c.send_raw(line + b"\n")
    try:
        r = c.reply()
        check("a line of exactly 1 MiB is served", r.get("id") == 2 and "result" in r, r)
    except (EOFError, OSError) as e:
        bad("a line of exactly 1 MiB is served", e)
    c.close()

    # ---- half a line, then disconnect ---------------------------------------------------------
    for _ in range(5):
        c = Conn(sock)
        c.send_raw(b'{"jsonrpc":"2.0","id":1,"meth')
        c.close()
    c = Conn(sock)
    r = c.call("server.status")
    check("clients that send half a line and leave do no harm", "result" in r, r)
    c.close()

    # ---- a client that never reads its replies ------------------------------------------------
    flood = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    flood.connect(sock)
    flood.setblocking(False)
    req = (json.dumps({"jsonrpc": "2.0", "id": 1, "method": "server.status"}) + "\n").encode()
    chunk = req * 2000
    sent = 0
    t_end = time.time() + 20  # bounded effort, not an assertion
    while sent < 64 * len(chunk) and time.time() < t_end:
        try:
            sent += flood.send(chunk)
        except BlockingIOError:
            # the server stopped reading from us (backpressure): others must still be served
            break
        except OSError:
            break  # the server dropped us: allowed
    other = Conn(sock, timeout=30)
    r = other.call("server.status", rid=11)
    check("a client that floods requests without reading does not stall others",
          r.get("id") == 11 and "result" in r, r)
    other.close()
    flood.close()
    c = Conn(sock)
    r = c.call("server.hello")
    check("after the flooder closes the daemon still serves", "result" in r, r)
    c.close()

    # ---- 200 concurrent clients ------------------------------------------------------------
    results = []
    lock = threading.Lock()
    start = threading.Barrier(200)

    def worker(i):
        res = "?"
        try:
            start.wait(timeout=60)
            cc = Conn(sock, timeout=120)
            a = cc.call("server.hello", {"client": "t%d" % i}, rid=1)
            b = cc.call("server.status", rid=2)
            cc.close()
            res = "ok" if "result" in a and "result" in b and b.get("id") == 2 else repr((a, b))
        except Exception as e:  # noqa: BLE001 - any failure is a test failure
            res = "%s: %s" % (type(e).__name__, e)
        with lock:
            results.append(res)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    nok = sum(1 for r in results if r == "ok")
    errors = sorted(set(r for r in results if r != "ok"))
    check("200 concurrent clients each get hello and status answered", nok == 200,
          "%d of 200 ok" % nok, *errors[:5])

    # ---- events.subscribe: stored events, then live ones ------------------------------------
    sub = Conn(sock)
    r = sub.call("events.subscribe", {"since": 0}, rid=1)
    res = r.get("result") or {}
    check("events.subscribe replies subscribed with last_seq",
          res.get("subscribed") is True and isinstance(res.get("last_seq"), int), r)
    other = Conn(sock)
    job = {"name": "events", "tasks": [{"data": "builtin:digits", "train": {"steps": 20}}],
           "budget": {"evaluations": 4}, "population": 2, "children": 2, "seeds": 1,
           "fidelity": {"steps": [20]}, "final": {"top": 0, "seeds": 2}}
    r = other.call("job.submit", {"job": job}, rid=2)
    jid = (r.get("result") or {}).get("job_id")
    check("job.submit over the socket", isinstance(jid, int), r)
    other.close()
    seen, seqs, kinds = [], [], []
    try:
        while True:  # ends at the job's final state (the socket timeout bounds a hang)
            m = sub.line()
            if m.get("method") != "event":
                continue
            ev = m.get("params") or {}
            seqs.append(ev.get("seq"))
            kinds.append(ev.get("kind"))
            if ev.get("job_id") == jid:
                seen.append(ev)
                if ev.get("kind") == "job.state" and \
                        (ev.get("data") or {}).get("state") in ("done", "failed", "cancelled"):
                    break
    except (OSError, EOFError) as e:
        bad("events arrive until the job ends", "%s; kinds so far: %s" % (e, kinds))
    mine = [e.get("kind") for e in seen]
    check("stored events come first (server.start)", "server.start" in kinds, kinds[:10])
    check("live events for the job: submitted, state changes, done",
          "job.submitted" in mine and "job.state" in mine and
          (seen[-1].get("data") or {}).get("state") == "done" if seen else False, mine)
    check("event seqs strictly increase",
          all(isinstance(a, int) and isinstance(b, int) and a < b for a, b in zip(seqs, seqs[1:])),
          seqs)
    sub.close()

    # ---- still alive ---------------------------------------------------------------------------
    check("the daemon process is still running", proc.poll() is None, "exit %s" % proc.poll())
    c = Conn(sock)
    r = c.call("server.status")
    check("server.status works at the end", "result" in r, r)
    c.close()


if __name__ == "__main__":
    # A timeout's SIGTERM must still stop the daemon: turn it into SystemExit so main's
    # finally block runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    try:
        main()
    except Exception as e:  # noqa: BLE001 - report, never hide
        bad("test harness", "%s: %s" % (type(e).__name__, e))
    lib.finish()
