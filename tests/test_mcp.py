#!/usr/bin/python3
"""test_mcp.py: `lossctl mcp`, the Model Context Protocol server, driven over stdio by a scripted
client as an assistant would drive it, against a real daemon (issue 17): initialize (version,
capabilities, serverInfo), notifications that get no reply, tools/list (every tool with a JSON
Schema), a call of each tool (submit a job, list and get it, its leaderboard with statistics, a
candidate with lineage and curves, export as PyTorch and NumPy), tool failures as isError
results (bad arguments, a daemon error, no daemon), protocol errors as JSON-RPC errors (unknown
tool, not JSON), and a write refused when the server is read-only (the default). Uses
$LOSSD_BIN/lossd and lossctl; prints "N passed, N failed" last."""
import json
import os
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

JOB = {"name": "mcp", "tasks": [{"data": "builtin:digits", "train": {"steps": 40}}],
       "budget": {"evaluations": 14}, "population": 5, "children": 4, "seeds": 1,
       "fidelity": {"steps": [40]}, "final": {"top": 2, "seeds": 2}, "seed": 5}
READ_TOOLS = {"list_jobs", "get_job", "leaderboard", "show_candidate", "export_loss"}


class Session:
    """One `lossctl mcp` process; call() sends a request and returns its reply."""

    def __init__(self, sock, *args):
        self.p = subprocess.Popen([LOSSCTL, "--socket", sock, "mcp"] + list(args), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.next_id = 1

    def send(self, obj):
        self.p.stdin.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
        self.p.stdin.flush()

    def reply(self):
        line = self.p.stdout.readline()
        return json.loads(line) if line else None

    def call(self, method, params=None):
        req = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        self.next_id += 1
        if params is not None:
            req["params"] = params
        self.send(req)
        return self.reply()

    def tool(self, name, **arguments):
        """tools/call: (result, text of its first block) or (the error reply, None)."""
        r = self.call("tools/call", {"name": name, "arguments": arguments})
        if "result" not in r:
            return r, None
        return r["result"], r["result"]["content"][0]["text"]

    def close(self):
        self.p.stdin.close()
        rc = self.p.wait(timeout=30)
        err = self.p.stderr.read()
        self.p.stdout.close()
        self.p.stderr.close()
        return rc, err


def handshake(s, name):
    r = s.call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                              "clientInfo": {"name": "test_mcp", "version": "1"}})
    res = r.get("result", {})
    check(name + ": initialize answers version, tools capability, serverInfo",
          res.get("protocolVersion") == "2025-06-18" and "tools" in res.get("capabilities", {})
          and res.get("serverInfo", {}).get("name") == "lossd" and res["serverInfo"].get("version"), r)
    s.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    r = s.call("ping")
    check(name + ": a notification gets no reply (the next reply is ping's)",
          r.get("id") == s.next_id - 1 and r.get("result") == {}, r)


def read_only_session(sock):
    s = Session(sock)
    handshake(s, "read-only")
    r = s.call("tools/list")
    tools = {t["name"]: t for t in r.get("result", {}).get("tools", [])}
    check("read-only: tools/list lists the read tools only", set(tools) == READ_TOOLS, sorted(tools))
    schemas_ok = all(t["inputSchema"].get("type") == "object" and isinstance(t.get("description"), str)
                     and all("type" in p and "description" in p for p in t["inputSchema"]["properties"].values())
                     and set(t["inputSchema"]["required"]) <= set(t["inputSchema"]["properties"])
                     for t in tools.values())
    check("every tool has a description and a JSON Schema for its arguments", schemas_ok, tools)
    check("show_candidate requires job_id and cand",
          tools.get("show_candidate", {}).get("inputSchema", {}).get("required") == ["job_id", "cand"], tools)

    res, text = s.tool("submit_job", job=JOB)
    check("read-only: submit_job is refused as a tool error saying how to allow it",
          text is not None and res.get("isError") is True and "read-only" in text and "--allow-write" in text,
          res)
    res, text = s.tool("propose_candidates", job_id=1, exprs=["ce"])
    check("read-only: propose_candidates is refused too", text is not None and res.get("isError") is True
          and "read-only" in text, res)
    jobs = lossd.Client(sock).call("job.list")["jobs"]
    check("read-only: nothing was submitted", jobs == [], jobs)
    rc, err = s.close()
    check("read-only: exits 0 at the end of input, nothing on stderr", rc == 0 and err == "", rc, err)


def write_session(sock, tmp):
    s = Session(sock, "--allow-write")
    handshake(s, "write")
    r = s.call("tools/list")
    names = {t["name"] for t in r.get("result", {}).get("tools", [])}
    check("--allow-write: tools/list adds submit_job", READ_TOOLS | {"submit_job"} <= names, sorted(names))

    res, text = s.tool("submit_job", job=JOB, client_token="mcp-1")
    job = res.get("structuredContent", {}).get("job_id")
    check("submit_job returns the job's id", text is not None and not res.get("isError") and isinstance(job, int)
          and json.loads(text).get("job_id") == job, res)
    res2, _ = s.tool("submit_job", job=JOB, client_token="mcp-1")
    check("submit_job with the same client_token returns the same job",
          res2.get("structuredContent", {}).get("job_id") == job
          and res2["structuredContent"].get("existing") is True, res2)
    res, text = s.tool("submit_job", job={"tasks": [], "budget": {"evaluations": 0}})
    check("an invalid job is a tool error naming every problem",
          res.get("isError") is True and "budget.evaluations" in text and "tasks" in text, res)
    res, text = s.tool("submit_job", job={"tasks": [{"data": "nothere.csv"}]}, base_dir=tmp)
    check("a missing data file is a tool error naming the path under base_dir",
          res.get("isError") is True and os.path.join(os.path.realpath(tmp), "nothere.csv") in text, res)

    state = None
    for _ in range(600):
        res, text = s.tool("get_job", job_id=job)
        state = res.get("structuredContent", {}).get("state")
        if state in ("done", "failed", "cancelled"):
            break
        time.sleep(0.2)
    check("get_job follows the job to done", state == "done", res)

    res, text = s.tool("list_jobs", state="done")
    jobs = res.get("structuredContent", {}).get("jobs", [])
    check("list_jobs state=done lists the job", [j["job_id"] for j in jobs] == [job], res)
    res, text = s.tool("list_jobs", state="bogus")
    check("list_jobs with a state outside the enum is a tool error",
          res.get("isError") is True and "arguments.state" in text, res)

    res, text = s.tool("leaderboard", job_id=job, k=3)
    lb = res.get("structuredContent", {})
    ents = lb.get("entries", [])
    direct = lossd.Client(sock).call("leaderboard.query", job_id=job, k=3)
    check("leaderboard: entries with fitness, mean, spread, runs and per-task statistics",
          len(ents) >= 1 and all("fitness" in e and "mean" in e and "spread" in e and "runs" in e
                                 and e["tasks"] and "val_mean" in e["tasks"][0] for e in ents), lb)
    check("leaderboard: the same numbers as leaderboard.query", lb == direct and json.loads(text) == direct,
          lb, direct)
    res, text = s.tool("leaderboard", job_id=job, family="classification")
    check("leaderboard with job_id and family: the daemon's error as a tool error",
          res.get("isError") is True and "family" in text, res)

    top = ents[0]["cand"] if ents else 1
    res, text = s.tool("show_candidate", job_id=job, cand=top)
    c = res.get("structuredContent", {})
    evs = c.get("evaluations", [])
    check("show_candidate: expression, lineage, evaluations with curves",
          c.get("expr") and "lineage" in c and evs and all(len(e.get("curve", [])) >= 2 for e in evs
                                                           if e.get("status") == "ok"), c)
    check("show_candidate: the duplicated per-evaluation result object is left out",
          evs and all("result" not in e for e in evs), evs[:1])
    res, text = s.tool("show_candidate", job_id=job, cand=top, curves=False)
    check("show_candidate curves=false leaves the curves out",
          all("curve" not in e for e in res.get("structuredContent", {}).get("evaluations", [])), res)
    res, text = s.tool("show_candidate", job_id=job, cand=100000)
    check("show_candidate of a missing candidate: a tool error saying not found",
          res.get("isError") is True and "not found" in text, res)
    res, text = s.tool("show_candidate", job_id=job)
    check("show_candidate without cand: a tool error naming the argument",
          res.get("isError") is True and text.startswith("arguments.cand: missing"), res)
    res, text = s.tool("show_candidate", job_id=job, cand=1, colour="red")
    check("an unknown argument is a tool error listing the known ones",
          res.get("isError") is True and "arguments.colour: unknown" in text and "job_id, cand, curves" in text, res)

    res, text = s.tool("export_loss", job_id=job, cand=top)
    check("export_loss: PyTorch by default, the code itself as text",
          not res.get("isError") and "def lossd_loss" in (text or "") and "import torch" in text
          and res.get("structuredContent", {}).get("format") == "pytorch", res)
    try:
        compile(text, "export.py", "exec")
        ok = True
    except SyntaxError as e:
        ok = e
    check("export_loss: the PyTorch text compiles", ok is True, ok)
    res, text = s.tool("export_loss", expr="0.7*ce + 0.3*focal(2)", family="classification", format="numpy")
    check("export_loss of an expression as NumPy", not res.get("isError") and "import numpy" in (text or ""), res)
    res, text = s.tool("export_loss", expr="ce +", family="classification")
    check("export_loss of a broken expression: the parser's message as a tool error",
          res.get("isError") is True and len(text) > 10, res)

    r = s.call("tools/call", {"name": "frobnicate", "arguments": {}})
    check("an unknown tool is a JSON-RPC error -32602", r.get("error", {}).get("code") == -32602
          and "frobnicate" in r["error"]["message"], r)
    r = s.call("tools/list_all")
    check("an unknown method is -32601", r.get("error", {}).get("code") == -32601, r)
    s.send('{"jsonrpc":"2.0", x}')
    r = s.reply()
    check("a line that is not JSON is -32700 with id null", r.get("error", {}).get("code") == -32700
          and r.get("id") is None, r)
    r = s.call("tools/call", {"arguments": {}})
    check("tools/call without a name is -32602", r.get("error", {}).get("code") == -32602, r)
    rc, err = s.close()
    check("write session exits 0", rc == 0, rc, err)
    return job


def propose_session(sock):
    """propose_candidates through MCP into a running job (when the daemon has candidate.propose)."""
    c = lossd.Client(sock)
    if "candidate.propose" not in c.hello().get("methods", []):
        print("     (this daemon has no candidate.propose: propose_candidates not exercised)")
        return
    job = c.submit(dict(JOB, name="mcp-propose", budget={"evaluations": 4000}, seed=6))
    s = Session(sock, "--allow-write")
    handshake(s, "propose")
    names = {t["name"] for t in s.call("tools/list")["result"]["tools"]}
    check("--allow-write with a daemon that takes proposals lists propose_candidates",
          "propose_candidates" in names, sorted(names))
    for _ in range(1200):  # proposals go into a running job (up to 60 s)
        if c.call("job.get", job_id=job)["state"] == "running":
            break
        time.sleep(0.05)
    res, text = s.tool("propose_candidates", job_id=job, exprs=["0.3*ce + 0.7*mae", "2*ce", "foo(1)"],
                       source="mcp", note="tried as an assistant would")
    props = res.get("structuredContent", {}).get("proposals", [])
    check("propose_candidates: per expression accepted, duplicate or refused",
          not res.get("isError") and [p.get("status") for p in props] == ["accepted", "duplicate", "refused"],
          res)
    res, text = s.tool("propose_candidates", job_id=job, exprs="ce")
    check("propose_candidates with exprs not an array: a tool error", res.get("isError") is True
          and "arguments.exprs" in text, res)
    try:
        c.cancel(job)
    except lossd.LossdError:
        pass
    s.close()
    r = Session(sock)
    res, text = r.tool("propose_candidates", job_id=job, exprs=["ce"])
    check("read-only: propose_candidates is refused", res.get("isError") is True and "read-only" in text, res)
    r.close()


def no_daemon(tmp):
    s = Session(os.path.join(tmp, "nobody.sock"))
    handshake(s, "no daemon")
    res, text = s.tool("list_jobs")
    check("no daemon: a tool error saying it cannot connect",
          res.get("isError") is True and "cannot connect" in text, res)
    s.close()


def main():
    tmp = tempfile.mkdtemp(prefix="lossd_mcp.")
    try:
        with lib.serving(tmp, lossd.Client, workers=2) as (proc, sock):
            if sock:
                read_only_session(sock)
                write_session(sock, tmp)
                propose_session(sock)
        no_daemon(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    lib.finish()


if __name__ == "__main__":
    main()
