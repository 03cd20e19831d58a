#!/usr/bin/python3
"""test_group_commit.py: group commits (issue 13). Finished evaluations are stored one
transaction per batch (`lossd serve --commit-ms`), and none is counted or reported before its
batch committed. The test runs a search with a long window (--commit-ms 1000, so results wait
in nearly every moment) and checks:
- batching happens: fewer transactions than results (server.status result_commits against
  results_committed);
- nothing is counted before it is stored: at every poll, the job's reported evaluations and its
  leaderboard's candidates are already in the database file (read by another connection);
- kill -9 while results wait (server.status results_waiting > 0): nothing acknowledged is
  lost, PRAGMA integrity_check is ok, and after a restart the job ends with the leaderboard of
  an undisturbed run (the lost results were run again, deterministically);
- --commit-ms 0 (one transaction per evaluation) commits each result alone.
Uses $LOSSD_BIN/lossd, its own temporary directory, socket and database; prints "N passed,
N failed" last."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import Daemon, board, state, wait_state  # noqa: E402
from test_faults_daemon import db_facts  # noqa: E402

# rounds of 16 short trainings: a round's results arrive over a while and batch up
JOB = {"name": "group-commit", "seed": 11,
       "tasks": [{"data": "builtin:digits", "train": {"steps": 200}}],
       "budget": {"evaluations": 96}, "population": 8, "children": 16, "seeds": 1,
       "final": {"top": 2, "seeds": 2}}


def stored(db, jid):
    """(evaluations stored and not interrupted, candidates stored) read from the file."""
    n = lib.db_query(db, "SELECT count(*) FROM evaluations WHERE job_id = ? AND "
                     "status <> 'interrupted'", (jid,))[0]
    cands = {c for (c,) in lib.db_query(db, "SELECT cand FROM candidates WHERE job_id = ?", (jid,), True)}
    return n, cands


def reference(tmp):
    d = lib.start(tmp, "ref")
    if not d:
        return None
    jid = d.call("job.submit", {"job": JOB})["result"]["job_id"]
    s = wait_state(d, jid, ("done", "failed"))
    ref = board(d, jid)
    st = d.call("server.status")["result"]
    d.stop()
    lib.check("the undisturbed run (default --commit-ms) is done with a leaderboard",
              s.get("state") == "done" and ref, s, ref[:3])
    lib.check("the default batches results: %d results in %d transactions"
              % (st.get("results_committed", 0), st.get("result_commits", 0)),
              0 < st.get("result_commits", 0) < st.get("results_committed", 0), st)
    return ref


def run_killed(tmp, ref, kill_after, tag):
    """A run with --commit-ms 1000, polled and killed -9 once kill_after results are counted
    and some wait; then restarted with the default and finished."""
    db = os.path.join(tmp, tag + ".db")
    d = lib.start(tmp, tag, args=("--commit-ms", "1000"))
    if not d:
        return
    jid = d.call("job.submit", {"job": JOB})["result"]["job_id"]
    early, polls, waiting, seen_waiting, acked, acked_cands, st = [], 0, 0, 0, 0, set(), {}
    t_end = time.time() + 120
    while time.time() < t_end:
        s = state(d, jid)
        lb = {c for c, _, _ in board(d, jid)}
        st = d.call("server.status")["result"]
        waiting = st.get("results_waiting", 0)
        seen_waiting = max(seen_waiting, waiting)
        ev = (s.get("progress") or {}).get("evaluations") or 0
        acked, acked_cands = max(acked, ev), acked_cands | lb
        if s.get("state") in ("done", "failed") or (acked >= kill_after and waiting > 0):
            break  # killed right after an answer saying results wait for their commit
        n, cands = stored(db, jid)  # after the answers: what they reported must be stored
        polls += 1
        if ev > n or not lb <= cands:
            early.append((ev, n, sorted(lb - cands)))
    d.kill9()
    lib.check("%s: every poll's counts and leaderboard were already stored (%d polls)"
              % (tag, polls), not early, early[:5])
    lib.check("%s: results were batched (%d results in %d transactions)"
              % (tag, st.get("results_committed", 0), st.get("result_commits", 0)),
              0 < st.get("result_commits", 0) < st.get("results_committed", 0), st)
    lib.check("%s: killed -9 after %d evaluations were counted and the daemon said %d waited "
              "for their commit (at most %d seen waiting)" % (tag, acked, waiting, seen_waiting),
              waiting > 0 and acked >= kill_after, st, s)
    integ, _, cands = db_facts(db, jid)
    n, _ = stored(db, jid)
    lib.check("%s: nothing acknowledged lost: %d counted, %d stored, integrity %s"
              % (tag, acked, n, integ),
              integ == "ok" and n >= acked and acked_cands <= set(cands), acked_cands - set(cands))
    d = Daemon(tmp, db, tag=tag + "r")
    if not d.up():
        lib.bad("%s: the restart answers" % tag, d.logtext()[-2000:])
        return
    s = wait_state(d, jid, ("done", "failed"))
    got = board(d, jid)
    d.stop()
    lib.check("%s: after the restart the job is done with the undisturbed run's leaderboard"
              % tag, s.get("state") == "done" and got == ref, s.get("state"), got[:3], ref[:3])


def run_single(tmp):
    d = lib.start(tmp, "one", args=("--commit-ms", "0"))
    if not d:
        return
    jid = d.call("job.submit", {"job": dict(JOB, budget={"evaluations": 32})})["result"]["job_id"]
    s = wait_state(d, jid, ("done", "failed"))
    st = d.call("server.status")["result"]
    d.stop()
    lib.check("--commit-ms 0: one transaction per result (%d results, %d transactions)"
              % (st.get("results_committed", 0), st.get("result_commits", 0)),
              s.get("state") == "done" and
              st.get("result_commits", 0) == st.get("results_committed", 0) > 0, st)


def body(tmp):
    ref = reference(tmp)
    if ref:
        run_killed(tmp, ref, 8, "k1")
        run_killed(tmp, ref, 40, "k2")
    run_single(tmp)


def main():
    lib.run("lossd_group_commit.", body)


if __name__ == "__main__":
    main()
