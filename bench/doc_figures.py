#!/usr/bin/python3
"""doc_figures.py: the measured figures in README.md and docs/ come from one recorded measurement
run, never from copying by hand (issue 19).

  bench/doc_figures.py record   runs the measurements and writes bench/measured.json: the proxy
                                evaluation's speed (bin/lossd bench), the PyTorch reference
                                (torch_proxy.py in the peers folder, when python3-torch is there),
                                the store's queries (build/bench/bench_store), the daemon's
                                latency and throughput (bench/bench_daemon.py) and the share of
                                candidates promoted in bench/jobs/noisy_labels.json (lossd search);
                                `record --only bench,torch` reruns some sources and keeps the rest
  bench/doc_figures.py write    rewrites every marked figure in README.md and docs/*.md from it
  bench/doc_figures.py check    exits 1, naming each, when a marked figure is not the recorded one,
                                a marker names no recorded figure, or a number in a line of
                                README's "Measured" section is missing from the docs it links to
                                (tests/test_doc_figures.sh runs it in `make test`; no timing)

A figure is marked in the Markdown as <!--fig:KEY-->TEXT<!--/fig--> (invisible when rendered);
bench/measured.json holds each KEY's value and text, the command that measured it and the
machine's load average at the time."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.environ.get("DOC_FIGURES_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MEASURED = os.path.join(ROOT, "bench", "measured.json")
PEER = os.environ.get("LOSSD_PEER", os.path.join(os.path.dirname(ROOT), "shared", "peer"))
MARK = re.compile(r"<!--fig:([a-z0-9_.]+)-->(.*?)<!--/fig-->", re.S)


def run_json(cmd, env=None):
    """Runs cmd (from the repository root); returns its output as one JSON document, or its last
    stdout line that is a JSON object."""
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
    try:  # one JSON document (lossd search's report)
        return json.loads(p.stdout)
    except ValueError:
        pass
    for ln in reversed(p.stdout.splitlines()):
        if ln.startswith("{"):
            return json.loads(ln)
    raise RuntimeError("%s: no JSON line (exit %d): %s" % (" ".join(cmd), p.returncode,
                                                            (p.stderr or p.stdout)[-800:]))


def grp(thousands):
    """12345 -> "12,345" (the docs' style)."""
    return "{:,}".format(int(round(thousands)))


# Each source: the command, and the figures it gives as (key, value from its JSON, text format).
def src_bench():
    cmd = ["bin/lossd", "bench", "--evals", "20", "--rounds", "15"]
    b = run_json(cmd)
    return cmd, {
        "speed.us_per_step": (b["us_per_step"], "%.1f"),
        "speed.evals_per_s": (b["evals_per_s"], "%.0f"),
        "speed.gflops": (b["gflops"], "%.0f"),
        "speed.sgemm_peak_gflops": (b["sgemm_peak_gflops"], "%.0f"),
        "speed.evals_per_s_2threads": (b["evals_per_s_2threads"], "%.0f"),
        "speed.thread_scaling": (b["thread_scaling"], "%.2f"),
    }


def src_torch():
    script = os.path.join(PEER, "torch_proxy.py")
    if not os.path.exists(script):
        raise RuntimeError("no PyTorch reference at %s" % script)
    cmd = ["/usr/bin/python3", script, "200", "20"]
    env = dict(os.environ, DIGITS_CSV=os.path.join(ROOT, "data", "digits.csv"))
    t = run_json(cmd, env)
    return cmd, {"speed.torch_us_per_step": (t["us_per_step"], "%.0f")}


def src_store():
    cmd = ["build/bench/bench_store"]
    s = run_json(cmd)
    return cmd, {
        "store.evaluations": (s["evaluations"], grp),
        "store.job_median_ms": (s["leaderboard_job_ms"]["median"], "%.2f"),
        "store.job_p99_ms": (s["leaderboard_job_ms"]["p99"], "%.1f"),
        "store.job_cpu_ms": (s["cpu_ms"]["job_median"], "%.2f"),
        "store.family_median_ms": (s["leaderboard_family_ms"]["median"], "%.1f"),
        "store.family_p99_ms": (s["leaderboard_family_ms"]["p99"], "%.1f"),
        "store.family_cpu_ms": (s["cpu_ms"]["family_median"], "%.1f"),
        "store.fill_evals_per_s": (s["fill_evals_per_s"], grp),
        "store.db_mb": (s["db_bytes"] / 1e6, "%.0f"),
    }


def src_daemon():
    cmd = ["/usr/bin/python3", "bench/bench_daemon.py"]
    d = run_json(cmd)
    c = d["concurrent"]
    return cmd, {
        "daemon.job_idle_ms": (d["idle"]["leaderboard_job_ms"]["median"], "%.1f"),
        "daemon.job_idle_p99_ms": (d["idle"]["leaderboard_job_ms"]["p99"], "%.1f"),
        "daemon.job_busy_ms": (d["busy"]["leaderboard_job_ms"]["median"], "%.1f"),
        "daemon.family_idle_ms": (d["idle"]["leaderboard_family_ms"]["median"], "%.0f"),
        "daemon.family_busy_ms": (d["busy"]["leaderboard_family_ms"]["median"], "%.0f"),
        "daemon.clients": (c["clients"], "%d"),
        "daemon.mixed_requests_per_s": (c["requests_per_s"], "%.0f"),
        "daemon.mixed_errors": (c["errors"], "%d"),
        "daemon.mixed_training_evals_per_s": (c["training_evals_per_s"], "%.0f"),
    }


def src_promoted():
    cmd = ["bin/lossd", "search", "bench/jobs/noisy_labels.json", "--workers", "2", "--quiet"]
    st = run_json(cmd)["stats"]
    return cmd, {
        "jobs.promoted": (st["promotions"], "%d"),
        "jobs.promoted_of": (st["trained_candidates"], "%d"),
        "jobs.promoted_pct": (100.0 * st["promotions"] / st["trained_candidates"], "%.0f%%"),
    }


SOURCES = {"bench": src_bench, "torch": src_torch, "store": src_store, "daemon": src_daemon,
           "promoted": src_promoted}
DERIVED = {  # figures computed from others once all are recorded
    "speed.torch_ratio": (lambda f: f["speed.torch_us_per_step"] / f["speed.us_per_step"], "%.1f",
                          ("speed.torch_us_per_step", "speed.us_per_step")),
}


def text_of(value, fmt):
    return fmt(value) if callable(fmt) else fmt % value


def load():
    with open(MEASURED) as f:
        return json.load(f)


def record(only):
    old = load() if os.path.exists(MEASURED) else {"figures": {}, "sources": {}}
    figs, sources = old.get("figures", {}), old.get("sources", {})
    for name in only or SOURCES:
        t0 = time.time()
        print("== %s" % name, flush=True)
        try:
            cmd, got = SOURCES[name]()
        except (RuntimeError, OSError, KeyError, ValueError) as e:
            print("   not recorded: %s" % e, flush=True)
            continue
        sources[name] = {"command": " ".join(os.path.relpath(c, ROOT) if c.startswith(PEER) else c
                                             for c in cmd),
                         "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         "seconds": round(time.time() - t0, 1),
                         "load_average": [round(x, 1) for x in os.getloadavg()]}
        for k, (v, fmt) in got.items():
            figs[k] = {"value": v, "text": text_of(v, fmt), "source": name}
            print("   %-34s %s" % (k, figs[k]["text"]), flush=True)
    for k, (fn, fmt, needs) in DERIVED.items():
        if all(n in figs for n in needs):
            v = fn({n: figs[n]["value"] for n in needs})
            figs[k] = {"value": v, "text": text_of(v, fmt), "source": "derived from " + ", ".join(needs)}
    with open(MEASURED, "w") as f:
        json.dump({"about": "written by bench/doc_figures.py record; docs read it through "
                            "bench/doc_figures.py write", "sources": sources, "figures": figs},
                  f, indent=1, sort_keys=True)
        f.write("\n")


def doc_files():
    out = [os.path.join(ROOT, "README.md")]
    d = os.path.join(ROOT, "docs")
    out += sorted(os.path.join(d, n) for n in os.listdir(d) if n.endswith(".md"))
    return out


def write():
    figs = load()["figures"]
    for path in doc_files():
        text = open(path).read()
        new = MARK.sub(lambda m: "<!--fig:%s-->%s<!--/fig-->" % (
            m.group(1), figs[m.group(1)]["text"] if m.group(1) in figs else m.group(2)), text)
        if new != text:
            with open(path, "w") as f:
                f.write(new)
            print("wrote %s" % os.path.relpath(path, ROOT))


NUM = re.compile(r"(?<![\w.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e-?\d+)?")


def measured_lines(readme):
    """README's "Measured" bullets: (text, [linked doc paths])."""
    sec = readme.split("\n## Measured", 1)[1].split("\n## ", 1)[0]
    items = re.split(r"\n- ", sec)[1:]
    out = []
    for it in items:
        links = [os.path.join(ROOT, ln.split("#")[0]) for ln in re.findall(r"\]\(([^)]+)\)", it)
                 if not ln.startswith("http")]
        out.append((it, links))
    return out


def check():
    problems = []
    figs = load()["figures"]
    marked = 0
    for path in doc_files():
        rel = os.path.relpath(path, ROOT)
        for m in MARK.finditer(open(path).read()):
            marked += 1
            k, txt = m.group(1), m.group(2)
            if k not in figs:
                problems.append("%s: figure %s is not in bench/measured.json" % (rel, k))
            elif txt != figs[k]["text"]:
                problems.append("%s: figure %s reads %r, the recorded measurement %r (run "
                                "bench/doc_figures.py write)" % (rel, k, txt, figs[k]["text"]))
    readme = open(os.path.join(ROOT, "README.md")).read()
    nlines = 0
    for text, links in measured_lines(readme):
        nlines += 1
        docs = "".join(open(p).read() for p in links if os.path.isfile(p))
        if not docs:
            problems.append("README Measured line links no doc: %.60s" % text)
            continue
        plain = MARK.sub(lambda m: m.group(2), text)
        dplain = MARK.sub(lambda m: m.group(2), docs)
        for num in NUM.findall(plain):
            if not re.search(r"(?<![\w.])%s(?![\d])" % re.escape(num), dplain):
                problems.append("README Measured line %r: %s is not in %s" % (
                    plain.split("**")[1] if "**" in plain else plain[:40], num,
                    ", ".join(os.path.relpath(p, ROOT) for p in links)))
    for p in problems:
        print("FAIL " + p)
    print("%d marked figures, %d README Measured lines checked, %d problems"
          % (marked, nlines, len(problems)))
    return 1 if problems else 0


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "record":
        only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
        record(only)
    elif cmd == "write":
        write()
    elif cmd == "check":
        sys.exit(check())
    else:
        print(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
