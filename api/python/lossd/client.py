"""client.py: the lossd daemon's JSON-RPC protocol (docs/protocol.md) from Python, standard
library only: one JSON object per line over the daemon's Unix socket."""
import copy
import json
import os
import socket as _socket
import time

__all__ = ["Client", "LossdError", "LossdConnectionError", "default_socket", "parse_candidate",
           "TERMINAL_STATES"]

#: Job states after which nothing changes any more.
TERMINAL_STATES = ("done", "failed", "cancelled", "expired")

# File names the daemon would open: made absolute before a job leaves this process, as lossctl
# does (api/client.c, looks_like_file), so they do not depend on the daemon's directory.
_FILE_EXTS = (".csv", ".npy", ".npz", ".json", ".tsv", ".txt")


class LossdError(Exception):
    """An error the daemon answered with: the JSON-RPC error's code, message and data.

    Codes (docs/protocol.md): -32700 parse error, -32600 invalid request, -32601 method not
    found, -32602 invalid params, -32603 internal error, -32001 not found, -32002 invalid
    state, -32003 busy, -32004 permission denied."""

    def __init__(self, code, message, data=None, method=None):
        self.code = code
        self.message = message
        self.data = data
        self.method = method
        where = "%s: " % method if method else ""
        super().__init__("%s%s (code %s)" % (where, message, code))


class LossdConnectionError(ConnectionError):
    """The daemon could not be reached, or the connection broke mid-call."""


def default_socket():
    """The socket lossctl uses when none is given (api/client.c, client_default_socket):
    $LOSSD_SOCKET, else $XDG_RUNTIME_DIR/lossd.sock, else /tmp/lossd-$UID.sock."""
    env = os.environ.get("LOSSD_SOCKET")
    if env:
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "lossd.sock")
    return "/tmp/lossd-%d.sock" % os.getuid()


def parse_candidate(entry):
    """(job_id, cand) of a candidate named as "3:17", (3, 17), or a dict with job_id and cand
    (a leaderboard entry of Client.leaderboard)."""
    if isinstance(entry, str):
        job, sep, cand = entry.partition(":")
        if sep and job.strip().isdigit() and cand.strip().isdigit():
            return int(job), int(cand)
        raise ValueError("a candidate is named JOB:CAND (e.g. 3:17), not %r" % entry)
    if isinstance(entry, dict):
        if "job_id" in entry and "cand" in entry:
            return int(entry["job_id"]), int(entry["cand"])
        raise ValueError("a candidate dict needs job_id and cand")
    if isinstance(entry, (tuple, list)) and len(entry) == 2:
        return int(entry[0]), int(entry[1])
    raise ValueError("a candidate is 'JOB:CAND', (job, cand) or a leaderboard entry")


def _looks_like_file(s):
    return (bool(s) and not s.startswith("builtin:") and "\n" not in s
            and any(len(s) > len(e) and s.lower().endswith(e) for e in _FILE_EXTS))


def _resolve_paths(node, base_dir):
    """node with every relative file name that exists under base_dir made absolute (a copy)."""
    if isinstance(node, dict):
        return {k: _resolve_paths(v, base_dir) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_paths(v, base_dir) for v in node]
    if isinstance(node, str) and not node.startswith("/") and _looks_like_file(node):
        path = os.path.join(base_dir, node)
        if os.path.exists(path):
            return os.path.realpath(path)
    return node


def _load_job(job):
    """(job dict, base_dir) of a job given as a dict, a JSON file name or a path-like object."""
    if isinstance(job, dict):
        return copy.deepcopy(job), os.getcwd()
    if isinstance(job, (str, os.PathLike)):
        path = os.fspath(job)
        with open(path, encoding="utf-8") as f:
            try:
                obj = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError("%s:%d:%d: not valid JSON: %s" % (path, e.lineno, e.colno, e.msg))
        if not isinstance(obj, dict):
            raise ValueError("%s: a job must be a JSON object" % path)
        return obj, os.path.dirname(os.path.realpath(path))
    raise TypeError("a job is a dict or the name of a JSON file, not %s" % type(job).__name__)


class _Conn:
    """One connection: requests out, replies and notifications in, one line each."""

    def __init__(self, path, timeout):
        self.path = path
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.timeout_default = timeout
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError as e:
            self.sock.close()
            raise LossdConnectionError("cannot reach lossd at %s: %s (is `lossd serve` running?)"
                                       % (path, e.strerror or e)) from None
        self.buf = b""
        self.next_id = 1
        self.pending = []  # notifications that arrived while a call waited

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, method, params):
        rid = self.next_id
        self.next_id += 1
        req = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params:
            req["params"] = params
        line = json.dumps(req, separators=(",", ":"), allow_nan=False) + "\n"
        try:
            self.sock.sendall(line.encode("utf-8"))
        except OSError as e:
            raise LossdConnectionError("lossd at %s: %s" % (self.path, e)) from None
        return rid

    def message(self, timeout=None):
        """The next message; None when timeout (seconds) passes first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self.buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(1 << 16)
            except _socket.timeout:
                if deadline is not None:
                    return None
                raise LossdConnectionError("lossd at %s: no reply in time" % self.path) from None
            except OSError as e:
                raise LossdConnectionError("lossd at %s: %s" % (self.path, e)) from None
            finally:
                if deadline is not None:
                    self.sock.settimeout(self.timeout_default)
            if not chunk:
                raise LossdConnectionError("lossd at %s closed the connection" % self.path)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            raise LossdConnectionError("lossd sent a line that is not JSON: %r" % line[:200])

    def call(self, method, params):
        rid = self.send(method, params)
        while True:
            m = self.message()
            if not isinstance(m, dict):
                continue
            if "id" not in m and "method" in m:
                self.pending.append(m)
                continue
            if m.get("id") != rid:
                continue
            err = m.get("error")
            if err is not None:
                raise LossdError(err.get("code"), err.get("message", ""), err.get("data"), method)
            return m.get("result")


class Client:
    """A client of one lossd daemon.

    socket: the daemon's socket path (default: as lossctl finds it, see default_socket()).
    timeout: seconds to wait for a reply (None: forever).

    Every method sends one JSON-RPC request and returns the daemon's result as plain Python
    values (dicts, lists, numbers, strings); an error reply raises LossdError with the error's
    code, message and data. The connection opens on the first call and is reused; a Client is
    not for use from several threads at once (make one per thread). Use as a context manager
    or call close()."""

    def __init__(self, socket=None, timeout=60.0):
        self.socket = os.fspath(socket) if socket is not None else default_socket()
        self.timeout = timeout
        self._conn = None

    # ---- plumbing ------------------------------------------------------------------------

    def _connect(self):
        return _Conn(self.socket, self.timeout)

    def close(self):
        """Closes the connection (the next call opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "lossd.Client(socket=%r)" % self.socket

    def call(self, method, **params):
        """Any method by name, with its params as keyword arguments (None values are left
        out); returns the raw result. E.g. call("job.get", job_id=3)."""
        params = {k: v for k, v in params.items() if v is not None}
        if self._conn is None:
            self._conn = self._connect()
        try:
            return self._conn.call(method, params)
        except LossdConnectionError:
            self.close()
            raise

    # ---- the server ------------------------------------------------------------------------

    def hello(self, client="lossd-python"):
        """server.hello: version, protocol, capabilities and the methods the server answers."""
        return self.call("server.hello", client=client)

    def status(self):
        """server.status: workers, queue, evaluation rate, job counts, database."""
        return self.call("server.status")

    def shutdown(self):
        """server.shutdown: the daemon finishes running evaluations and exits."""
        return self.call("server.shutdown")

    # ---- jobs ------------------------------------------------------------------------------

    def submit(self, job, client_token=None, priority=None):
        """Submits a search job (docs/jobs.md): a dict, or the name of a JSON job file. Relative
        data file names are made absolute first: against the file's folder for a file, against
        the current directory for a dict. client_token makes the submission idempotent.
        Returns the job id (int)."""
        spec, base = _load_job(job)
        spec = _resolve_paths(spec, base)
        res = self.call("job.submit", job=spec, client_token=client_token, priority=priority,
                        base_dir=base)
        return int(res["job_id"])

    def job(self, job_id):
        """job.get: the job summary with its spec, stats and tasks."""
        return self.call("job.get", job_id=int(job_id))

    def jobs(self, state=None):
        """job.list: job summaries, newest first (optionally only those in one state)."""
        return self.call("job.list", state=state)["jobs"]

    def cancel(self, job_id):
        """job.cancel; returns the job summary."""
        return self.call("job.cancel", job_id=int(job_id))

    def pause(self, job_id):
        """job.pause; returns the job summary."""
        return self.call("job.pause", job_id=int(job_id))

    def resume(self, job_id):
        """job.resume; returns the job summary."""
        return self.call("job.resume", job_id=int(job_id))

    def finish(self, job_id):
        """job.finish: ends the job's search phase (no more search rounds, no more proposals);
        the final re-evaluation runs, then the job is done. For an evaluate-only job, the way to
        say "that was my last proposal". Returns the job summary."""
        return self.call("job.finish", job_id=int(job_id))

    def propose(self, job_id, exprs, source=None, note=None):
        """candidate.propose: hands loss expressions (a string or a list of them) to a queued,
        running or paused job. Returns the reply: {job_id, round, point, accepted, duplicates,
        refused, proposals}, one proposal per expression, in order, each {expr, status, ...}:
        "accepted" with cand (the new candidate, trained from the job's next round), "duplicate"
        with cand (the candidate it repeats), of_expr and why ("same canonical form" or "same
        gradient signature"), or "refused" with stage (parse, check, limits, budget, precheck)
        and error (the parser's or checker's message). source (default "user") labels them:
        their leaderboard origin is "proposed:<source>"; note is stored with them."""
        if isinstance(exprs, str):
            exprs = [exprs]
        return self.call("candidate.propose", job_id=int(job_id), exprs=[str(e) for e in exprs],
                         source=source, note=note)

    def watch(self, job_id, timeout=None):
        """Follows a job until it ends, as an iterator of progress events (dicts).

        The first event is a snapshot, {"kind": "job.snapshot", "job_id", "data": the job
        summary of job.get}; then the daemon's events about this job as they happen (docs/
        protocol.md: "job.round" with data round, evaluations, budget, best_fitness, best_expr;
        "job.best" with cand, expr, fitness; "job.state" with state and from), each with "seq",
        "kind", "job_id", "time_s" and "data". The iterator ends after the event that puts the
        job in a terminal state (done, failed, cancelled or expired), or at once when the snapshot is
        already terminal. timeout (seconds) bounds the wait for each next event
        (LossdConnectionError when it passes). Uses its own connection."""
        job_id = int(job_id)
        conn = self._connect()
        try:
            conn.call("events.subscribe", {})  # only new events: the snapshot covers the past
            snap = conn.call("job.get", {"job_id": job_id})
            yield {"kind": "job.snapshot", "job_id": job_id, "time_s": time.time(), "data": snap}
            if snap.get("state") in TERMINAL_STATES:
                return
            while True:
                if conn.pending:
                    m = conn.pending.pop(0)
                else:
                    m = conn.message(timeout)
                    if m is None:
                        raise LossdConnectionError("job %d: no event in %s s" % (job_id, timeout))
                if not isinstance(m, dict) or m.get("method") != "event":
                    continue
                ev = m.get("params") or {}
                if ev.get("job_id") != job_id:
                    continue
                yield ev
                data = ev.get("data") or {}
                if ev.get("kind") == "job.state" and data.get("state") in TERMINAL_STATES:
                    return
        finally:
            conn.close()

    def wait(self, job_id, timeout=None):
        """Waits until the job ends; returns its final summary (job.get)."""
        for _ in self.watch(job_id, timeout=timeout):
            pass
        return self.job(job_id)

    # ---- results ---------------------------------------------------------------------------

    def leaderboard(self, job_id=None, top=10, metric=None, family=None, as_frame=False):
        """leaderboard.query: the best candidates of a job (job_id) or of every job of a family
        (family=...), best first, as a list of plain dicts; each entry of a job's leaderboard
        carries its job_id, so it can be passed to export() or candidate(). Everything is what the
        daemon's store computed (ranks, mean, spread: the sample standard deviation of the runs,
        None for one run); nothing is recomputed here. The list's .baseline is the reply's
        baseline row (with its rank, or rank None) when the job's baseline is not among the
        entries, else None (lossctl prints it under the table); .metric and .higher_better say
        what "mean" reads and its direction.

        as_frame=True returns a pandas DataFrame instead (pandas must be importable): one row
        per entry with rank, job_id, cand, expr, fitness, mean, spread, size, op, origin
        (search, seed, warm or proposed:<source>), and one
        column per task and metric ("digits.accuracy" the mean, "digits.accuracy.test" the
        test mean)."""
        if (job_id is None) == (family is None):
            raise ValueError("leaderboard: give job_id or family (one of them)")
        res = self.call("leaderboard.query", job_id=None if job_id is None else int(job_id),
                        family=family, k=int(top), metric=metric)
        entries = Leaderboard(res.get("entries", []))
        entries.baseline = res.get("baseline")
        entries.metric = res.get("metric")
        entries.higher_better = res.get("higher_better")
        if job_id is not None:
            for e in entries + ([entries.baseline] if entries.baseline else []):
                e.setdefault("job_id", int(job_id))
        if not as_frame:
            return entries
        try:
            import pandas
        except ImportError:
            raise ImportError("leaderboard(as_frame=True) needs pandas "
                              "(apt-get install python3-pandas)") from None
        return pandas.DataFrame([flatten_entry(e) for e in entries])

    def candidate(self, entry):
        """candidate.get: a candidate's expression, lineage and every evaluation (with curves).
        entry: "JOB:CAND", (job, cand) or a leaderboard entry."""
        job, cand = parse_candidate(entry)
        return self.call("candidate.get", job_id=job, cand=cand)

    def export(self, entry=None, as_="pytorch", expr=None, family=None):
        """candidate.export: a candidate as source code (as_: pytorch, numpy, latex or expr);
        returns the text. entry: "JOB:CAND", (job, cand) or a leaderboard entry; or no entry
        and expr=... with family=... to export any expression."""
        if entry is None:
            if expr is None or family is None:
                raise ValueError("export: give a candidate, or expr and family")
            res = self.call("candidate.export", expr=expr, family=family, format=as_)
        else:
            job, cand = parse_candidate(entry)
            res = self.call("candidate.export", job_id=job, cand=cand, format=as_)
        return res["text"]

    def events(self, since=None, timeout=None):
        """events.subscribe: every stored event after seq `since` (None: only new ones), then
        live ones, as an iterator of event dicts that never ends by itself (timeout: seconds to
        wait for each; None forever). Uses its own connection."""
        conn = self._connect()
        try:
            conn.call("events.subscribe", {} if since is None else {"since": int(since)})
            while True:
                m = conn.pending.pop(0) if conn.pending else conn.message(timeout)
                if m is None:
                    return
                if isinstance(m, dict) and m.get("method") == "event":
                    yield m.get("params") or {}
        finally:
            conn.close()

    # ---- schedules (docs/schedules.md) -----------------------------------------------------

    def schedule_create(self, cron, job, tz=None, name=None, until=None, catch_up=None,
                        concurrency=None):
        """schedule.create: fires `job` (a dict or a JSON file name) on the cron expression
        (tz: an IANA zone; until "HH:MM"; catch_up "skip"|"once"; concurrency
        "forbid"|"allow"). Returns the result: schedule_id and next_runs."""
        spec, base = _load_job(job)
        spec = _resolve_paths(spec, base)
        return self.call("schedule.create", cron=cron, job=spec, tz=tz, name=name, until=until,
                         catch_up=catch_up, concurrency=concurrency)

    def schedules(self):
        """schedule.list: every schedule."""
        return self.call("schedule.list")["schedules"]

    def schedule(self, schedule_id):
        """schedule.get: a schedule, its next fires and its runs."""
        return self.call("schedule.get", schedule_id=int(schedule_id))

    def schedule_delete(self, schedule_id):
        """schedule.delete: removes the schedule (its jobs stay)."""
        return self.call("schedule.delete", schedule_id=int(schedule_id))

    def schedule_pause(self, schedule_id):
        """schedule.pause: stops firing."""
        return self.call("schedule.pause", schedule_id=int(schedule_id))

    def schedule_resume(self, schedule_id):
        """schedule.resume: fires again, from now on."""
        return self.call("schedule.resume", schedule_id=int(schedule_id))

    def schedule_trigger(self, schedule_id):
        """schedule.trigger: fires now; returns the new job's id."""
        return int(self.call("schedule.trigger", schedule_id=int(schedule_id))["job_id"])


class Leaderboard(list):
    """Client.leaderboard's entries, best first (a list), with the reply's .baseline row (None
    when the baseline is among the entries), .metric and .higher_better."""
    baseline = None
    metric = None
    higher_better = None


def flatten_entry(e):
    """One leaderboard entry as a flat dict (a DataFrame row): the scalar fields, and per task
    and metric the mean ("task.metric") and the test mean ("task.metric.test")."""
    row = {k: v for k, v in e.items() if not isinstance(v, (dict, list))}
    for task, metrics in (e.get("metrics") or {}).items():
        if not isinstance(metrics, dict):
            continue
        for name, m in metrics.items():
            if isinstance(m, dict):
                row["%s.%s" % (task, name)] = m.get("mean")
                row["%s.%s.test" % (task, name)] = m.get("test_mean")
            else:
                row["%s.%s" % (task, name)] = m
    return row
