#!/usr/bin/env bash
# search_results.sh: runs `lossd search` on each benchmark job (bench/jobs/*.json, or the files
# given) and prints what the searches found and what they cost: the best loss, its final paired
# comparison with the baseline (holdout tasks when the job has them), the counts of trainings,
# cache and signature hits and rejections, when a candidate first matched the baseline
# (evals_to_baseline), and the engine's share of the wall time. bench/results.sh writes the full
# evidence table (several search seeds, paired tests) to docs/results.md.
#   bench/search_results.sh                      every job, 2 workers
#   WORKERS=1 bench/search_results.sh bench/jobs/outliers.json
# The machine may be shared: wall times vary; the counts and the leaderboard do not.
set -u
cd "$(dirname "$0")/.."
BIN=${LOSSD_BIN:-bin}
WORKERS=${WORKERS:-2}
PY=/usr/bin/python3
tmp=$(mktemp -d /tmp/lossd_search_bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

jobs=("$@")
[ ${#jobs[@]} -gt 0 ] || jobs=(bench/jobs/*.json)
status=0
for job in "${jobs[@]}"; do
    name=$(basename "$job" .json)
    echo "== $name ($job, $WORKERS workers)"
    if ! nice "$BIN/lossd" search "$job" --workers "$WORKERS" --quiet >"$tmp/$name.json" 2>"$tmp/$name.err"; then
        echo "lossd search failed: $(tail -3 "$tmp/$name.err")"
        status=1
        continue
    fi
    "$PY" - "$tmp/$name.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
lb = d["leaderboard"]
base = next((e for e in lb if e["baseline"]), None)
best = next((e for e in lb if not e["baseline"]), None)
def fmt(x, n=4):
    return "-" if x is None else (f"{x:.{n}g}" if isinstance(x, float) else str(x))
print(f"trainings {d['evaluations']} (+{d['final_evaluations']} final), cache hits {d['cache_hits']}, "
      f"signature hits {d['signature_hits']}, known results {d.get('result_cache_hits', 0)}, "
      f"rejections {d['rejections']}, promotions {d['promotions']}")
st = d.get("stats", {})
if "evals_to_baseline_top" in st:
    print(f"first matched the baseline after {st['evals_to_baseline']} trainings "
          f"({st['evals_to_baseline_top']} at the top level; -1: never)")
print(f"wall {d['wall_s']:.1f}s, engine {d['search_overhead_s']:.3f}s "
      f"({100 * d['search_overhead_share']:.2f}% of wall time)")
if base:
    print(f"baseline {base['expr']}: rank {base['rank']}, fitness {fmt(base['fitness'])}")
if best:
    t = best["tasks"][0]
    print(f"best {best['expr']}  fitness {fmt(best['fitness'])} (level {best['level']}, size {best['size']}); "
          f"{t['task']} {t['metric']} val {fmt(t['val'])} vs baseline {fmt(t['baseline_val'])}")
    fin = best.get("final")
    if fin:
        for ft in fin["tasks"]:
            p = ft["paired"]
            print(f"  final on {fin['on']} {ft['task']} ({ft['metric']}, test, {p['n']} seeds): "
                  f"{fmt(ft['mean'])} +- {fmt(ft['sd'], 2)} vs baseline {fmt(ft['baseline_mean'])} "
                  f"+- {fmt(ft['baseline_sd'], 2)}; paired diff {fmt(p['mean_diff'])}, t {fmt(p['t'], 3)}, "
                  f"p {fmt(p['p'], 3)}, wins {p['wins']}/{p['n']}")
summary = {"job": d["job"], "best": best and best["expr"], "best_fitness": best and best["fitness"],
           "final_vs_baseline": best and best.get("final", {}).get("vs_baseline"),
           "evaluations": d["evaluations"], "wall_s": round(d["wall_s"], 2),
           "search_overhead_share": round(d["search_overhead_share"], 4)}
print(json.dumps(summary))
PY
done
exit $status
