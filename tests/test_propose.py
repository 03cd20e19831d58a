#!/usr/bin/python3
"""test_propose.py: proposals into a running job (candidate.propose, docs/jobs.md "Proposals"),
tried as a proposer would against a real daemon: accepted ones trained and labelled with their
origin, duplicates found both ways (canonical form; gradient signature: 2*ce and -log(pt) train
as the baseline ce), refusals with the parser's and checker's messages, the budget's refusal,
an evaluate-only job that waits for proposals and ends with job.finish, lossctl propose, and a
proposal round replayed identically after kill -9 (the restarted daemon's leaderboard equals
`lossd search --proposals` with the same arrival point). Prints "N passed, N failed" last."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lib import LOSSCTL, LOSSD, ROOT, bad, check, ok  # noqa: E402
import lib  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "api", "python"))
import lossd  # noqa: E402


def task(steps):
    return [{"name": "digits", "data": "builtin:digits", "train": {"steps": steps}}]


def wait_for(fn, timeout=120, step=0.05):
    """fn()'s first truthy value within timeout seconds, else None."""
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return None


def phase(c, jid):
    return (c.job(jid).get("stats") or {}).get("phase")


def by_expr(reply):
    return {p["expr"]: p for p in reply["proposals"]}


def test_evaluate_only(c, sock):
    """An evaluate-only job: the seed losses, then only what is proposed; waits between."""
    job = {"name": "bring-your-own", "tasks": task(60), "mode": "evaluate_only", "baseline": "ce",
           "budget": {"evaluations": 12}, "seeds": 1, "final": {"top": 2, "seeds": 2},
           "seed_losses": ["focal(2)"], "seed": 3}
    jid = c.submit(job)
    w = wait_for(lambda: phase(c, jid) == "waiting")
    check("evaluate-only job waits for proposals after its seeds", w,
          json.dumps(c.job(jid).get("stats"))[:600])
    g = c.job(jid)
    check("a waiting job is running with progress.waiting", g["state"] == "running" and
          g["progress"].get("waiting") is True, g["state"], g["progress"])
    exprs = ["0.5*ce + 0.5*focal(2)", "2*ce", "-log(pt)", "1*focal(2) + 0", "foo(1)", "phys",
             "ce - ce", "hinge +", "ce + ce"]
    r = c.propose(jid, exprs, source="test", note="tried as a new user would")
    p = by_expr(r)
    check("reply has one entry per expression, in order",
          [x["expr"] for x in r["proposals"]] == exprs, r)
    a = p["0.5*ce + 0.5*focal(2)"]
    check("a new loss is accepted as a new candidate",
          a["status"] == "accepted" and a["cand"] >= 2, a)
    d = p["2*ce"]
    check("2*ce is a duplicate of the baseline ce by gradient signature",
          d["status"] == "duplicate" and d["cand"] == 0 and d["why"] == "same gradient signature"
          and d.get("of_expr") == "ce", d)
    d = p["-log(pt)"]
    check("-log(pt) (ce written in primitives) is a duplicate of ce by gradient signature",
          d["status"] == "duplicate" and d["cand"] == 0 and d["why"] == "same gradient signature", d)
    d = p["1*focal(2) + 0"]
    check("1*focal(2) + 0 is a duplicate of the seed focal(2) by canonical form",
          d["status"] == "duplicate" and d["why"] == "same canonical form"
          and d.get("of_expr") == "focal(2)" and d.get("canonical") == "focal(2)", d)
    d = p["ce + ce"]
    check("ce + ce has 2*ce's canonical form, which trains as ce: duplicate of ce",
          d["status"] == "duplicate" and d["cand"] == 0 and d.get("canonical") == "2*ce"
          and d.get("same_form_as", -1) > 0, d)
    d = p["foo(1)"]
    check("an unknown name is refused with the parser's message (column and name)",
          d["status"] == "refused" and d["stage"] == "parse"
          and "column 1" in d["error"] and "foo" in d["error"], d)
    d = p["hinge +"]
    check("a syntax error is refused at parse with its column",
          d["status"] == "refused" and d["stage"] == "parse" and "column" in d["error"], d)
    d = p["phys"]
    check("a term of another family is refused with the checker's message",
          d["status"] == "refused" and d["stage"] == "check"
          and "'phys' is not available for classification" in d["error"], d)
    d = p["ce - ce"]
    check("a loss that folds to a constant is refused by the checker",
          d["status"] == "refused" and d["stage"] == "check" and "does not depend" in d["error"], d)
    check("counts add up", (r["accepted"], r["duplicates"], r["refused"]) == (1, 4, 4), r)

    # the accepted one is trained in the next round and shows its origin
    def trained():
        lb = c.leaderboard(jid, top=20)
        return lb if any(e["cand"] == a["cand"] for e in lb) else None
    lb = wait_for(trained)
    origins = {e["cand"]: e.get("origin") for e in (lb or [])}
    check("the accepted proposal is trained and its origin is proposed:test",
          origins.get(a["cand"]) == "proposed:test", origins)
    check("baseline and seed loss have origin seed", origins.get(0) == "seed" and
          origins.get(1) == "seed", origins)
    check("evaluate-only trains nothing the search made",
          lb is not None and all(e.get("origin") in ("seed", "proposed:test") for e in lb),
          [(e["cand"], e["expr"], e.get("op"), e.get("origin")) for e in lb or []])
    cg = c.call("candidate.get", job_id=jid, cand=a["cand"])
    check("candidate.get gives the origin", cg.get("origin") == "proposed:test", cg.get("origin"))

    # the budget: 12 evaluations, one level-0 run a proposal (one task, one seed)
    wait_for(lambda: phase(c, jid) == "waiting")
    many = ["hinge", "poly1(1)", "smooth(0.1)", "mae", "0.3*ce + hinge", "ce + 0.5*entropy",
            "focal(0.5)", "mse + ce", "poly1(3)", "smooth(0.3) + hinge", "focal(4)", "0.2*mae + ce"]
    r = c.propose(jid, many, source="test")
    refused = [x for x in r["proposals"] if x["status"] == "refused"]
    check("proposals beyond the budget are refused, saying the budget",
          refused and all(x["stage"] == "budget" and "budget.evaluations" in x["error"]
                          for x in refused) and r["accepted"] >= 1,
          json.dumps(r)[:1500])
    # waits until a proposal fits no more or finish: finish it
    wait_for(lambda: phase(c, jid) in ("waiting", "final", "done"))
    try:  # the budget may end the search on its own meanwhile: then the job is done already
        c.finish(jid)
    except lossd.LossdError as e:
        if e.code != -32002:
            raise
    fin = wait_for(lambda: c.job(jid)["state"] == "done" and c.job(jid))
    check("job.finish ends an evaluate-only job with its final re-evaluation",
          fin and fin["progress"]["final_evaluations"] > 0, fin and fin["progress"])
    e = None
    try:
        c.propose(jid, ["ce"])
    except lossd.LossdError as x:
        e = x
    check("a done job refuses proposals with -32002", e is not None and e.code == -32002, e)
    st = fin and fin.get("stats", {}).get("proposals")
    check("stats count the proposals", st and st["received"] == len(exprs) + len(many), st)


def test_errors(c):
    e = None
    try:
        c.call("candidate.propose", job_id=999, exprs=["ce"])
    except lossd.LossdError as x:
        e = x
    check("an unknown job is -32001", e is not None and e.code == -32001, e)
    for params, what in (({"job_id": 1, "exprs": []}, "params.exprs"),
                         ({"job_id": 1, "exprs": [3]}, "params.exprs[0]"),
                         ({"job_id": 1, "exprs": ["ce"], "source": "a b"}, "params.source")):
        e = None
        try:
            c.call("candidate.propose", **params)
        except lossd.LossdError as x:
            e = x
        check("bad params are -32602 naming %s" % what,
              e is not None and e.code == -32602 and what in str(e), e)


def test_lossctl(tmp, c, sock):
    """lossctl propose JOB EXPR... --from FILE --source LABEL, then lossctl leaderboard/show."""
    job = {"name": "ctl", "tasks": task(40), "mode": "evaluate_only", "baseline": "ce",
           "budget": {"evaluations": 10},
           "seeds": 1, "final": {"top": 1, "seeds": 2}, "seed": 4}
    jid = c.submit(job)
    wait_for(lambda: phase(c, jid) == "waiting")
    f = os.path.join(tmp, "ideas.txt")
    with open(f, "w") as fh:
        fh.write("# one loss a line\npoly1(1)\n\nhinge\n")
    env = dict(os.environ, LOSSD_SOCKET=sock)
    r = subprocess.run([LOSSCTL, "propose", str(jid), "smooth(0.1)", "2*ce", "--from", f,
                        "--source", "ctl"], capture_output=True, text=True, env=env, timeout=60)
    out = r.stdout
    check("lossctl propose prints one line per expression",
          r.returncode == 0 and "smooth(0.1)" in out and "accepted" in out and
          "duplicate" in out and "poly1(1)" in out and "hinge" in out, r.returncode, out, r.stderr)
    r = subprocess.run([LOSSCTL, "propose", str(jid), "foo(", "--source", "ctl"],
                       capture_output=True, text=True, env=env, timeout=60)
    check("lossctl propose: a refused proposal exits 1 with the message",
          r.returncode == 1 and "refused" in r.stdout and "column" in r.stdout, r.returncode,
          r.stdout, r.stderr)
    wait_for(lambda: len(c.leaderboard(jid, top=20)) >= 4)
    r = subprocess.run([LOSSCTL, "leaderboard", str(jid)], capture_output=True, text=True,
                       env=env, timeout=60)
    check("lossctl leaderboard shows the origin", "proposed:ctl" in r.stdout, r.stdout, r.stderr)
    lb = c.leaderboard(jid, top=20)
    pc = [e for e in lb if e.get("origin") == "proposed:ctl"]
    if pc:
        r = subprocess.run([LOSSCTL, "show", "%d:%d" % (jid, pc[0]["cand"])], capture_output=True,
                           text=True, env=env, timeout=60)
        check("lossctl show gives the origin", "proposed:ctl" in r.stdout, r.stdout, r.stderr)
    else:
        bad("a proposal of lossctl is trained", lb)
    try:
        c.finish(jid)
    except lossd.LossdError as e:
        if e.code != -32002:
            raise


class Daemon:
    def __init__(self, tmp, tag):
        self.tmp, self.tag = tmp, tag
        self.sock = os.path.join(tmp, tag + ".sock")
        self.db = os.path.join(tmp, tag + ".db")
        self.log = os.path.join(tmp, tag + ".log")
        self.p = None

    def start(self):
        self.p = subprocess.Popen([LOSSD, "serve", "--socket", self.sock, "--db", self.db,
                                   "--workers", "2"], stdout=open(self.log, "a"),
                                  stderr=subprocess.STDOUT, cwd=self.tmp)
        c = lossd.Client(self.sock, timeout=120)
        if not wait_for(lambda: self._hello(c), timeout=60, step=0.1):
            bad("daemon %s starts" % self.tag, open(self.log).read()[-2000:])
            return None
        return c

    def _hello(self, c):
        try:
            c.hello()
            return True
        except Exception:
            c.close()
            return False

    def kill9(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def test_replay(tmp):
    """A search job gets proposals mid-run; the daemon is killed with -9 right after the reply
    and restarted. Its final leaderboard must equal lossd search --proposals with the same
    arrival point (the daemon and lossd search run the same engine the same way)."""
    job = {"name": "replay", "tasks": task(200), "baseline": "ce", "budget": {"evaluations": 120},
           "population": 8,
           "children": 6, "seeds": 1, "final": {"top": 2, "seeds": 2}, "seed": 11,
           "warm_start": False}
    jpath = os.path.join(tmp, "replay.job.json")
    with open(jpath, "w") as fh:
        json.dump(job, fh)
    d = Daemon(tmp, "r")
    c = d.start()
    if not c:
        return
    try:
        jid = c.submit(job)
        got = wait_for(lambda: (c.job(jid)["progress"].get("round") or 0) >= 2, step=0.01)
        if not got:
            bad("the search job reaches round 2", c.job(jid))
            return
        exprs = ["0.7*ce + 0.3*focal(2)", "poly1(2) + 0.1*entropy", "2*ce", "focal(", "smooth(0.05)"]
        try:
            r = c.propose(jid, exprs, source="llm")
        except lossd.LossdError as e:
            bad("proposals into the running search are taken", e)
            return
        d.kill9()
        c.close()
        check("proposals into a running search: accepted ones", r["accepted"] >= 2, r)
        c = d.start()
        if not c:
            return
        fin = wait_for(lambda: c.job(jid)["state"] in ("done", "failed") and c.job(jid), timeout=300)
        check("the job finishes after kill -9", fin and fin["state"] == "done", fin)
        log = open(d.log).read()
        check("the restarted daemon resumed the job", "job %d: resuming" % jid in log, log[-1500:])
        # the saved state is normally older than the proposals (it is saved every 2 s): then the
        # restart must hand them over again; a save after them (a loaded machine) needs no replay
        m = re.search(r"job %d: resuming \(.*round (\d+)\)" % jid, log)
        saved_round = int(m.group(1)) if m else -1
        if 0 <= saved_round <= r["round"]:
            check("the restart handed the stored proposals over again as it replayed the rounds "
                  "(state saved at round %d, proposals at round %d)" % (saved_round, r["round"]),
                  "stored proposals are handed over again" in log, log[-1500:])
        else:
            ok("the state was saved after the proposals (round %d > %d): nothing to hand over again"
               % (saved_round, r["round"]))
        lb = c.leaderboard(jid, top=10)
        c.close()
    finally:
        d.stop()
    ppath = os.path.join(tmp, "replay.proposals.jsonl")
    with open(ppath, "w") as fh:
        fh.write(json.dumps({"point": r["point"], "exprs": exprs, "source": "llm"}) + "\n")
    s = subprocess.run([LOSSD, "search", jpath, "--workers", "2", "--quiet", "--proposals", ppath],
                       capture_output=True, text=True, timeout=600)
    if s.returncode != 0:
        bad("lossd search --proposals runs", s.returncode, s.stderr[-1500:])
        return
    ref = json.loads(s.stdout)["leaderboard"]
    ref = [e for e in ref if e.get("rank")][:10]
    a = [(e["cand"], e["expr"], round(e["fitness"], 9), e.get("origin")) for e in ref]
    b = [(e["cand"], e["expr"], round(e["fitness"], 9), e.get("origin")) for e in lb[:len(ref)]]
    check("after kill -9 the leaderboard equals lossd search --proposals at the same point "
          "(%d entries)" % len(a), a == b and len(a) >= 5, "search: %s" % a, "daemon: %s" % b)
    acc = [p["cand"] for p in r["proposals"] if p["status"] == "accepted"]
    check("the proposals were trained in both",
          any(e["cand"] in acc for e in json.loads(s.stdout)["leaderboard"]) or
          json.loads(s.stdout)["stats"]["proposals"]["accepted"] == len(acc),
          json.loads(s.stdout)["stats"].get("proposals"))


def main():
    tmp = tempfile.mkdtemp(prefix="lossd-propose.")
    try:
        with lib.serving(tmp, lambda sock: lossd.Client(sock, timeout=120), name="p") as (proc, sock):
            if sock:
                c = lossd.Client(sock, timeout=120)
                test_errors(c)
                test_evaluate_only(c, sock)
                test_lossctl(tmp, c, sock)
                c.close()
        test_replay(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lib.finish()


if __name__ == "__main__":
    main()
