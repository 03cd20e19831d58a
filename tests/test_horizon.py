#!/usr/bin/python3
"""test_horizon.py: final checks at the user's horizon (issue 17, final.horizon) against a real
daemon: after the final re-evaluation, its losses (the leaders and the baseline) train again on
fresh seeds under the job's horizon recipe (more steps, a wider model); the horizon runs are
stored on their own task (NAME@horizon, at the horizon's steps); the leaderboard, candidate.get,
lossctl leaderboard / show and the HTML report give the gain at the search's recipe and at the
user's side by side, with their intervals and the label the store derives from the two verdicts;
the same job gives the same final comparisons with 1 or 2 workers and after a kill -9 in the
middle of its horizon round; the default (5x the steps) applies from 200 evaluations on and is
off below. Uses $LOSSD_BIN/lossd and lossctl; prints "N passed, N failed" last."""
import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import LOSSCTL, LOSSD, ROOT, check  # noqa: E402
import lib  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "api", "python"))
import lossd  # noqa: E402

# The checks are of plumbing (what runs, where it is stored, how it is shown), not of the gains'
# size: the sanitizer build, three times slower, trains a shorter and narrower horizon.
SAN = os.environ.get("LOSSD_SUITE") == "asan"
HSTEPS, HSEEDS, TOP = (500 if SAN else 1500), 4, 2
HHIDDEN = [128] if SAN else [256]
JOB = {"name": "horizon", "tasks": [{"data": "builtin:digits", "train": {"steps": 60}}],
       "budget": {"evaluations": 24}, "population": 6, "children": 4, "seeds": 1,
       "fidelity": {"steps": [20, 60]}, "warm_start": False, "seed": 7,
       "final": {"top": TOP, "seeds": 3,
                 "horizon": {"steps": HSTEPS, "model": {"hidden": HHIDDEN}, "seeds": HSEEDS}}}


def label_rule(sv, hv):
    if hv == "better":
        return "holds"
    if hv == "worse":
        return "reverses"
    return "vanishes" if sv == "better" else "no gain"


class Daemon:
    def __init__(self, tmp, name, workers):
        self.sock = os.path.join(tmp, name + ".sock")
        self.db = os.path.join(tmp, name + ".db")
        self.log = os.path.join(tmp, name + ".log")
        self.workers = workers
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([LOSSD, "serve", "--socket", self.sock, "--db", self.db, "--workers",
                                      str(self.workers)], stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        for _ in range(600):
            try:
                lossd.Client(self.sock).hello()
                return
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("daemon did not start: " + open(self.log).read()[-1000:])

    def client(self):
        return lossd.Client(self.sock)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def wait_done(self, job, timeout=1800):  # bounds a hang only: a loaded machine is slow
        end = time.time() + timeout
        while time.time() < end:
            j = self.client().call("job.get", job_id=job)
            if j["state"] in ("done", "failed", "cancelled"):
                return j
            time.sleep(0.1)
        return self.client().call("job.get", job_id=job)


def finals(c, job):
    """{cand: stored final comparison} of the entries that have one."""
    out = {}
    for e in c.call("leaderboard.query", job_id=job, k=50)["entries"]:
        if "gains" in e or e["op"] == "baseline":
            f = c.call("candidate.get", job_id=job, cand=e["cand"]).get("final")
            if f:
                out[e["cand"]] = f
    return out


def ctl(sock, *args):
    r = subprocess.run([LOSSCTL, "--socket", sock] + list(args), capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def main():
    tmp = tempfile.mkdtemp(prefix="lossd_horizon.")
    daemons = []
    try:
        # ---- a job with a horizon, 2 workers, uninterrupted -----------------------------------
        a = Daemon(tmp, "a", 2)
        daemons.append(a)
        a.start()
        c = a.client()
        job = c.submit(JOB)
        info = a.wait_done(job)
        check("the job with a horizon ends done", info["state"] == "done", info.get("state"), info.get("error"))
        st = info["stats"]
        # the leaders, the baseline and the best panel loss (the job names no baseline, so it has
        # the family's panel; final.top counts the search's own candidates, not the panel loss)
        n_final = TOP + 2
        check("stats count the horizon runs: (top + baseline + best panel loss) x tasks x horizon seeds",
              st.get("horizon_evaluations") == n_final * HSEEDS, st.get("horizon_evaluations"))
        check("the normalised job keeps the horizon", info["spec"]["final"].get("horizon") ==
              {"steps": HSTEPS, "model": {"hidden": HHIDDEN}, "seeds": HSEEDS}, info["spec"]["final"])
        names = [t["name"] for t in info["tasks"]]
        check("the horizon task is stored as digits@horizon, apart from the search's", names == ["digits", "digits@horizon"]
              and info["tasks"][1]["hash"] != info["tasks"][0]["hash"] and info["tasks"][1]["holdout"], info["tasks"])

        lb = c.call("leaderboard.query", job_id=job, k=10)
        with_gains = [e for e in lb["entries"] if "gains" in e]
        check("the re-evaluated leaders carry gains at both recipes", len(with_gains) == TOP + 1
              and all("search" in e["gains"] and "horizon" in e["gains"] for e in with_gains),
              [e.get("gains") for e in lb["entries"]])
        ok_shape = True
        for e in with_gains:
            g = e["gains"]
            for side in ("search", "horizon"):
                lo, hi = g[side]["ci95"]
                ok_shape &= lo is not None and hi is not None and lo <= g[side]["mean"] <= hi
                ok_shape &= g[side]["verdict"] == ("better" if lo > 0 else "worse" if hi < 0 else "within noise")
            ok_shape &= g["horizon"]["steps"] == [HSTEPS] and g["horizon"]["model"] == {"hidden": HHIDDEN}
            ok_shape &= g["label"] == label_rule(g["search"]["verdict"], g["horizon"]["verdict"])
        check("each gain's mean lies in its interval, the verdicts and labels follow the rule", ok_shape,
              [e["gains"] for e in with_gains])
        check("the means are not all zero (the horizon runs differ from the search's)",
              any(abs(e["gains"]["horizon"]["mean"]) > 0 for e in with_gains), [e["gains"] for e in with_gains])
        base = [e for e in lb["entries"] if e["op"] == "baseline"] or [lb.get("baseline")]
        check("the baseline row has no gains of its own", base and base[0] and "gains" not in base[0], base)

        # the horizon runs: on the horizon task, at its steps, on seeds of their own
        top = with_gains[0]["cand"] if with_gains else 1
        cand = c.call("candidate.get", job_id=job, cand=top)
        hz = [ev for ev in cand["evaluations"] if ev["task_name"] == "digits@horizon"]
        fin_seeds = {ev["seed"] for ev in cand["evaluations"] if ev["task_name"] == "digits"}
        check("the leader trained horizon seeds x horizon steps on digits@horizon, on fresh seeds",
              len(hz) == HSEEDS and all(ev["steps"] == HSTEPS and ev["status"] == "ok" for ev in hz)
              and not ({ev["seed"] for ev in hz} & fin_seeds), [(ev["steps"], ev["seed"]) for ev in hz])
        check("candidate.get gives the final comparison and the same gains",
              "final" in cand and cand.get("gains") == with_gains[0]["gains"], cand.get("gains"))
        hrow = [t for t in with_gains[0]["tasks"] if t["task"] == "digits@horizon"]
        check("the leaderboard's task rows include the horizon task at its steps, not in the mean",
              hrow and hrow[0]["steps"] == HSTEPS and hrow[0]["holdout"], with_gains[0]["tasks"])

        rc, out, err = ctl(a.sock, "leaderboard", str(job))
        lab = with_gains[0]["gains"]["label"] if with_gains else "?"
        check("lossctl leaderboard prints both gains side by side with the label",
              rc == 0 and "SEARCH RECIPE" in out and "YOUR RECIPE" in out and lab in out
              and "%d steps" % HSTEPS in out, out, err)
        rc, out, err = ctl(a.sock, "show", "%d:%d" % (job, top))
        check("lossctl show prints the gain at the search's recipe and at yours",
              rc == 0 and "at the search's recipe" in out and "at your recipe (%d steps" % HSTEPS in out, out, err)
        rep = os.path.join(tmp, "r.html")
        rc, out, err = ctl(a.sock, "report", str(job), "-o", rep)
        html = open(rep).read() if rc == 0 else ""
        check("the HTML report has the side-by-side table with the label",
              "At your recipe" in html and ">%s</td>" % lab in html, rc, err)
        ref = finals(c, job)
        ref_gains = {e["cand"]: e["gains"] for e in with_gains}

        # ---- the same job with 1 worker: the same comparisons --------------------------------
        b = Daemon(tmp, "b", 1)
        daemons.append(b)
        b.start()
        jb = b.client().submit(JOB)
        jb_info = b.wait_done(jb)
        got = finals(b.client(), jb)
        diff = [(k, got.get(k), ref.get(k)) for k in sorted(set(got) | set(ref)) if got.get(k) != ref.get(k)]
        check("1 worker gives the same final comparisons as 2 (search and horizon)",
              jb_info["state"] == "done" and not diff, jb_info["state"], diff[:1])

        # ---- kill -9 during the horizon round, restart: the same comparisons -----------------
        total = info["progress"]["evaluations"]
        before_hz = total - st["horizon_evaluations"]
        k = Daemon(tmp, "k", 2)
        daemons.append(k)
        k.start()
        jk = k.client().submit(JOB)
        killed_at = None
        end = time.time() + 300
        while time.time() < end:
            j = k.client().call("job.get", job_id=jk)
            if j["state"] != "running":
                break
            if j["progress"]["evaluations"] > before_hz:
                k.kill9()
                killed_at = j["progress"]["evaluations"]
                break
            time.sleep(0.01)
        check("killed -9 inside the horizon round", killed_at is not None and killed_at < total,
              killed_at, before_hz, total)
        k.start()
        jk_info = k.wait_done(jk)
        got = finals(k.client(), jk)
        check("after kill -9 and a restart the job ends done", jk_info["state"] == "done", jk_info.get("error"))
        check("... with the same final comparisons as the uninterrupted run", got == ref, sorted(got), sorted(ref))
        check("... and the same number of stored evaluations (none lost, none run twice)",
              jk_info["progress"]["evaluations"] == total, jk_info["progress"]["evaluations"], total)
        gk = {e["cand"]: e["gains"] for e in k.client().call("leaderboard.query", job_id=jk, k=10)["entries"]
              if "gains" in e}
        check("... and the same gains and labels", gk == ref_gains, gk, ref_gains)

        # ---- the default ------------------------------------------------------------------------
        small = dict(JOB, final={"top": 1, "seeds": 2}, name="small")
        big = dict(JOB, final={"top": 1, "seeds": 2}, budget={"evaluations": 200}, name="big")
        js = c.submit(small)
        jb2 = c.submit(big)
        fs = c.call("job.get", job_id=js)["spec"]["final"]
        fb = c.call("job.get", job_id=jb2)["spec"]["final"]
        for jj in (js, jb2):  # the small one may already be done
            try:
                c.cancel(jj)
            except lossd.LossdError:
                pass
        check("below 200 evaluations no horizon unless asked", fs.get("horizon") is False, fs)
        check("from 200 evaluations the default horizon: 5x the steps, final.seeds seeds",
              fb.get("horizon") == {"steps_factor": 5, "seeds": 2}, fb)
        bad = dict(JOB, final={"top": 1, "seeds": 2, "horizon": {"steps": 60}})
        try:
            c.submit(bad)
            msg = ""
        except Exception as e:  # noqa: BLE001
            msg = str(e)
        check("a horizon that is the search's own recipe is refused, saying so", "same recipe" in msg, msg)
        try:
            c.submit(dict(JOB, final={"top": 1, "horizon": {"steps": 100, "color": 1, "model": 3}}))
            msg = ""
        except Exception as e:  # noqa: BLE001
            msg = str(e)
        check("unknown keys and a model that is not an object are named",
              "final.horizon.color: unknown key" in msg and "final.horizon.model: must be an object" in msg, msg)
    finally:
        for d in daemons:
            d.stop()
        if lib.failed:
            for d in daemons:
                if os.path.exists(d.log):
                    print("---- %s" % d.log)
                    print(open(d.log).read()[-2000:])
        shutil.rmtree(tmp, ignore_errors=True)
    lib.finish()


if __name__ == "__main__":
    main()
