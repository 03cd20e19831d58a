#!/usr/bin/env python3
"""docs_check.py: runs the command examples of README.md and docs/*.md and fails when one errors
or its documented output changed shape (issue 19: docs that are checked).

An example is a line "$ COMMAND" inside a fenced block; the lines after it, up to the next "$ "
line or the end of the block, are its documented output. For each example that can run here:
  - the exit status: non-zero when the documented output is an error line ("lossctl: ...",
    "lossd ...: ...", "FILE:LINE:COL: ..."), zero otherwise;
  - the shape of the output: a JSON line has at least the documented keys; text has the same
    lines (unless the block elides some with "..." or a vertical ellipsis) with the same words,
    numbers, paths and ids standing for any number, path or id;
  - a figure the example states in a comment, "# test mae 59.52" or "# mean test accuracy
    0.955", equals the program's to the digits written. "{0..2}" in a command runs it once per
    value and compares the mean.
A lossctl example runs against a real daemon (temporary socket and database) that first is put
in the state the file's examples describe (FIXTURES below: the documented job files and small
stand-ins in tests/docs_jobs/, submitted in the order that gives the documented job ids, waited
for until they are done, running, paused or failed as the examples assume). Before each daemon
example the checker waits until no job is queued and every running job has a best fitness, so
the states the output shows do not depend on timing. `lossctl watch` of a running job runs on a
terminal (a pty): its first progress line is checked, then Ctrl-C (exit 130) as a user would;
`lossctl shutdown` is followed by a restart on the same database; a "cannot connect" example runs
against a socket no daemon listens on; "$ echo $?" checks the previous example's exit status.
Examples run in a temporary folder holding examples/, data/ and tests/ (links), so files they
write stay there.
docs/protocol.md's ```json blocks (and its socat session) are transcripts: each documented
request is sent to the daemon in order and its reply compared (an error's code and message shape,
or the documented keys of the result); the daemon then holds cli.md's jobs (fixture_protocol).
Examples that run for minutes (a whole search) or are not lossd commands are counted as skipped
and listed with -v. Usage: tests/docs_check.py [--bin DIR] [-v] [--fast] [FILE.md ...]
(--fast: only the examples that need no daemon state; --update: write the program's output into
the files in place of the documented one: lines of text segment by segment, the numbers (and a
reply's strings) of documented JSON in place, keeping its layout and elisions).
Prints "N passed, N failed" last; exit status 1 when anything failed.
"""
import csv
import json
import os
import pty
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("DOCS_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ELLIPSIS = ("...", "⋮", "…")
DOCS_JOBS = os.path.join(ROOT, "tests", "docs_jobs")
# loss-language names an expression may hold without parentheses (functions are any name followed
# by "(")
LOSS_NAMES = set("ce focal hinge poly1 smooth mse mae huber logcosh infonce supcon phys bc l2 entropy rec bce_rec perc x xh "
                 "z p y pt f r t e".split())
# schedules.md's story: the schedule is created at 00:50 and fires at 01:00 on 2030-01-15 (UTC)
CLOCK_CREATED, CLOCK_FIRE = 1894668600, 1894669200


class FixtureError(Exception):
    pass


def examples(path):
    """Yields (line number, command, documented output lines) of one markdown file."""
    lines = open(path, encoding="utf-8").read().split("\n")
    in_block, cur = False, None
    for i, raw in enumerate(lines, 1):
        line = raw.strip() if raw.lstrip().startswith(("```", "$ ")) else raw
        if line.startswith("```"):
            if in_block and cur:
                yield cur
            in_block, cur = not in_block, None
            continue
        if not in_block:
            continue
        if line.startswith("$ "):
            if cur:
                yield cur
            cur = (i, line[2:], [])
        elif cur:
            cur[2].append(line)


def transcripts(path):
    """Yields (line number, [(line number, documented JSON value), ...]) for each ```json block
    of path holding a JSON-RPC request, and each session typed into socat: the protocol's own
    examples, request then reply."""
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        # a ```json block, or a session typed into socat (the "$ socat" line is not JSON)
        socat = lines[i].strip() == "```" and i + 1 < len(lines) and lines[i + 1].startswith("$ socat ")
        if lines[i].strip() != "```json" and not socat:
            i += 1
            continue
        start, values, acc, at = i + 1, [], "", None
        i += 2 if socat else 1
        while i < len(lines) and lines[i].strip() != "```":
            if lines[i].strip():
                if not acc:
                    at = i + 1
                acc += lines[i] + "\n"
                try:
                    values.append((at, DocJSON(acc.strip())))
                    values[-1][1].lines = (at, i + 1)  # its first and last line
                    acc = ""
                except ValueError:
                    pass  # a value written over several lines: read on
            i += 1
        if any(isinstance(v.value, dict) and "method" in v.value and "id" in v.value for _, v in values):
            yield start, values
        i += 1


def split_comment(cmd):
    """The command and its trailing '# comment' (outside quotes)."""
    q = None
    for k, ch in enumerate(cmd):
        if q:
            if ch == q:
                q = None
        elif ch in "'\"":
            q = ch
        elif ch == "#" and (k == 0 or cmd[k - 1] == " "):
            return cmd[:k].rstrip(), cmd[k + 1:].strip()
    return cmd, ""


def runnable(cmd):
    """'fast' when the example runs here in a moment without daemon state, 'daemon' when it needs
    the daemon holding the documented jobs, 'status' for "echo $?", else the reason it is skipped."""
    words = cmd.split()
    if not words:
        return "empty"
    if words == ["echo", "$?"]:
        return "status"
    words = lossd_part(cmd)
    prog = os.path.basename(words[0]) if words else ""
    rest = words[1:]
    if prog == "lossd":
        if not rest or rest[0] in ("help", "--help", "-h", "--version") or "--help" in rest or "-h" in rest:
            return "fast"
        if rest[0] == "eval" and ("--batch" not in rest or rest[rest.index("--batch") + 1:][:1] == ["-"]):
            return "fast"  # one run, or the runs piped into it
        if rest[0] == "search" and rest[1:2] and rest[1].startswith("tests/docs_jobs/"):
            return "fast"  # the docs' own small jobs end in a moment
        return "needs minutes (a whole search or a daemon)"
    if prog == "lossctl":
        if "--help" in rest or "-h" in rest or (rest and rest[0] == "help"):
            return "fast"
        if "--expr" in rest and "export" in rest:
            return "fast"  # an empty daemon answers it
        return "daemon"
    return "not a lossd command"


def lossd_part(cmd):
    """The words of the first part of a pipeline that runs lossd or lossctl ([] if none)."""
    for part in re.split(r"\s\|\s", cmd):
        words = part.split()
        if words and os.path.basename(words[0]) in ("lossd", "lossctl"):
            return words
    return []


def is_expression(cell):
    """A leaderboard, lineage or failures cell holding a loss expression: only loss-language
    names, numbers and operators, with at least one name."""
    if not re.fullmatch(r"[-+*/^().,0-9a-z_ ]+", cell):
        return False
    names = re.findall(r"[a-z_][a-z_0-9]*(\()?", cell)
    idents = re.findall(r"[a-z_][a-z_0-9]*", cell)
    if not idents:
        return False
    return all(i in LOSS_NAMES or call for i, call in zip(idents, names))


def is_latex(cell):
    """An expression exported as LaTeX: control words, numbers, operators and loss names."""
    toks = cell.split()
    return any("\\" in t for t in toks) and all(
        "\\" in t or t in LOSS_NAMES or re.fullmatch(r"[-+*/^()0-9.]+", t) for t in toks)


# the operations that made a candidate (docs/cli.md, "show"): they follow the search, not the format
OPS = set("baseline known seed warm random subtree point insert delete hoist const add_term remove_term "
          "crossover tune".split())


def token_shape(tok, ops):
    if tok.rstrip(",") == "-":
        return "N" + tok[1:]  # an empty value ("-" for no best yet, no spread of one run)
    if ops and tok in OPS:
        return "OP"
    if re.fullmatch(r"\|[^|]*\|", tok):
        return "BAR"
    if re.fullmatch(r"[┤▁▂▃▄▅▆▇█▌·#=.:|-]*[┤▁▂▃▄▅▆▇█▌]+[┤▁▂▃▄▅▆▇█▌·#=.:|-]*", tok):
        return "CHART"
    if "/" in tok and not re.fullmatch(r"[\d.:+\-()/,]+(final\))?", tok):
        return "PATH"
    if re.search(r"\d", tok):
        return "N" + ("," if tok.endswith(",") else "")
    return tok


def skeleton(line):
    """A line's shape: numbers, durations, ids, paths, progress bars, chart rows, candidates'
    operations and loss expressions (cells of loss-language or LaTeX text between runs of two
    spaces, or CSV fields) stand for any, so the shape follows the output's format and not what
    a search found."""
    line = line.strip()
    out = []
    if line.count(",") >= 5 and "  " not in line:  # a CSV row
        for field in next(csv.reader([line])):
            out.append("EXPR" if is_expression(field) and not re.fullmatch(r"[-+0-9.e]+", field)
                       else token_shape(field, True))
        return ",".join(out)
    ops = re.search(r"\b\d+:\d+\b", line) is not None  # a line naming a candidate
    for cell in re.split(r"\s{2,}", line):
        toks = cell.split()
        if is_latex(cell):
            shapes = ["TEX"]
        else:
            # the longest run of tokens at the cell's end that is a loss expression ("best 0.1 ce")
            k = next((k for k in range(len(toks)) if is_expression(" ".join(toks[k:]))), len(toks))
            shapes = [token_shape(t, ops) for t in toks[:k]] + (["EXPR"] if k < len(toks) else [])
        for sh in shapes:
            if not (out and sh in ("EXPR", "TEX", "CHART") and out[-1] == sh):
                out.append(sh)
    return " ".join(out)


class DocJSON:
    """A documented JSON value as written: elisions ("...", "[...]", "{...}", a trailing ", ...")
    allowed, and where each number's text sits (for --update)."""

    def __init__(self, text):
        self.text, self.i, self.numbers, self.strings = text, 0, [], []  # (start, end, path)
        self.value = self.parse(())
        self.ws()
        if self.i != len(text):
            raise ValueError("text after the value at %d" % self.i)

    def ws(self):
        while self.i < len(self.text) and self.text[self.i] in " \t\r\n":
            self.i += 1

    def elision(self):
        self.ws()
        for e in ELLIPSIS:
            if self.text.startswith(e, self.i):
                self.i += len(e)
                return True
        return False

    def parse(self, path):
        self.ws()
        t, i = self.text, self.i
        if t.startswith("{", i):
            self.i += 1
            out = {}
            while True:
                if self.elision():
                    pass
                self.ws()
                if t.startswith("}", self.i):
                    self.i += 1
                    return out
                m = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:').match(t, self.i)
                if not m:
                    raise ValueError("a key expected at %d" % self.i)
                key = json.loads('"%s"' % m.group(1))
                self.i = m.end()
                out[key] = self.parse(path + (key,))
                self.ws()
                if t.startswith(",", self.i):
                    self.i += 1
        if t.startswith("[", i):
            self.i += 1
            out = []
            while True:
                if self.elision():
                    out.append(Ellipsis)
                self.ws()
                if t.startswith("]", self.i):
                    self.i += 1
                    return [v for v in out if v is not Ellipsis]
                out.append(self.parse(path + (len(out),)))
                self.ws()
                if t.startswith(",", self.i):
                    self.i += 1
        if self.elision():
            return Ellipsis
        m = re.compile(r'"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null').match(t, i)
        if not m:
            raise ValueError("a value expected at %d" % i)
        self.i = m.end()
        if m.group(0)[0] in "-0123456789":
            self.numbers.append((m.start(), m.end(), path))
            return DocNumber(m.group(0))
        if m.group(0)[0] == '"' and m.group(0) not in ('"..."', '"…"'):
            self.strings.append((m.start(), m.end(), path))
        return json.loads(m.group(0))


class DocNumber(str):
    """A number as the docs write it (its digits say how exactly it is stated)."""


def plain(v):
    """A documented JSON value with its numbers as numbers again."""
    if isinstance(v, DocNumber):
        return json.loads(v)
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


# values that change from run to run (time, machine, process), never compared
VOLATILE = {"wall_ms", "wall_s", "search_overhead_s", "search_overhead_share", "elapsed_s", "rate",
            "evals_per_s", "created_s", "started_s", "finished_s", "uptime_s", "pid", "time_s"}


def json_diff(doc, got, path=""):
    """Where the printed JSON lacks a documented key, or (numbers=True) states a number other than
    the documented one to its digits; None when it agrees. Lists: element by element as far as
    both go."""
    if isinstance(doc, dict):
        if not isinstance(got, dict):
            return "%s: an object documented, %s printed" % (path or "the value", type(got).__name__)
        for k, v in doc.items():
            if k in ELLIPSIS:
                continue
            if k not in got:
                return "%s: documented key missing" % (path + "." + k).lstrip(".")
            d = json_diff(v, got[k], (path + "." + k).lstrip("."))
            if d:
                return d
    elif isinstance(doc, list):
        if not isinstance(got, list):
            return "%s: a list documented, %s printed" % (path, type(got).__name__)
        for k, (dv, gv) in enumerate(zip(doc, got)):
            d = json_diff(dv, gv, "%s[%d]" % (path, k))
            if d:
                return d
    return None


def number_diff(doc, got, path=""):
    """The first documented number (outside VOLATILE keys) the printed JSON states otherwise, to
    the documented digits."""
    if isinstance(doc, dict) and isinstance(got, dict):
        for k, v in doc.items():
            if k in got and k not in VOLATILE:
                d = number_diff(v, got[k], (path + "." + k).lstrip("."))
                if d:
                    return d
    elif isinstance(doc, list) and isinstance(got, list):
        for k, (dv, gv) in enumerate(zip(doc, got)):
            d = number_diff(dv, gv, "%s[%d]" % (path, k))
            if d:
                return d
    elif isinstance(doc, DocNumber) and isinstance(got, (int, float)) and not isinstance(got, bool):
        decimals = len(doc.split(".")[1]) if "." in doc and "e" not in doc.lower() else 0
        if "e" in doc.lower() or round(float(got), decimals) != round(float(doc), decimals):
            if "e" not in doc.lower() or abs(float(got) - float(doc)) > 1e-3 * abs(float(doc)):
                return "%s: documented %s, the program gives %s" % (path, doc, got)
    return None


def format_like(doc_text, value):
    """value written with as many decimals as doc_text has."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return doc_text
    if "e" in doc_text.lower():
        return "%.*g" % (max(1, len(re.sub(r"[^0-9]", "", doc_text.lower().split("e")[0]).lstrip("0"))), value)
    decimals = len(doc_text.split(".")[1]) if "." in doc_text else 0
    return "%.*f" % (decimals, value) if decimals else str(int(round(value)))


def lookup(value, path):
    for k in path:
        if isinstance(value, dict) and k in value:
            value = value[k]
        elif isinstance(value, list) and isinstance(k, int) and k < len(value):
            value = value[k]
        else:
            return None
    return value


def printed_json(got):
    """The last printed line that is a JSON object (progress lines on stderr come first), else
    the object printed over the last lines."""
    for l in reversed(got):
        try:
            v = json.loads(l)
        except ValueError:
            continue
        if isinstance(v, dict):
            return v
    for k, l in enumerate(got):  # an object printed over several lines
        if l.startswith("{"):
            try:
                return json.loads("\n".join(got[k:]))
            except ValueError:
                continue
    raise ValueError("no JSON object printed")


def is_error(doc):
    first = next((l for l in doc if l.strip()), "")
    return bool(re.match(r"(lossctl|lossd( \w+)?): ", first) or re.match(r"\S+:\d+:\d+: ", first) or
                re.match(r"\S+\.json: ", first))


def expand(cmd):
    """'{a..b}' runs the command once per value."""
    m = re.search(r"\{(\d+)\.\.(\d+)\}", cmd)
    if not m:
        return [cmd]
    return [cmd[:m.start()] + str(v) + cmd[m.end():] for v in range(int(m.group(1)), int(m.group(2)) + 1)]


def figure(comment):
    """'test mae 59.52' or 'mean test accuracy 0.955' -> (field, value text) or None."""
    m = re.fullmatch(r"(?:mean )?(test|val) [a-z_]+ (-?[0-9.]+)", comment)
    return (m.group(1), m.group(2)) if m else None


def segments(doc):
    """The documented lines split at elisions ("...", "⋮"): lists of (index in doc, line) of the
    non-blank lines, which must appear in order, the first at the start of the output and the
    last at its end (unless the block begins or ends with an elision)."""
    segs, cur = [], []
    for i, l in enumerate(doc):
        if l.strip() in ELLIPSIS or l.strip().startswith(ELLIPSIS):
            segs.append(cur)
            cur = []
        elif l.strip():
            cur.append((i, l))
    segs.append(cur)
    return segs


def runs_of(lines):
    """Consecutive lines of one shape as (shape, lines): a documented table row stands for one or
    more printed rows of its shape (how many follows the search, not the format)."""
    out = []
    for l in lines:
        sh = skeleton(l)
        if out and out[-1][0] == sh:
            out[-1][1].append(l)
        else:
            out.append((sh, [l]))
    return out


def match_at(runs, got, i):
    """Where the printed lines from i on stop matching the documented runs, or -1."""
    for sh, _ in runs:
        if i >= len(got) or skeleton(got[i]) != sh:
            return -1
        while i < len(got) and skeleton(got[i]) == sh:
            i += 1
    return i


def strip_tty(text):
    """A terminal's output as its lines: escape sequences dropped, each carriage-return redraw
    a line of its own."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    return [l for l in re.split(r"[\r\n]+", text) if l.strip()]


class Daemon:
    """lossd serve on a temporary socket and database, and lossctl against it."""

    def __init__(self, bindir, tmp):
        self.bindir, self.tmp = bindir, tmp
        self.sock = os.path.join(tmp, "s.sock")
        self.db = os.path.join(tmp, "db")
        self.log = os.path.join(tmp, "daemon.log")
        self.clock = os.path.join(tmp, "clock")  # absent: the real clock
        self.proc = None
        self.env = dict(os.environ, LOSSD_NOSYNC="1", LOSSD_SOCKET=self.sock, LOSSD_FAKE_CLOCK_FILE=self.clock)

    def start(self):
        if self.proc and self.proc.poll() is None:
            return
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                [os.path.join(self.bindir, "lossd"), "serve", "--socket", self.sock, "--db", self.db,
                 "--workers", "2"], stdout=log, stderr=log, env=self.env)
        for _ in range(1200):  # up to 60 s
            if os.path.exists(self.sock):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise FixtureError("lossd serve did not start:\n" + self.tail())

    def exited(self, timeout=60):
        """Waits for the daemon to exit (after a shutdown); False when it did not."""
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def tail(self):
        try:
            return "".join(open(self.log).readlines()[-8:])
        except OSError:
            return ""

    def ctl(self, *args):
        p = subprocess.run([os.path.join(self.bindir, "lossctl")] + list(args), capture_output=True,
                           text=True, env=self.env, timeout=60)
        return p.returncode, p.stdout + p.stderr

    def call(self, method, params=None):
        st, out = self.ctl("call", method, json.dumps(params or {}))
        if st != 0:
            raise FixtureError("lossctl call %s: %s" % (method, out.strip()))
        return json.loads(out)

    def submit(self, path, want_id):
        st, out = self.ctl("submit", path)
        if st != 0 or out.strip() != str(want_id):
            raise FixtureError("submit %s: expected job %d, got exit %d: %s" % (path, want_id, st, out.strip()))

    # The waits are generous: they only bound a hang, and the test may run beside others on a
    # loaded machine (tests/run.sh runs programs in parallel; the sanitizer build is slower).
    def wait(self, what, pred, timeout=600):
        end = time.time() + timeout
        while True:
            got = pred()
            if got:
                return got
            if time.time() > end:
                raise FixtureError("gave up waiting for %s\n%s" % (what, self.tail()))
            time.sleep(0.1)

    def state(self, job):
        return self.call("job.get", {"job_id": job})["state"]

    def wait_state(self, job, state):
        self.wait("job %d to be %s" % (job, state), lambda: self.state(job) == state)

    def settle(self):
        """Waits until no job is queued and every running job has a best fitness, the states the
        examples' output shows."""
        def settled():
            return all(j["state"] not in ("queued", "running") or
                       (j["state"] == "running" and j["progress"].get("best_fitness") is not None)
                       for j in self.call("job.list")["jobs"])
        self.wait("the jobs to settle", settled)

    def shutdown(self):
        self.ctl("shutdown")
        if not self.exited():
            raise FixtureError("lossd did not exit after lossctl shutdown\n" + self.tail())


def fixture_cli(d):
    """docs/cli.md's jobs: 1 "test" done, 2 the demo job running, 3 "nightly" done, 4 running
    (paused and resumed by the examples), 5 "wine-small" failed because its data file vanished
    while the daemon was down."""
    d.submit(os.path.join(DOCS_JOBS, "test.job.json"), 1)
    d.wait_state(1, "done")
    d.submit(os.path.join(d.tmp, "work", "examples", "demo.job.json"), 2)
    d.ctl("pause", "2")  # resumed last, so its 160 s are spent while the examples run
    d.submit(os.path.join(DOCS_JOBS, "nightly.job.json"), 3)
    d.wait_state(3, "done")
    d.submit(os.path.join(DOCS_JOBS, "long.job.json"), 4)
    d.ctl("pause", "4")
    folder = os.path.join(d.tmp, "wine-small")
    os.makedirs(folder, exist_ok=True)
    shutil.copy(os.path.join(DOCS_JOBS, "wine-small.job.json"), folder)
    shutil.copy(os.path.join(ROOT, "data", "wine.csv"), folder)
    d.submit(os.path.join(folder, "wine-small.job.json"), 5)
    d.wait("job 5 to have a best fitness",
           lambda: d.call("job.get", {"job_id": 5})["progress"].get("best_fitness") is not None)
    d.shutdown()
    os.unlink(os.path.join(folder, "wine.csv"))
    d.start()
    d.wait_state(5, "failed")
    d.ctl("resume", "2")
    d.ctl("resume", "4")


def fixture_schedules(d):
    """docs/schedules.md's schedule 1 "nightly": created at 00:50, fired at 01:00 (the fake clock
    of tests/test_schedule_daemon.sh), its run done."""
    def set_clock(t):
        with open(d.clock + ".tmp", "w") as f:
            f.write("%d\n" % t)
        os.rename(d.clock + ".tmp", d.clock)
    for j in d.call("job.list")["jobs"]:  # the earlier files' jobs stop taking the workers
        if j["state"] in ("queued", "running", "paused"):
            d.ctl("cancel", str(j["job_id"]))
    set_clock(CLOCK_CREATED)
    st, out = d.ctl("schedule", "add", "--cron", "0 1 * * *", "--tz", "UTC", "--name", "nightly",
                    os.path.join(DOCS_JOBS, "digits-nightly.job.json"))
    if st != 0 or out.strip() != "1":
        raise FixtureError("schedule add: expected schedule 1, got exit %d: %s" % (st, out.strip()))
    set_clock(CLOCK_FIRE)
    runs = d.wait("schedule 1 to fire", lambda: d.call("schedule.get", {"schedule_id": 1})["runs"])
    d.wait_state(runs[0]["job_id"], "done")


def fixture_protocol(d):
    """docs/protocol.md continues docs/cli.md's story (job 1 and 3 done, 4 running, 2 deleted,
    the next job 8); checked alone, the daemon gets there the way cli.md's examples take it."""
    if d.call("job.list")["jobs"]:
        return
    fixture_cli(d)
    for want in (6, 7):
        d.submit(os.path.join(d.tmp, "work", "examples", "demo.job.json"), want)
    d.ctl("cancel", "2")
    d.ctl("delete", "2")


FIXTURES = {"cli.md": fixture_cli, "protocol.md": fixture_protocol, "schedules.md": fixture_schedules}


class Checker:
    def __init__(self, bindir, verbose, fast):
        self.bindir = bindir
        self.verbose = verbose
        self.fast = fast
        self.update = False
        self.updates = {}  # path: [(index of the first line replaced, how many, new lines)]
        self.line_updates = {}
        self.passed = self.failed = 0
        self.skipped = {}
        self.tmp = tempfile.mkdtemp(prefix="lossd_docs_")
        self.work = os.path.join(self.tmp, "work")  # the examples' current folder
        os.makedirs(self.work)
        for name in ("data", "tests"):
            os.symlink(os.path.join(ROOT, name), os.path.join(self.work, name))
        # examples/ holds links to the repository's files, but demo.job.json is a copy whose
        # wall-clock budget (160 s) is an hour: the docs show the demo jobs running while the
        # examples run, and on a loaded machine (programs of both suites run side by side, the
        # sanitizer build is slower) the examples took longer than 160 s, when the jobs went on
        # to their final evaluations. No documented output shows the budget itself.
        os.makedirs(os.path.join(self.work, "examples"))
        for name in os.listdir(os.path.join(ROOT, "examples")):
            src, dst = os.path.join(ROOT, "examples", name), os.path.join(self.work, "examples", name)
            if name == "demo.job.json":
                job = json.load(open(src))
                job["budget"]["seconds"] = 3600
                json.dump(job, open(dst, "w"), indent=2)
            else:
                os.symlink(src, dst)
        self.daemon = Daemon(bindir, self.tmp)
        self.fixtures_done = set()
        self.fixture_failed = None
        self.last_status = None

    def ok(self, what):
        self.passed += 1
        print("ok   " + what)

    def bad(self, what, *detail):
        self.failed += 1
        print("FAIL " + what)
        for d in detail:
            for l in str(d).splitlines()[:12]:
                print("     " + l)

    def skip(self, why, rel, lineno, cmd):
        self.skipped.setdefault(why, []).append("%s:%d: %s" % (rel, lineno, cmd))

    def command_line(self, cmd):
        """cmd with every lossd and lossctl (also after &&, ; and |) the project's binaries."""
        return re.sub(r"(^|&&\s*|;\s*|\|\s*)\S*?\b(lossd|lossctl)\b",
                      lambda m: m.group(1) + shlex.quote(os.path.join(self.bindir, m.group(2))), cmd)

    def run(self, cmd, socket=None):
        """Runs one command line with the project's binaries; returns (status, stdout+stderr)."""
        env = dict(self.daemon.env, LOSSD_SOCKET=socket or self.daemon.sock)
        p = subprocess.run(["bash", "-o", "pipefail", "-c", self.command_line(cmd)], cwd=self.work,
                           capture_output=True, text=True, timeout=300, env=env)
        return p.returncode, p.stdout + p.stderr

    def run_tty(self, cmd, seconds=1.5):
        """Runs cmd on a pseudo-terminal until it has drawn for `seconds` after its first output
        (up to a minute for that, on a loaded machine), then presses Ctrl-C; returns (status, the
        lines it drew)."""
        pid, fd = pty.fork()
        if pid == 0:
            os.chdir(self.work)
            os.execve("/bin/bash", ["bash", "-c", "exec " + self.command_line(cmd)], self.daemon.env)
        data, end, sent, drawn = b"", time.time() + 60, False, False
        while True:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
                if not drawn and strip_tty(data.decode("utf-8", "replace")):
                    drawn, end = True, time.time() + seconds
            if not sent and time.time() > end:
                os.kill(pid, signal.SIGINT)
                sent, end = True, time.time() + 10
            elif sent and time.time() > end:
                os.kill(pid, signal.SIGKILL)
                end += 60
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        st = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
        return st, strip_tty(data.decode("utf-8", "replace"))

    def run_interrupted(self, words, seconds=1.6):
        """Runs a lossctl command off a terminal for `seconds` after its first output line (up to
        a minute for that, on a loaded machine), then sends it SIGINT (Ctrl-C); returns (status,
        its non-blank output lines)."""
        p = subprocess.Popen([os.path.join(self.bindir, "lossctl")] + words[1:], cwd=self.work, env=self.daemon.env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        fd, data = p.stdout.fileno(), b""
        end, first = time.time() + 60, True
        while time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.1)
            if not r:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
            if first and data.strip() and b"\n" in data:
                first, end = False, time.time() + seconds
        p.send_signal(signal.SIGINT)
        try:
            rest, _ = p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            rest, _ = p.communicate()
        out = (data + rest).decode("utf-8", "replace")
        st = p.returncode if p.returncode >= 0 else 128 - p.returncode
        return st, [l for l in out.splitlines() if l.strip()]

    def fixture(self, rel):
        """Starts the daemon and puts it in the state of rel's examples (once per file)."""
        self.daemon.start()
        name = os.path.basename(rel)
        if name in self.fixtures_done:
            return
        self.fixtures_done.add(name)
        if name in FIXTURES:
            t = time.time()
            FIXTURES[name](self.daemon)
            print("     (%s: the daemon holds the documented jobs after %.1f s)" % (rel, time.time() - t))

    def check(self, path, lineno, cmd, doc):
        rel = os.path.relpath(path, ROOT)
        cmd, comment = split_comment(cmd)
        where = "%s:%d: $ %s" % (rel, lineno, cmd)
        why = runnable(cmd)
        if cmd.startswith("socat ") and not self.fast:
            return  # the session is checked as a transcript (check_transcript)
        if why == "status":
            want = next((l.strip() for l in doc if l.strip()), "")
            if self.last_status is None:
                self.skip("the example before it did not run", rel, lineno, cmd)
            elif want != str(self.last_status):
                self.bad(where + ": documents %s, the example before it exited %d" % (want, self.last_status))
            else:
                self.ok(where)
            return
        self.last_status = None
        if why.startswith("needs minutes") and is_error(doc):
            why = "fast"  # an invalid job is refused at once
        if why == "daemon" and self.fast:
            # with --fast only what an empty daemon answers the same way (bad usage, "not found")
            why = "needs a daemon holding the documented jobs (make docs-check)"
            if is_error(doc) and "cannot connect" not in doc[0] and re.search(r"\b77\b|usage|expected", " ".join(doc)):
                why = "fast"
        if why not in ("fast", "daemon"):
            self.skip(why, rel, lineno, cmd)
            return
        words = cmd.split()
        socket = None
        tty = False
        if why == "fast" and os.path.basename(words[0]) == "lossctl":
            self.daemon.start()  # an empty daemon answers the same way
        if why == "daemon":
            if self.fixture_failed:
                self.bad(where + ": the daemon could not be put in the documented state", self.fixture_failed)
                return
            if doc and "cannot connect" in doc[0]:
                socket = os.path.join(self.tmp, "nobody-listens.sock")
            else:
                try:
                    self.fixture(rel)
                    self.daemon.settle()
                except (FixtureError, OSError, ValueError, KeyError) as e:
                    self.fixture_failed = str(e)
                    self.bad(where + ": the daemon could not be put in the documented state", e)
                    return
                # watch of a running job: on a terminal, as its documented line is drawn, or
                # piped ("| cat"); either way Ctrl-C after a moment
                tty = words[1:2] == ["watch"] and not is_error(doc) and len(words) > 2 and \
                    self.daemon.state(int(words[2])) == "running"
        if tty and words[-2:] == ["|", "cat"]:
            st, lines = self.run_interrupted(words[:-2])
            if st != 130:
                self.bad(where + ": Ctrl-C on watch exits %d, documented 130" % st, *lines[-4:])
                return
            self.record(path, lineno, doc, self.compare(where, doc, lines, comment), lines)
            return
        if tty:
            st, lines = self.run_tty(cmd)
            if st != 130:
                self.bad(where + ": Ctrl-C on watch exits %d, documented 130" % st, *lines[-4:])
                return
            self.record(path, lineno, doc, self.compare(where, doc, lines[-1:], comment), lines[-1:])
            return
        cmds = expand(cmd)
        # The sanitizer build computes the same floats as the normal build (test_build_floats.sh,
        # the golden runs), three times slower: it runs two values of a '{a..b}' and checks their
        # exit and output; the normal build checks the documented mean over all of them.
        partial = os.environ.get("LOSSD_SUITE") == "asan" and len(cmds) > 2
        runs = [self.run(c, socket) for c in (cmds[:2] if partial else cmds)]
        st, out = runs[0]
        self.last_status = st
        if words[1:2] == ["shutdown"] and why == "daemon":
            if not self.daemon.exited():
                self.bad(where + ": the daemon did not exit", self.daemon.tail())
                return
            self.daemon.start()  # the next examples find it running again, as after a restart
        want_error = is_error(doc)
        if any((s != 0) != want_error for s, _ in runs):
            self.bad(where + ": exit %d, documented %s" % (st, "an error" if want_error else "success"), out)
            return
        fig = figure(comment)
        if fig:
            field, text = fig
            vals = []
            for _, o in runs:
                try:
                    vals.append(float(json.loads(o.strip().splitlines()[-1])[field]))
                except (ValueError, KeyError, IndexError) as e:
                    self.bad(where + ": no '%s' in the output (%s)" % (field, e), o)
                    return
            if partial:
                vals = []
                where += " (%d of %d runs: the sanitizer build; the normal build checks the mean)" % (len(runs), len(cmds))
            got = sum(vals) / len(vals) if vals else float(text)
            decimals = len(text.split(".")[1]) if "." in text else 0
            if round(got, decimals) != round(float(text), decimals):
                self.bad(where + ": documents %s %s, the program gives %.*f (%.6g)" % (field, text, decimals, got, got))
                return
            if not partial:
                where += " (figure %s)" % comment
        # training is deterministic: a documented lossd eval result states its figures
        part = lossd_part(cmd)
        numbers = bool(part) and os.path.basename(part[0]) == "lossd" and part[1:2] == ["eval"]
        spans = self.compare(where, doc, [l for l in out.splitlines() if l.strip()], comment, numbers)
        if len(runs) == 1:
            self.record(path, lineno, doc, spans, out.rstrip("\n").split("\n"))

    def compare_json(self, where, doc, got, numbers):
        """Documented JSON (one object per line, or one written over several lines with
        elisions): every documented key is printed; with numbers, every documented number but
        time and machine ones equals the program's to its digits. Returns ("json", the documented
        objects, the printed ones) for --update."""
        text = "\n".join(doc).strip()
        lines = [l for l in doc if l.strip()]
        try:
            if all(l.lstrip().startswith("{") and l.rstrip().endswith("}") for l in lines):
                docs = [DocJSON(l) for l in lines]  # one object per line: one per printed line
                outs = [printed_json([g]) for g in got if g.lstrip().startswith("{")][-len(docs):]
            else:
                docs, outs = [DocJSON(text)], [printed_json(got)]
        except ValueError as e:
            self.bad(where + ": JSON expected (%s)" % e, *got)
            return None
        if len(outs) != len(docs):
            self.bad(where + ": %d JSON lines documented, %d printed" % (len(docs), len(outs)), *got)
            return None
        for d, o in zip(docs, outs):
            diff = json_diff(d.value, o)
            if diff:
                self.bad(where + ": " + diff, *got)
                return None
        for d, o in zip(docs, outs):
            diff = numbers and number_diff(d.value, o)
            if diff:
                self.bad(where + ": " + diff, *got)
                return ("json", docs, outs)  # --update can write the program's numbers
        self.ok(where + (" (figures)" if numbers else ""))
        return ("json", docs, outs)

    def compare(self, where, doc, got, comment="", numbers=False):
        """The printed lines against the documented ones: JSON (compare_json), or each line's shape.
        Returns, when they agree, the printed lines standing for each documented segment (None
        for JSON, and when they do not agree). This machine's name reads as the docs' "build-1"
        (lossctl workers prints hosts)."""
        host = socket.gethostname()
        if host:
            got = [re.sub(r"(?<![\w.-])%s(?![\w.-])" % re.escape(host), "build-1", l) for l in got]
        text = [l for l in doc if l.strip()]
        if not text:
            self.ok(where)
            return None
        if text[0].lstrip().startswith("{"):
            return self.compare_json(where, doc, got, numbers)
        segs = [runs_of([l for _, l in seg]) for seg in segments(doc)]
        # the first segment at the start, the last at the end, the others in order between
        pos, last, spans = 0, len(segs) - 1, []
        for k, runs in enumerate(segs):
            if not runs:
                spans.append(None)
                continue
            starts = [0] if k == 0 else range(pos, len(got) + 1)
            at, end = -1, -1
            for i in starts:
                end = match_at(runs, got, i)
                if end >= 0 and (k < last or end == len(got)):
                    at = i
                    break
            if at < 0:
                want = [l for _, ls in runs for l in ls]
                self.bad(where + (": the output changed shape" if len(segs) == 1 else
                                  ": documented lines not found in order"),
                         "documented:", *want, "printed:", *got)
                return None
            spans.append((at, end))
            pos = end
        self.ok(where)
        return spans

    def record(self, path, lineno, doc, spans, raw):
        """--update: each documented segment (from its first to its last non-blank line) is
        replaced by the printed lines it matched, blank lines included; the elisions stay. Where
        the output changed shape and nothing is elided, the whole printed output replaces it."""
        if not self.update:
            return
        if spans and spans[0] == "json":
            self.record_json(path, lineno, doc, spans[1], spans[2])
            return
        segs = segments(doc)
        text = [l for l in doc if l.strip()]
        nonblank = [i for i, l in enumerate(raw) if l.strip()]  # printed line -> raw index
        if spans is None:
            if not text or text[0].lstrip().startswith("{") or len(segs) > 1 or not nonblank:
                return
            spans = [(0, len(nonblank))]
        subst = self.substitutions()
        new = list(doc)
        for seg, span in reversed(list(zip(segs, spans))):
            if not seg or not span or span[0] == span[1]:
                continue
            lines = raw[nonblank[span[0]]:nonblank[span[1] - 1] + 1]
            for a, b in subst:
                lines = [l.replace(a, b) for l in lines]
            new[seg[0][0]:seg[-1][0] + 1] = [l.rstrip() for l in lines]
        self.updates.setdefault(path, []).append((lineno, len(doc), new))

    def substitutions(self):
        """--update: the temporary folder's paths as a user's would read."""
        return [(os.path.join(self.tmp, "wine-small"), "/home/u/wine-small"),
                (self.daemon.sock, "/run/user/1000/lossd.sock"),
                (os.path.join(self.tmp, "nobody-listens.sock"), "/run/user/1000/lossd.sock"),
                (self.daemon.db, "/home/u/.local/share/lossd/lossd.db")]

    def record_json(self, path, lineno, doc, docs, outs):
        """--update for JSON: each documented number takes the program's value, written with the
        same number of decimals; keys, layout and elisions stay as written."""
        lines = [l for l in doc if l.strip()]
        if len(docs) == 1 and len(lines) > 1:
            text = "\n".join(doc).strip()
            first = next(i for i, l in enumerate(doc) if l.strip())
            last = max(i for i, l in enumerate(doc) if l.strip())
            targets = [(first, last, text, docs[0], outs[0])]
        else:
            idx = [i for i, l in enumerate(doc) if l.strip()]
            targets = [(i, i, doc[i].strip(), d, o) for i, d, o in zip(idx, docs, outs)]
        new = list(doc)
        for first, last, text, d, o in reversed(targets):
            for start, end, jpath in reversed(d.numbers):
                v = lookup(o, jpath)
                if v is not None:
                    text = text[:start] + format_like(text[start:end], v) + text[end:]
            new[first:last + 1] = text.split("\n")
        self.updates.setdefault(path, []).append((lineno, len(doc), new))

    def record_reply(self, path, d, got):
        """--update for a documented reply: each documented number and string takes the
        printed value at the same place; keys, layout and elisions stay."""
        text = d.text
        for start, end, jpath in sorted(d.numbers + d.strings, reverse=True):
            v = lookup(got, jpath)
            if v is None or isinstance(v, (dict, list)):
                continue
            old = text[start:end]
            if any(e in old for e in ELLIPSIS):
                continue  # an elided string ("import torch\n...") stays as written
            new = json.dumps(v) if old.startswith('"') or not isinstance(v, (int, float)) or isinstance(v, bool) \
                else format_like(old, v)
            text = text[:start] + new + text[end:]
        for a, b in self.substitutions():
            text = text.replace(a, b)
        first, last = d.lines
        self.line_updates.setdefault(path, []).append((first, last, text.split("\n")))

    def write_updates(self):
        for path, ups in self.line_updates.items():  # replies: lines first..last (from 1)
            for first, last, new in ups:
                self.updates.setdefault(path, []).append((first - 1, last - first + 1, new))
        for path, ups in self.updates.items():
            lines = open(path, encoding="utf-8").read().split("\n")
            for lineno, n, new in sorted(ups, reverse=True):
                lines[lineno:lineno + n] = new
            open(path, "w", encoding="utf-8").write("\n".join(lines))
            print("updated %s (%d examples' output)" % (os.path.relpath(path, ROOT), len(ups)))

    def check_transcript(self, path, values):
        """Sends each documented request of a ```json block to the daemon (one connection per
        block, in order) and compares the reply: an error's code and the shape of its message,
        or the documented keys of the result. server.shutdown is followed by a restart."""
        rel = os.path.relpath(path, ROOT)
        try:
            self.fixture(rel)
            self.daemon.settle()
        except (FixtureError, OSError, ValueError, KeyError) as e:
            self.bad("%s: the daemon could not be put in the documented state" % rel, e)
            return
        conn = None
        for k, (lineno, req) in enumerate(values):
            r = plain(req.value)
            if not (isinstance(r, dict) and "method" in r and "id" in r):
                continue
            where = "%s:%d: %s" % (rel, lineno, r["method"])
            want_doc = next((v for _, v in values[k + 1:] if isinstance(v.value, dict) and
                             plain(v.value).get("id") == r["id"] and "method" not in v.value), None)
            if want_doc is None:
                continue
            want = plain(want_doc.value)
            try:
                if conn is None:
                    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    conn.settimeout(60)
                    conn.connect(self.daemon.sock)
                    reader = conn.makefile("r", encoding="utf-8")
                conn.sendall((json.dumps(r) + "\n").encode())
                while True:
                    got = json.loads(reader.readline())
                    if got.get("id") == r["id"]:
                        break
            except (OSError, ValueError) as e:
                self.bad(where + ": no reply (%s)" % e, self.daemon.tail())
                return
            if "error" in want:
                ge = got.get("error") or {}
                if ge.get("code") != want["error"].get("code") or \
                        skeleton(ge.get("message", "")) != skeleton(want["error"].get("message", "")):
                    self.bad(where + ": documented error %s" % json.dumps(want["error"]), "printed: " + json.dumps(got)[:600])
                    continue
            else:
                diff = "error" in got and "an error instead of the result" or json_diff(want.get("result"), got.get("result"))
                if diff:
                    self.bad(where + ": " + diff, "printed: " + json.dumps(got)[:600])
                    continue
            self.ok(where)
            if self.update:
                self.record_reply(path, want_doc, got)
            if r["method"] == "server.shutdown":
                conn.close()
                conn = None
                if not self.daemon.exited():
                    self.bad(where + ": the daemon did not exit", self.daemon.tail())
                    return
                self.daemon.start()
        if conn:
            conn.close()

    def close(self):
        self.daemon.kill()
        subprocess.run(["rm", "-rf", self.tmp])


def main():
    args = sys.argv[1:]
    bindir = os.path.join(ROOT, os.environ.get("LOSSD_BIN", "bin"))
    verbose = "-v" in args
    if "--bin" in args:
        bindir = os.path.abspath(args[args.index("--bin") + 1])
    files = [a for a in args if a.endswith(".md")]
    if not files:
        files = [os.path.join(ROOT, "README.md")] + sorted(
            os.path.join(ROOT, "docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
    c = Checker(bindir, verbose, "--fast" in args)
    c.update = "--update" in args
    t = time.time()
    try:
        for f in files:
            items = [(n, "example", (cmd, doc)) for n, cmd, doc in examples(f)]
            if not c.fast:
                items += [(n, "transcript", vals) for n, vals in transcripts(f) if f.endswith("protocol.md")]
            for lineno, kind, what in sorted(items, key=lambda x: x[0]):
                if kind == "example":
                    c.check(f, lineno, *what)
                else:
                    c.check_transcript(f, what)
        c.write_updates()
    finally:
        c.close()
    nskip = sum(len(v) for v in c.skipped.values())
    print("ran %d examples in %.0f s; skipped %d: %s" % (c.passed + c.failed, time.time() - t, nskip,
          "; ".join("%d %s" % (len(v), k) for k, v in c.skipped.items())))
    if verbose:
        for k, v in c.skipped.items():
            for e in v:
                print("skip %s (%s)" % (e, k))
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
