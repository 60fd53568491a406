"""Long runs: a synthetic trace of up to 1,000,000 requests to completion in bounded memory.

    python bench/bench_long_run.py [--sizes 10000 100000 1000000] [--rate 700]

Each size runs in a fresh process (so its peak RSS is its own): gpt2 on the
paper's NPU with 64 GiB of device memory (so the run is not eviction-bound),
ShareGPT-like lengths, Poisson arrivals at ``--rate`` requests/s (700/s keeps
the device busy with batches of a few hundred without an ever-growing queue).
Prints wall time, simulated requests per wall second, iterations, peak RSS and
peak RSS per request, and checks every request finished.

"Bounded memory" here means memory grows with the number of requests (one
small record each, plus the per-request columns of the result) and not with
the number of iterations times the batch: the peak RSS per request must stay
flat as the trace grows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def child(n: int, rate: float) -> None:
    import numpy as np

    from llmsim_nb import SimConfig, Simulator, summarize
    from llmsim_nb.workload import synthetic_trace

    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    trace = synthetic_trace(np.random.default_rng(0), n, rate)
    start = time.perf_counter()
    sim = Simulator(SimConfig.from_flags(model_name="gpt2", npu_mem=64), trace)
    ds = sim.run()
    wall = time.perf_counter() - start
    s = summarize(ds)
    assert s["num_finished"] == n, "a request did not finish"
    assert int(ds.num_generated_tokens.sum()) == int(trace.num_output_tokens.sum())
    print(json.dumps({
        "n": n, "wall": wall, "iterations": s["num_iterations"],
        "simulated_time": s["simulated_time"], "trace_span": float(trace.arrival_at[-1]),
        "batch_mean": float(ds.batch_size.mean()), "kv_peak": s["kv_usage_peak"],
        "evictions": s["num_evictions"], "import_rss": base_rss,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--rate", type=float, default=700.0)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.rate)
        return
    print(f"gpt2 on npu-128x128 with 64 GiB, ShareGPT-like lengths, Poisson {args.rate:g} req/s")
    print(f"{'requests':>9} {'wall s':>8} {'req/s':>7} {'iters':>8} {'batch':>6} "
          f"{'sim s':>8} {'KV peak':>7} {'evict':>5} {'peak RSS':>9} {'RSS-base/req':>12}")
    for n in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--child", str(n), "--rate",
                              str(args.rate)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        per_req = (r["peak_rss"] - r["import_rss"]) / n
        print(f"{n:9d} {r['wall']:8.1f} {n / r['wall']:7.0f} {r['iterations']:8d} "
              f"{r['batch_mean']:6.0f} {r['simulated_time']:8.1f} {r['kv_peak']:7.1%} "
              f"{r['evictions']:5d} {r['peak_rss'] / 2**20:7.0f}MB {per_req:10.0f} B",
              flush=True)


if __name__ == "__main__":
    main()
