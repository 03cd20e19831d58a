#!/usr/bin/python3
"""test_python_client.py: the Python client (api/python/lossd) against a real daemon on a
temporary socket and database: submit, watch, leaderboard (the same numbers lossctl prints),
export, errors as LossdError, jobs' and schedules' calls, and `pip install` of the package.
Standard library only. Uses $LOSSD_BIN/lossd and lossctl; prints "N passed, N failed" last."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import LOSSCTL, LOSSD, ROOT, bad, check, ok  # noqa: E402
import lib  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "api", "python"))  # the client, used from the checkout
import lossd  # noqa: E402


def raises(fn):
    """The LossdError fn raised, or None (other exceptions propagate)."""
    try:
        fn()
    except lossd.LossdError as e:
        return e
    return None


# A job small enough for tests: digits, 40 steps, several rounds of 6 evaluations.
def small_job(name, budget=18, seed=7):
    return {"name": name, "tasks": [{"data": "builtin:digits", "train": {"steps": 40}}],
            "budget": {"evaluations": budget}, "population": 6, "children": 6, "seeds": 1,
            "fidelity": {"steps": [40]}, "final": {"top": 2, "seeds": 2}, "seed": seed}


def main():
    tmp = tempfile.mkdtemp(prefix="lossd-py.")
    try:
        if not os.access(LOSSD, os.X_OK):
            bad("lossd exists", "missing " + LOSSD + " (run make)")
            return
        no_daemon(tmp)
        with lib.serving(tmp, lambda sock: lossd.Client(sock, timeout=120), name="p") as (proc, sock):
            if sock:
                c = lossd.Client(sock, timeout=120)
                run_tests(c, sock, tmp)
                c.close()
                pip_install(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def no_daemon(tmp):
    """Before the daemon runs: the default socket and a clear connection error."""
    saved = {k: os.environ.get(k) for k in ("LOSSD_SOCKET", "XDG_RUNTIME_DIR")}
    try:
        os.environ["LOSSD_SOCKET"] = "/x/s.sock"
        os.environ["XDG_RUNTIME_DIR"] = "/run/u"
        a = lossd.default_socket()
        del os.environ["LOSSD_SOCKET"]
        b = lossd.default_socket()
        del os.environ["XDG_RUNTIME_DIR"]
        c = lossd.default_socket()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    check("default socket as lossctl finds it ($LOSSD_SOCKET, $XDG_RUNTIME_DIR, /tmp)",
          (a, b, c) == ("/x/s.sock", "/run/u/lossd.sock", "/tmp/lossd-%d.sock" % os.getuid()),
          (a, b, c))
    try:
        lossd.Client(os.path.join(tmp, "none.sock")).status()
        bad("no daemon: LossdConnectionError", "status() returned")
    except lossd.LossdConnectionError as e:
        check("no daemon: LossdConnectionError naming the socket", "none.sock" in str(e), e)


def run_tests(c, sock, tmp):
    hello = c.hello()
    check("hello: the server's methods", "job.submit" in hello.get("methods", []), hello)

    # ---- errors ------------------------------------------------------------------------------
    e = raises(lambda: c.job(999999))
    check("an unknown job raises LossdError -32001 with the daemon's message",
          e is not None and e.code == -32001 and "999999" in e.message and e.method == "job.get",
          repr(e))
    e = raises(lambda: c.call("job.frobnicate"))
    check("an unknown method: -32601", e is not None and e.code == -32601, repr(e))
    e = raises(lambda: c.call("job.get", job_id="x"))
    check("a param of the wrong type: -32602 naming it",
          e is not None and e.code == -32602 and "job_id" in e.message, repr(e))
    e = raises(lambda: c.submit({"budget": {"evaluations": -1}}))
    check("an invalid job: -32602 naming every problem",
          e is not None and e.code == -32602 and "tasks" in e.message
          and "budget.evaluations" in e.message, repr(e))
    check("LossdError carries data (None when the daemon sends none)",
          e is not None and hasattr(e, "data") and isinstance(e, Exception), repr(e))
    check("the connection still serves after errors", "workers" in c.status())

    # ---- submit, pause, watch --------------------------------------------------------------
    job = c.submit(small_job("py-watch", budget=24))
    check("submit returns the job id", isinstance(job, int) and job >= 1, job)
    paused = True
    try:
        c.pause(job)
    except lossd.LossdError as e:  # it may have ended already on a very fast machine
        paused = False
        print("     (job %d could not be paused: %s; watch sees only its end)" % (job, e))
    events = []
    w = c.watch(job, timeout=300)
    first = next(w)
    events.append(first)
    if paused:
        st = c.resume(job)
        check("resume returns the summary", st.get("state") in ("queued", "running", "done"), st)
    for ev in w:
        events.append(ev)
    kinds = [ev.get("kind") for ev in events]
    check("watch: first a job.snapshot with the job summary",
          first.get("kind") == "job.snapshot" and first["data"].get("job_id") == job, first)
    last = events[-1]
    terminal = (last.get("kind") == "job.state" and last["data"].get("state") == "done") or \
        (len(events) == 1 and first["data"].get("state") == "done")
    check("watch: ends with the job done", terminal, kinds[-5:])
    if paused:
        rounds = [ev for ev in events if ev.get("kind") == "job.round"]
        check("watch: job.round events with growing evaluations",
              len(rounds) >= 2 and all(ev["job_id"] == job for ev in rounds)
              and rounds[-1]["data"]["evaluations"] > rounds[0]["data"]["evaluations"]
              and all("best_fitness" in ev["data"] for ev in rounds), kinds)
        check("watch: only this job's events, in seq order",
              all(ev.get("job_id") == job for ev in events[1:])
              and [ev["seq"] for ev in events[1:]] == sorted(ev["seq"] for ev in events[1:]),
              [(ev.get("seq"), ev.get("job_id")) for ev in events])
    final = c.job(job)
    check("job(): done with its evaluations", final["state"] == "done"
          and final["progress"]["evaluations"] >= 24, final.get("progress"))
    check("jobs(): lists it", any(j["job_id"] == job for j in c.jobs()), c.jobs())
    check("jobs(state='done')", all(j["state"] == "done" for j in c.jobs(state="done")))

    # ---- leaderboard: the numbers lossctl prints -------------------------------------------
    top = c.leaderboard(job, top=5)
    out = subprocess.run([LOSSCTL, "--socket", sock, "--json", "leaderboard", str(job),
                          "--top", "5"], capture_output=True, text=True, timeout=60)
    ref = json.loads(out.stdout)["entries"] if out.returncode == 0 else None
    check("leaderboard: a list of plain dicts, ranked, each with its job_id",
          isinstance(top, list) and len(top) >= 2 and all(isinstance(e, dict) for e in top)
          and [e["rank"] for e in top] == list(range(1, len(top) + 1))
          and all(e["job_id"] == job for e in top), top[:1])
    same = ref is not None and len(ref) == len(top) and all(
        (a["cand"], a["expr"], a["fitness"], a.get("mean")) ==
        (b["cand"], b["expr"], b["fitness"], b.get("mean")) for a, b in zip(top, ref))
    check("leaderboard: the same candidates and numbers as lossctl --json leaderboard", same,
          [(e["cand"], e["fitness"]) for e in top], ref and [(e["cand"], e["fitness"]) for e in ref])
    fam = c.leaderboard(family="classification", top=3)
    check("leaderboard(family=...): the cross-job board", len(fam) >= 1 and "score" in fam[0],
          fam[:1])
    e = raises(lambda: c.leaderboard(job, top=5000))
    check("leaderboard top out of range: LossdError -32602", e is not None and e.code == -32602,
          repr(e))
    try:
        import pandas
        df = c.leaderboard(job, top=5, as_frame=True)
        check("as_frame: a pandas DataFrame with task metric columns",
              isinstance(df, pandas.DataFrame) and len(df) == len(top) and "fitness" in df.columns
              and "digits.accuracy" in df.columns and "digits.accuracy.test" in df.columns,
              type(df), list(df.columns))
        flat = [lossd.flatten_entry(e) for e in top]
        check("as_frame: one row per entry, best first, the numbers of the dict entries",
              list(df["cand"]) == [e["cand"] for e in top]
              and list(df["expr"]) == [e["expr"] for e in top]
              and all(abs(a - b) <= 1e-12 for a, b in zip(df["fitness"], [e["fitness"] for e in top]))
              and all(abs(a - r["digits.accuracy"]) <= 1e-12
                      for a, r in zip(df["digits.accuracy"], flat))
              and str(df["digits.accuracy"].dtype) == "float64",
              df.head(3).to_dict("records"), flat[:3])
    except ImportError:
        try:
            c.leaderboard(job, top=5, as_frame=True)
            bad("as_frame without pandas raises ImportError")
        except ImportError as ie:
            check("as_frame without pandas: ImportError saying so", "pandas" in str(ie), ie)
    row = lossd.flatten_entry(top[0])
    check("flatten_entry: a flat row with digits.accuracy and its test mean",
          isinstance(row.get("digits.accuracy"), float)
          and isinstance(row.get("digits.accuracy.test"), float)
          and not any(isinstance(v, (dict, list)) for v in row.values()), row)

    # ---- candidates and export -------------------------------------------------------------
    best = top[0]
    cand = c.candidate(best)
    check("candidate(entry): its evaluations with curves",
          cand["expr"] == best["expr"] and cand["evaluations"]
          and cand["evaluations"][0].get("curve"), {k: cand.get(k) for k in ("expr", "cand")})
    py = c.export(best, as_="pytorch")
    key = "%d:%d" % (job, best["cand"])
    check("export(entry, as_='pytorch'): a PyTorch function",
          "def lossd_loss" in py and "import torch" in py, py[:300])
    check("export by 'JOB:CAND' and by (job, cand): the same text",
          c.export(key) == py and c.export((job, best["cand"])) == py)
    npy = c.export(key, as_="numpy")
    check("export as numpy", "numpy" in npy and "def " in npy, npy[:200])
    ex = c.export(expr="0.7*ce + 0.3*focal(2)", family="classification", as_="expr")
    check("export(expr=..., family=...)", "focal" in ex, ex)
    try:
        c.export("not-a-candidate")
        bad("a malformed candidate name raises ValueError")
    except ValueError as ve:
        ok("a malformed candidate name raises ValueError (%s)" % ve)
    e = raises(lambda: c.export("%d:99999" % job))
    check("export of a missing candidate: -32001", e is not None and e.code == -32001, repr(e))

    # ---- a job file with a relative data path, client token, cancel ------------------------
    folder = os.path.join(tmp, "proj")
    os.makedirs(folder)
    shutil.copy(os.path.join(ROOT, "data", "wine.csv"), os.path.join(folder, "wine.csv"))
    jf = os.path.join(folder, "wine.job.json")
    spec = small_job("py-file", budget=4)
    spec["tasks"] = [{"data": "wine.csv", "label": "class", "train": {"steps": 20}}]
    spec["fidelity"] = {"steps": [20]}
    with open(jf, "w") as f:
        json.dump(spec, f)
    cwd = os.getcwd()
    os.chdir(tmp)  # neither the daemon's nor this process's folder holds wine.csv
    try:
        j2 = c.submit(os.path.relpath(jf), client_token="tok-1")
        j3 = c.submit(jf, client_token="tok-1")
    finally:
        os.chdir(cwd)
    check("a client token makes submit idempotent", j2 == j3, (j2, j3))
    got = c.job(j2)
    data = got["spec"]["tasks"][0].get("data") if got.get("spec") else None
    check("a job file's relative data path is resolved against its folder",
          data == os.path.realpath(os.path.join(folder, "wine.csv")), got.get("spec"))
    fin = c.wait(j2, timeout=300)
    check("wait(): the file job ends done", fin["state"] == "done", fin.get("error"))

    # A CSV as real files have it (quoted fields, a BOM, missing values, a text column): what
    # loading did is in the job's spec and in the daemon's log.
    with open(os.path.join(folder, "real.csv"), "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC)  # a BOM, CRLF, every text quoted
        w.writerow(["size", "colour, as named", "y"])
        for i in range(40):
            w.writerow(["NA" if i % 10 == 4 else i, "dark, red" if i % 3 else 'light "blue"', i % 2])
    spec = small_job("py-csv", budget=4)
    spec["tasks"] = [{"data": "real.csv", "missing": "drop_rows", "train": {"steps": 20}}]
    spec["fidelity"] = {"steps": [20]}
    with open(os.path.join(folder, "real.job.json"), "w") as f:
        json.dump(spec, f)
    j5 = c.submit(os.path.join(folder, "real.job.json"))
    info = c.job(j5)["spec"]["tasks"][0].get("data_info", {})
    check("a quoted CSV with a BOM, NA and a text column: data_info counts what was dropped",
          info.get("rows") == 36 and info.get("rows_dropped") == 4
          and info.get("categorical") == "colour, as named (2 levels)" and info.get("features") == 3,
          info)
    with open(os.path.join(tmp, "daemon.log")) as f:
        logged = [ln for ln in f if "job %d: task" % j5 in ln]
    check("the daemon's log says what loading dropped",
          any("4 of 40 rows dropped" in ln for ln in logged), logged)
    c.wait(j5, timeout=300)

    j4 = c.submit(small_job("py-cancel", budget=2000))
    st = c.cancel(j4)
    check("cancel(): the summary says cancelled", st.get("state") == "cancelled", st)
    e = raises(lambda: c.pause(j4))
    check("pausing a cancelled job: -32002", e is not None and e.code == -32002, repr(e))

    # ---- schedules -------------------------------------------------------------------------
    if "schedule.create" not in hello.get("methods", []):
        ok("schedules: not built into this daemon (skipped)")
        return
    r = c.schedule_create("0 3 * * *", small_job("py-nightly", budget=4), tz="UTC",
                          name="py-nightly")
    sid = r.get("schedule_id")
    check("schedule_create: an id and the next runs", isinstance(sid, int)
          and len(r.get("next_runs", [])) == 5, r)
    check("schedules(): lists it", any(s["schedule_id"] == sid for s in c.schedules()))
    s = c.schedule(sid)
    check("schedule(id): its cron and runs", s.get("cron") == "0 3 * * *" and "runs" in s, s)
    check("schedule_pause", c.schedule_pause(sid).get("paused") is True)
    check("schedule_resume", c.schedule_resume(sid).get("paused") is False)
    jt = c.schedule_trigger(sid)
    check("schedule_trigger: a new job id", isinstance(jt, int) and jt > j4, jt)
    c.wait(jt, timeout=300)
    runs = c.schedule(sid).get("runs", [])
    check("the triggered job is the schedule's run", any(x["job_id"] == jt for x in runs), runs)
    check("schedule_delete", c.schedule_delete(sid).get("deleted") is True)
    e = raises(lambda: c.schedule(sid))
    check("a deleted schedule: -32001", e is not None and e.code == -32001, repr(e))
    e = raises(lambda: c.schedule_create("2 2 31 3 */7", small_job("x"), tz="Europe/Berlin"))
    check("a cron that never fires in its zone is refused (found by fuzz_cron)",
          e is not None and e.code == -32602 and "never fires" in e.message, repr(e))
    e = raises(lambda: c.schedule_create("0 25 * * *", small_job("x")))
    check("a bad cron: -32602 naming the field", e is not None and e.code == -32602
          and "hour" in e.message, repr(e))


def pip_install(tmp):
    """pip install of a copy of api/python (the checkout stays clean) into a target folder,
    offline, then an import from there."""
    py = "/usr/bin/python3"
    if os.environ.get("LOSSD_SUITE") == "asan":
        return  # packaging does not depend on the daemon's build: checked once, in the unit suite
    probe = subprocess.run([py, "-c", "import setuptools"], capture_output=True)
    probe2 = subprocess.run([py, "-m", "pip", "--version"], capture_output=True)
    if probe.returncode != 0 or probe2.returncode != 0:
        print("skip pip install: python3-pip or python3-setuptools is not installed")
        return
    src = os.path.join(tmp, "pysrc")
    shutil.copytree(os.path.join(ROOT, "api", "python"), src)
    target = os.path.join(tmp, "site")
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps",
                        "--no-index", "--disable-pip-version-check", "--root-user-action=ignore", "--target", target, src],
                       capture_output=True, text=True, timeout=300)
    check("pip install ./api/python (offline, setuptools backend)", r.returncode == 0,
          r.stdout[-1000:], r.stderr[-2000:])
    r = subprocess.run([py, "-c", "import lossd, sys; print(lossd.__file__, lossd.__version__, "
                        "lossd.Client.__name__)"], capture_output=True, text=True,
                       env={"PYTHONPATH": target, "PATH": os.environ.get("PATH", "")})
    check("the installed package imports", r.returncode == 0 and target in r.stdout
          and "0.1.0 Client" in r.stdout, r.stdout, r.stderr)


if __name__ == "__main__":
    try:
        main()
    except Exception as ex:  # a crash of the test itself is one failure, with its traceback
        import traceback
        traceback.print_exc()
        bad("the test ran to its end", repr(ex))
    lib.finish()
