"""lib.py: what the Python integration tests share (the counterpart of lib.sh): the binaries'
paths, pass/fail counters and the closing "N passed, N failed" line. tests/run.sh runs only
test_*, so this module is imported, never run.

    import lib
    lib.check("name", condition, detail...)
    ...
    lib.finish()          # prints the counts, exits non-zero when anything failed

A test of a running daemon: lib.run(prefix, body) gives body a fresh temporary directory;
lib.start(tmp, tag) starts `lossd serve` on it (Daemon: call, kill9, stop, logtext);
state, wait_state and board read a job over it, db_query reads the database file beside it.
"""
import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

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


class Conn:
    """One client connection to a daemon's socket, JSON-RPC 2.0 one message a line, with a line
    reader (buf holds what was read past the last line)."""

    def __init__(self, path, timeout=60):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""
        self.rid = 0

    def send_raw(self, data):
        self.s.sendall(data)

    def send(self, obj):
        self.send_raw((json.dumps(obj) + "\n").encode())

    def line(self):
        """The next message (raises EOFError when the daemon closed the connection)."""
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("connection closed")
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        return json.loads(ln)

    def reply(self):
        """The next message that is not a notification."""
        while True:
            m = self.line()
            if "method" not in m:
                return m

    def call(self, method, params=None, rid=None):
        """Sends a request with id rid (default: this connection's next number) and returns the
        next reply (notifications are skipped; a reply with another id is returned as it is)."""
        if rid is None:
            self.rid += 1
            rid = self.rid
        req = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            req["params"] = params
        self.send(req)
        return self.reply()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class Daemon:
    """lossd serve on dir/TAG.sock and the database db, with extra environment (LOSSD_FAULT and
    LOSSD_FAULT_FILE are taken out of the inherited one) and options (args), its log dir/TAG.log
    (appended to); connected (c, a Conn) once it answers server.hello, else c is None."""

    def __init__(self, d, db, env=None, tag="d", args=()):
        self.sock = os.path.join(d, tag + ".sock")
        self.db = db
        self.logpath = os.path.join(d, tag + ".log")
        e = dict(os.environ)
        e.pop("LOSSD_FAULT", None)
        e.pop("LOSSD_FAULT_FILE", None)
        e.update(env or {})
        self.log = open(self.logpath, "a")
        self.p = subprocess.Popen([LOSSD, "serve", "--socket", self.sock, "--db", db,
                                   "--workers", "2", *args], stdout=self.log,
                                  stderr=subprocess.STDOUT, env=e)
        self.c = None
        for _ in range(1200):  # up to 60 s
            if self.p.poll() is not None:
                break
            try:
                self.c = Conn(self.sock, timeout=30)
                self.c.call("server.hello")
                return
            except OSError:
                self.c = None
                time.sleep(0.05)

    def up(self):
        return self.c is not None

    def call(self, method, params=None):
        return self.c.call(method, params)

    def kill9(self):
        if self.c:
            self.c.close()
        self.p.kill()
        self.p.wait()
        self.log.close()

    def stop(self):
        if self.c:
            self.c.close()
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()

    def logtext(self):
        try:
            return open(self.logpath).read()
        except OSError:
            return ""


def start(tmp, tag, env=None, args=()):
    """A Daemon on tmp/TAG.db (socket tmp/TAG.sock), or None when it did not start; checked
    ("the daemon TAG starts", with its log's tail on a failure)."""
    d = Daemon(tmp, os.path.join(tmp, tag + ".db"), env, tag=tag, args=args)
    check("the daemon %s starts" % tag, d.up(), d.logtext()[-2000:])
    return d if d.up() else None


def state(d, jid):
    """job.get's result for job jid ({} on an error reply)."""
    r = d.call("job.get", {"job_id": jid})
    return r.get("result") or {}


def wait_state(d, jid, states, timeout=120):
    """Polls job jid until its state is one of states (at most timeout s); returns job.get's
    result last seen."""
    t_end = time.time() + timeout
    s = {}
    while time.time() < t_end:
        s = state(d, jid)
        if s.get("state") in states:
            return s
        time.sleep(0.05)
    return s


def board(d, jid, k=50):
    """Job jid's leaderboard as (candidate, expression, fitness) of each entry."""
    r = d.call("leaderboard.query", {"job_id": jid, "k": k})
    es = (r.get("result") or {}).get("entries") or []
    return [(e.get("cand"), e.get("expr"), e.get("fitness")) for e in es]


def db_query(db, sql, params=(), all_rows=False):
    """Reads the database file through a connection of its own (as another process would): the
    first row of sql, or every row with all_rows."""
    con = sqlite3.connect(db, timeout=10)
    try:
        cur = con.execute(sql, params)
        return cur.fetchall() if all_rows else cur.fetchone()
    finally:
        con.close()


def run(prefix, body):
    """Runs body(tmp) in a new temporary directory (removed after) and ends the test with
    finish(): an exception is a failure with its traceback, never a silent pass."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    try:
        body(tmp)
    except Exception as e:  # noqa: BLE001 - an exception is a failure, never a silent pass
        import traceback
        bad("the test itself raised %s" % type(e).__name__, traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        finish()


@contextlib.contextmanager
def serving(tmp, client, workers=2, name="d"):
    """Runs `lossd serve` on tmp/NAME.sock and tmp/NAME.db (its log: tmp/daemon.log); yields (process, socket path) once
    client(sock) answers hello, or (process, None) when the daemon exited. Stops it with SIGTERM
    (kill after 60 s); on a failure of the test the daemon's log tail is printed."""
    sock = os.path.join(tmp, name + ".sock")
    logpath = os.path.join(tmp, "daemon.log")
    log = open(logpath, "w")
    proc = subprocess.Popen([LOSSD, "serve", "--socket", sock, "--db", os.path.join(tmp, name + ".db"),
                             "--workers", str(workers)], stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        for _ in range(600):
            if proc.poll() is not None:
                break
            try:
                client(sock).hello()
                break
            except Exception:
                time.sleep(0.1)
        if proc.poll() is not None:
            bad("daemon starts", open(logpath).read()[-2000:])
            yield proc, None
        else:
            yield proc, sock
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        if failed:
            print("---- daemon log (tail)")
            print(open(logpath).read()[-3000:])


def _load(name, path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, path)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def exports_agree(folder, args, wrt, t=0.3, grad_tol=1e-5, relative=False, targets=()):
    """Checks lossctl's two exports of one loss against each other: folder/n.py (--as numpy) and
    folder/t.py (--as pytorch) give the same value at args (numpy arrays; within 1e-9 relative)
    and the same gradient with respect to args[i] for i in wrt (within grad_tol, times
    max(1, largest |gradient|) when relative); args[j] for j in targets (training targets) get
    no gradient. Raises AssertionError saying what differed; prints the value. Without torch
    only the numpy value is computed."""
    import numpy as np
    n = _load("n", os.path.join(folder, "n.py"))
    v = n.lossd_loss_value(*args, t=t)
    try:
        import torch
    except ImportError:
        print("numpy only:", v)
        return
    tm = _load("t", os.path.join(folder, "t.py"))
    tx = [torch.tensor(a, requires_grad=i in wrt) for i, a in enumerate(args)]
    tv = tm.lossd_loss(*tx, t=t)
    tv.backward()
    assert abs(float(tv) - v) < 1e-9 * max(1, abs(v)), (float(tv), v)
    for j in targets:
        assert tx[j].grad is None or float(tx[j].grad.abs().max()) == 0, "target %d: a gradient" % j
    g = np.asarray(n.lossd_grad(*args, t=t))
    tg = [tx[i].grad.numpy() if tx[i].grad is not None else np.zeros_like(args[i]) for i in wrt]
    tg = tg[0] if len(wrt) == 1 else np.stack(tg)
    scale = max(1, np.max(np.abs(g))) if relative else 1
    assert np.max(np.abs(g - tg)) < grad_tol * scale, np.max(np.abs(g - tg))
    print("torch and numpy agree:", float(tv))


def finish():
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
