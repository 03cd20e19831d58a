#!/usr/bin/env bash
# run_bench.sh: what `make bench` runs. The proxy evaluation's speed (bin/lossd bench) next to
# the peers when they are present: the PyTorch reference (shared/peer/torch_proxy.py beside the
# checkout, or $LOSSD_PEER) and the OpenBLAS sgemm peak (gemm_peak.c there). Prints each JSON and
# the ratios, then the storage and daemon benchmarks.
# The machine may be shared: each side reports the best of several rounds.
set -u
cd "$(dirname "$0")/.."
PEER=${LOSSD_PEER:-$(cd .. && pwd)/shared/peer}
EVALS=${BENCH_EVALS:-20}
ROUNDS=${BENCH_ROUNDS:-15}
tmp=$(mktemp -d /tmp/lossd_bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

echo "== lossd bench (digits, MLP 64-64-10 relu, Adam 3e-3, batch 64, 200 steps, 0.7*ce + 0.3*focal(2))"
bin/lossd bench --evals "$EVALS" --rounds "$ROUNDS" | tee "$tmp/ours.json" || { echo "lossd bench failed"; exit 1; }

if [ -f "$PEER/gemm_peak.c" ]; then
    echo "== peer: OpenBLAS sgemm peak (gemm_peak.c)"
    if cc -O2 -o "$tmp/gemm_peak" "$PEER/gemm_peak.c" $(pkg-config --cflags --libs openblas) 2>"$tmp/cc.err"; then
        "$tmp/gemm_peak" | head -3
    else
        echo "(gemm_peak.c did not build: $(head -1 "$tmp/cc.err"))"
    fi
fi

if [ -f "$PEER/torch_proxy.py" ] && /usr/bin/python3 -c "import torch, sklearn" 2>/dev/null; then
    echo "== peer: PyTorch reference (torch_proxy.py, one thread)"
    /usr/bin/python3 "$PEER/torch_proxy.py" 200 20 | tee "$tmp/torch.json"
    /usr/bin/python3 - "$tmp/ours.json" "$tmp/torch.json" <<'PY'
import json, sys
ours, ref = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
print(json.dumps({
    "speedup_vs_torch_evals": round(ours["evals_per_s"] / ref["evals_per_s"], 2),
    "speedup_vs_torch_step": round(ref["us_per_step"] / ours["us_per_step"], 2),
    "target_speedup": 20,
    "thread_scaling": ours["thread_scaling"], "target_thread_scaling": 1.8,
    "fraction_of_sgemm_peak": round(ours["gflops"] / ours["sgemm_peak_gflops"], 3)}))
PY
else
    echo "== peer: PyTorch reference not available (needs $PEER/torch_proxy.py, python3-torch, python3-sklearn)"
fi

if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    echo "== autoencoder: digits 64-32-8-32-64, batch 64, 300 steps, rec, against its PyTorch reference (bench/bench_ae.py, one thread each)"
    /usr/bin/python3 bench/bench_ae.py || echo "bench_ae.py failed (exit $?)"
else
    echo "== autoencoder: PyTorch reference not available (needs python3-torch)"
fi

echo "== storage: leaderboard queries over 100,000 stored evaluations (bench_store)"
build/bench/bench_store || echo "bench_store failed (exit $?)"

echo "== lossd serve: leaderboard.query latency and 100 clients with 100,000 stored evaluations (bench/bench_daemon.py)"
/usr/bin/python3 bench/bench_daemon.py || echo "bench_daemon.py failed (exit $?)"

echo "== lossd serve: pipelined small requests (server.status, leaderboard.query) per second while a search trains (bench/bench_small.py)"
/usr/bin/python3 bench/bench_small.py || echo "bench_small.py failed (exit $?)"

echo "== deployed precision: a 360-row digits split through the fp16/bf16/int8 model against fp32, then a whole evaluation at int8 (and int8 with qat) against fp32: digits, the generative autoencoder and GAN (bench_quant)"
build/bench/bench_quant || echo "bench_quant failed (exit $?)"

echo "== PostgreSQL queue: lease round trip and queue cost per evaluation against a 50 ms evaluation (bench/pgqueue.sh)"
bench/pgqueue.sh || echo "pgqueue.sh failed (exit $?)"

echo "== PostgreSQL queue: evaluations/s of one search with 0, 1, 2, 4 worker processes (bench/pgqueue_scale.sh)"
bench/pgqueue_scale.sh || echo "pgqueue_scale.sh failed (exit $?)"
