#!/usr/bin/python3
"""test_leaderboard_views.py: one job's leaderboard shows the same rank, fitness, spread and
baseline row through every view: the leaderboard.query reply, lossctl's table and its --format
jsonl, the HTML report (lossctl report) and the Python client, all reading what storage
computed (store_leaderboard). The spread is the sample standard deviation (n - 1) of a
candidate's runs, null ('-') for one run. Also `lossctl leaderboard --family F --metric M` for a
metric that is not the family's own (balanced_accuracy). Uses $LOSSD_BIN/lossd and lossctl;
prints "N passed, N failed" last."""
import html
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import LOSSCTL, ROOT, check  # noqa: E402
import lib  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "api", "python"))
import lossd  # noqa: E402

JOB = {"name": "views", "tasks": [{"data": "builtin:digits", "train": {"steps": 40}}],
       "budget": {"evaluations": 24}, "population": 6, "children": 6, "seeds": 1,
       "fidelity": {"steps": [40]}, "final": {"top": 3, "seeds": 3}, "seed": 11}


def ctl(sock, *args):
    r = subprocess.run([LOSSCTL, "--socket", sock] + list(args), capture_output=True, text=True,
                       timeout=120)
    return r.returncode, r.stdout, r.stderr


def num(x):
    return None if x is None else float(x)


def near(a, b, tol):
    """a printed with 4 decimals or 4 significant digits against b: tol absolute, or 6e-4 of b."""
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= max(tol, 6e-4 * abs(b))


def table_rows(out):
    """lossctl leaderboard's table: {candidate: (rank or None, fitness, mean, spread or None)}."""
    rows = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) < 6 or not re.match(r"^\d+:\d+$", f[1]):
            continue
        rows[int(f[1].split(":")[1])] = (None if f[0] == "-" else int(f[0]), num(f[2]),
                                         None if f[3] == "-" else num(f[3]),
                                         None if f[4] == "-" else num(f[4]))
    return rows


def report_rows(text):
    """The report's leaderboard table: {candidate: (rank or None, fitness, mean, spread)}."""
    rows = {}
    table = text[text.find('<table class="leaderboard">'):]
    table = table[:table.find("</table>")]
    for tr in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
        tds = [html.unescape(re.sub(r"<[^>]+>", "", td)).strip() for td in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        if len(tds) < 5 or ":" not in tds[1]:
            continue

        def val(s):
            return None if s in ("-", "", "nan") else float(s)
        rows[int(tds[1].split(":")[1])] = (None if tds[0] in ("-", "nan") else int(tds[0]), val(tds[2]),
                                           val(tds[3]), val(tds[4]))
    return rows


def check_rows(view, got_rows, rows):
    """A view's printed (rank, fitness, mean, spread) of every row of the reply (rows)."""
    for cand, e in rows.items():
        got = got_rows.get(cand)
        want = (e.get("rank"), e.get("fitness"), e.get("mean"), e.get("spread"))
        check("%s: cand %d rank, fitness, mean, spread" % (view, cand),
              got is not None and got[0] == want[0] and near(got[1], want[1], 6e-5)
              and near(got[2], want[2], 6e-5) and near(got[3], want[3], 6e-5), got, want)


def sample_sd(xs):
    if len(xs) < 2:
        return None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def run_tests(c, sock, tmp):
    job = c.submit(JOB)
    for _ in range(1200):
        if c.job(job)["state"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.1)
    check("the job finishes", c.job(job)["state"] == "done", c.job(job)["state"])
    full = c.call("leaderboard.query", job_id=job, k=1000)
    ents = full["entries"]
    base_rank = next((e["rank"] for e in ents if e.get("op") == "baseline"), None)
    check("the baseline is ranked", base_rank is not None, [e.get("op") for e in ents])
    # k: one above the baseline when it can be left out, so the reply carries it apart
    k = max(1, (base_rank or 2) - 1)
    rpc = c.call("leaderboard.query", job_id=job, k=k)
    rows = {e["cand"]: e for e in rpc["entries"]}
    base = rpc.get("baseline")
    if base_rank and base_rank > 1:
        check("the reply carries the baseline's row apart, with its rank",
              base is not None and base.get("rank") == base_rank and base.get("op") == "baseline",
              base)
        rows[base["cand"]] = base
    else:
        check("the baseline ranks first: no row apart", base is None, base)
    check("the reply says the metric's direction", rpc.get("higher_better") is True, rpc.get("higher_better"))

    # the spread is the sample standard deviation of the runs, null for one run
    multi = single = 0
    for cand, e in rows.items():
        cj = c.candidate((job, cand))
        vals = [ev["val"] for ev in cj["evaluations"] if ev.get("status") == "ok"]
        top = max((ev["steps"] for ev in cj["evaluations"] if ev.get("status") == "ok"), default=0)
        vals = [ev["val"] for ev in cj["evaluations"] if ev.get("status") == "ok" and ev["steps"] == top]
        want = sample_sd(vals)
        if want is None:
            single += 1
            check("cand %d: one run, spread null" % cand, e.get("spread") is None and e.get("runs") == 1, e)
        else:
            multi += 1
            check("cand %d: spread = sample sd of %d runs (%.6f)" % (cand, len(vals), want),
                  near(e.get("spread"), want, 1e-9), e.get("spread"))
    check("some entries have several runs", multi > 0 or single > 0, rows)

    # lossctl's table
    rc, out, err = ctl(sock, "leaderboard", str(job), "--top", str(k))
    t = table_rows(out)
    check("lossctl table: exit 0", rc == 0, err)
    check_rows("lossctl table", t, rows)
    check("lossctl table: no other rows", set(t) == set(rows), sorted(t), sorted(rows))

    # lossctl --format jsonl: the reply's rows, exactly
    rc, out, err = ctl(sock, "leaderboard", str(job), "--top", str(k), "--format", "jsonl")
    lines = [json.loads(x) for x in out.splitlines() if x.strip()]
    want = rpc["entries"] + ([base] if base else [])
    for w in want:
        w.setdefault("job_id", job)
    check("lossctl jsonl: the reply's entries and baseline row, exactly", lines == want,
          lines[:1], want[:1])

    # the Python client
    py = c.leaderboard(job, top=k)
    check("python client: the reply's entries and baseline row",
          list(py) + ([py.baseline] if py.baseline else []) == want and py.higher_better is True,
          py[:1], want[:1])

    # the HTML report (every entry: k=1000)
    path = os.path.join(tmp, "r.html")
    rc, out, err = ctl(sock, "report", str(job), "-o", path)
    check("lossctl report: exit 0", rc == 0, err)
    rr = report_rows(open(path).read()) if rc == 0 else {}
    check_rows("report", rr, rows)

    # --family with a metric beyond the family's own
    fam = c.call("leaderboard.query", family="classification", k=5, metric="balanced_accuracy")
    check("family + balanced_accuracy: entries", len(fam["entries"]) > 0, fam)
    check("family + balanced_accuracy: higher is better", fam.get("higher_better") is True, fam)
    vals = [e["val_mean"] for e in fam["entries"]]
    check("family + balanced_accuracy: values in [0, 1]", all(0 <= v <= 1 for v in vals), vals)
    rc, out, err = ctl(sock, "leaderboard", "--family", "classification", "--metric", "balanced_accuracy")
    check("lossctl --family classification --metric balanced_accuracy: exit 0 and rows",
          rc == 0 and len([x for x in out.splitlines() if re.match(r"^\s+1\s", x)]) == 1, out, err)
    ece = c.call("leaderboard.query", family="classification", k=5, metric="ece")
    ev = [e["val_mean"] for e in ece["entries"]]
    check("family + ece: lower is better, ranked ascending",
          ece.get("higher_better") is False and ev == sorted(ev) and len(ev) > 0, ev)
    # the job's own leaderboard by an extra metric
    jb = c.call("leaderboard.query", job_id=job, k=3, metric="balanced_accuracy")
    means = [e["mean"] for e in jb["entries"]]
    check("job + balanced_accuracy: ranked by its mean, best first",
          means == sorted(means, reverse=True) and len(means) > 0, means)


def main():
    tmp = tempfile.mkdtemp(prefix="lossd-views.")
    try:
        with lib.serving(tmp, lambda sock: lossd.Client(sock, timeout=120), name="v") as (proc, sock):
            if sock:
                c = lossd.Client(sock, timeout=120)
                run_tests(c, sock, tmp)
                c.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
    lib.finish()
