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
Examples that need a daemon holding particular jobs, or that run for minutes, are counted as
skipped and listed with -v. Usage: tests/docs_check.py [--bin DIR] [-v] [FILE.md ...]
Prints "N passed, N failed" last; exit status 1 when anything failed.
"""
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("DOCS_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ELLIPSIS = ("...", "⋮", "…")


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
    """'fast' when the example runs here in a moment, else the reason it is skipped."""
    words = cmd.split()
    if not words:
        return "empty"
    prog = os.path.basename(words[0])
    rest = words[1:]
    if prog == "lossd":
        if not rest or rest[0] in ("help", "--help", "-h", "--version") or "--help" in rest or "-h" in rest:
            return "fast"
        if rest[0] == "eval" and "--batch" not in rest:
            return "fast"
        return "needs minutes (a whole search or a daemon)"
    if prog == "lossctl":
        if "--help" in rest or "-h" in rest or (rest and rest[0] == "help"):
            return "fast"
        if "--expr" in rest and "export" in rest:
            return "fast"  # an empty daemon answers it
        return "needs a daemon holding the documented jobs"
    return "not a lossd command"


def skeleton(line):
    """A line's shape: numbers, durations, ids, paths and quoted names stand for any."""
    out = []
    for tok in line.split():
        if "/" in tok and not re.fullmatch(r"[\d.:+\-()/,]+(final\))?", tok):
            out.append("PATH")
        elif re.search(r"\d", tok):
            out.append("N" + ("," if tok.endswith(",") else ""))
        else:
            out.append(tok)
    return " ".join(out)


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


class Checker:
    def __init__(self, bindir, verbose):
        self.bindir = bindir
        self.verbose = verbose
        self.passed = self.failed = 0
        self.skipped = {}
        self.tmp = tempfile.mkdtemp(prefix="lossd_docs_")
        self.sock = os.path.join(self.tmp, "s.sock")
        self.daemon = None

    def ok(self, what):
        self.passed += 1
        print("ok   " + what)

    def bad(self, what, *detail):
        self.failed += 1
        print("FAIL " + what)
        for d in detail:
            for l in str(d).splitlines()[:12]:
                print("     " + l)

    def ensure_daemon(self):
        if self.daemon:
            return
        self.daemon = subprocess.Popen(
            [os.path.join(self.bindir, "lossd"), "serve", "--socket", self.sock, "--db",
             os.path.join(self.tmp, "db"), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ, LOSSD_NOSYNC="1"))
        for _ in range(100):
            if os.path.exists(self.sock):
                return
            time.sleep(0.05)

    def run(self, cmd):
        """Runs one command line with the project's binaries; returns (status, stdout+stderr)."""
        prog = os.path.basename(cmd.split()[0])
        line = re.sub(r"^\S*(lossd|lossctl)\b", lambda m: shlex.quote(os.path.join(self.bindir, m.group(1))), cmd)
        if prog == "lossctl":
            self.ensure_daemon()
            line = re.sub(r"^(\S+)", lambda m: m.group(1) + " --socket " + shlex.quote(self.sock), line, count=1)
        p = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=ROOT, capture_output=True, text=True,
                           timeout=300)
        return p.returncode, p.stdout + p.stderr

    def check(self, path, lineno, cmd, doc):
        rel = os.path.relpath(path, ROOT)
        cmd, comment = split_comment(cmd)
        why = runnable(cmd)
        if why.startswith("needs minutes") and is_error(doc):
            why = "fast"  # an invalid job is refused at once
        # an error a daemon with no jobs gives the same way ("job 77: not found", bad usage)
        if why.startswith("needs a daemon") and is_error(doc) and "cannot connect" not in doc[0]:
            st, out = self.run(cmd)
            if "not found" in out and "not found" not in doc[0]:
                self.skipped.setdefault(why, []).append("%s:%d: %s" % (rel, lineno, cmd))
                return
            why = "fast"
        if why != "fast":
            self.skipped.setdefault(why, []).append("%s:%d: %s" % (rel, lineno, cmd))
            return
        where = "%s:%d: $ %s" % (rel, lineno, cmd)
        runs = [self.run(c) for c in expand(cmd)]
        want_error = is_error(doc)
        st, out = runs[0]
        if want_error != (st != 0) or any((s != 0) != want_error for s, _ in runs):
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
            got = sum(vals) / len(vals)
            decimals = len(text.split(".")[1]) if "." in text else 0
            if round(got, decimals) != round(float(text), decimals):
                self.bad(where + ": documents %s %s, the program gives %.*f (%.6g)" % (field, text, decimals, got, got))
                return
        doc = [l for l in doc if l.strip()]
        if not doc:
            self.ok(where + (" (figure %s)" % comment if fig else ""))
            return
        got = [l for l in out.splitlines() if l.strip()]
        if doc[0].lstrip().startswith("{"):
            try:
                want_keys = set(json.loads(doc[0]).keys())
                have_keys = set(json.loads(got[-1]).keys())
            except (ValueError, IndexError) as e:
                self.bad(where + ": JSON expected (%s)" % e, out)
                return
            if not want_keys <= have_keys:
                self.bad(where + ": keys documented but missing: %s" % sorted(want_keys - have_keys), out)
                return
            self.ok(where)
            return
        elided = any(l.strip() in ELLIPSIS or l.strip().startswith(ELLIPSIS) for l in doc)
        if not elided and len(doc) != len(got):
            self.bad(where + ": %d lines documented, %d printed" % (len(doc), len(got)),
                     "documented:", *doc, "printed:", *got)
            return
        if not elided:
            for d, g in zip(doc, got):
                if skeleton(d) != skeleton(g):
                    self.bad(where + ": a line changed shape", "documented: " + d, "printed:    " + g)
                    return
        elif skeleton(doc[0]) != skeleton(got[0]):
            self.bad(where + ": the first line changed shape", "documented: " + doc[0], "printed:    " + got[0])
            return
        self.ok(where)

    def close(self):
        if self.daemon:
            self.daemon.kill()
            self.daemon.wait()
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
    c = Checker(bindir, verbose)
    try:
        for f in files:
            for lineno, cmd, doc in examples(f):
                c.check(f, lineno, cmd, doc)
    finally:
        c.close()
    nskip = sum(len(v) for v in c.skipped.values())
    print("skipped %d examples: %s" % (nskip, "; ".join("%d %s" % (len(v), k) for k, v in c.skipped.items())))
    if verbose:
        for k, v in c.skipped.items():
            for e in v:
                print("skip %s (%s)" % (e, k))
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
