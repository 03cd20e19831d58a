#!/usr/bin/python3
"""test_result_cache.py: the daemon reads the cross-job result cache (issue 13; lossd serve
--result-cache). A job run a second time on the same database (same task, losses, seeds and steps) trains nothing again: its
works are answered from the first job's stored results, and each is stored as the second job's
own evaluation, so its leaderboard is complete and equal to the first's. Checks server.status's
result_cache_hits, the evaluations stored per job, and both leaderboards (fitness, per-task
means and run counts). Uses $LOSSD_BIN/lossd, its own temporary directory, socket and database;
prints "N passed, N failed" last."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
from lib import Daemon, wait_state  # noqa: E402

JOB = {"name": "cache-a", "seed": 3,
       "tasks": [{"data": "builtin:digits", "train": {"steps": 60}}],
       "budget": {"evaluations": 40}, "population": 6, "children": 6, "seeds": 2,
       "final": {"top": 2, "seeds": 2}, "warm_start": False}


def lb(d, jid):
    r = d.call("leaderboard.query", {"job_id": jid, "k": 50}).get("result") or {}
    out = []
    for e in r.get("entries") or []:
        tasks = [(t.get("task"), t.get("n"), t.get("val_mean")) for t in e.get("tasks") or []]
        out.append((e.get("cand"), e.get("expr"), e.get("fitness"), e.get("mean"), tasks))
    return out


def stored(db, jid):
    """(evaluations stored, of them rejected before training: the cache never answers those)"""
    return lib.db_query(db, "SELECT count(*), coalesce(sum(error LIKE 'rejected before training:%'), "
                        "0) FROM evaluations WHERE job_id = ? AND status <> 'interrupted'", (jid,))


def same(x, y):
    """Leaderboards equal, numbers to 1e-12 (a mean's sum may add its rows in another order)."""
    if isinstance(x, (list, tuple)) and isinstance(y, (list, tuple)):
        return len(x) == len(y) and all(same(a, b) for a, b in zip(x, y))
    if isinstance(x, float) and isinstance(y, float):
        return abs(x - y) <= 1e-12 * max(1.0, abs(x))
    return x == y


def body(tmp):
    db = os.path.join(tmp, "c.db")
    d = lib.start(tmp, "c", args=("--result-cache",))
    if not d:
        return
    a = d.call("job.submit", {"job": JOB})["result"]["job_id"]
    sa = wait_state(d, a, ("done", "failed"))
    hits_a = d.call("server.status")["result"].get("result_cache_hits")
    lb_a, (na, _) = lb(d, a), stored(db, a)
    lib.check("the first job is done and trained its works (%d stored, %s cache hits)"
              % (na, hits_a), sa.get("state") == "done" and na > 0 and lb_a, sa)
    b = d.call("job.submit", {"job": dict(JOB, name="cache-b")})["result"]["job_id"]
    sb = wait_state(d, b, ("done", "failed"))
    st = d.call("server.status")["result"]
    hits_b = st.get("result_cache_hits", 0) - (hits_a or 0)
    lb_b, (nb, rej_b) = lb(d, b), stored(db, b)
    d.stop()
    d = None
    lib.check("the second job is done", sb.get("state") == "done", sb)
    lib.check("its works came from the cache: %d hits for %d stored evaluations (%d rejected "
              "before training, which the cache does not answer)" % (hits_b, nb, rej_b),
              nb > 0 and hits_b == nb - rej_b, st)
    lib.check("each hit is stored as the second job's own evaluation (%d and %d)" % (na, nb),
              na == nb)
    # (an entry whose runs all failed has no per-task numbers, in both runs alike)
    lib.check("the second job's leaderboard equals the first's, per-task numbers included "
              "(%d entries, %d with per-task numbers)"
              % (len(lb_b), sum(1 for e in lb_b if e[4])),
              same(lb_b, lb_a) and any(e[4] for e in lb_b),
              *[("first", x, "second", y) for x, y in zip(lb_a, lb_b) if not same(x, y)][:3])
    # the same job without --result-cache trains everything and ends on the same leaderboard
    d = Daemon(tmp, db, tag="n")
    c = d.call("job.submit", {"job": dict(JOB, name="cache-c")})["result"]["job_id"]
    sc = wait_state(d, c, ("done", "failed"))
    hits_c = d.call("server.status")["result"].get("result_cache_hits")
    lb_c = lb(d, c)
    d.stop()
    lib.check("lossd serve without --result-cache: the third run is done with 0 cache hits and the "
              "same leaderboard (%s hits)" % hits_c,
              sc.get("state") == "done" and hits_c == 0 and same(lb_c, lb_a), lb_c[:2])
    lib.check("its progress counts the cached evaluations (%s)"
              % (sb.get("progress") or {}).get("evaluations"),
              (sb.get("progress") or {}).get("evaluations") ==
              (sa.get("progress") or {}).get("evaluations"), sa.get("progress"),
              sb.get("progress"))


def main():
    lib.run("lossd_result_cache.", body)


if __name__ == "__main__":
    main()
