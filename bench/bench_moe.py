"""Mixture-of-experts runs: simulator wall time per iteration and per run.

    python bench/bench_moe.py [--requests N] [--rate R]

ShareGPT-like requests (``synthetic_trace`` with the packaged ShareGPT length
tables, Poisson arrivals, seed 0) through:

1. DeepSeek-V3 on 8 H200, expert parallelism 8 with attention TP 8;
2. the same with attention data parallelism 8 (all-to-all dispatch and combine);
3. the same with experts split by width (TP 8, no EP);
4. Mixtral-8x7B on 2 H100 (TP 2);
5. Qwen3-30B-A3B on one H100;
6. gpt-oss-20b on one H100;
7. the dense Llama-3.1-70B on 8 H100 (TP 8), the reference.

For each (the fastest of ``--repeats`` runs): the simulator's wall time,
iterations, wall time per iteration, the
ratio of that to the dense reference's (target: an MoE iteration costs < 3x a
dense one), and the simulated mean TTFT / TPOT. Figures, not asserts. The
batch of an iteration differs between models (they serve at different
speeds), so the per-iteration ratio compares like with like only roughly;
``--fixed_batch`` also times one decode iteration of 64 requests at context
1,000 per configuration, the same batch for every model.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.models import BatchShape
from llmsim_nb.results.dataset import summarize
from llmsim_nb.system import build_instance
from llmsim_nb.workload.generators import synthetic_trace

RUNS = [
    ("deepseek-v3 / 8 x h200, EP 8", dict(model_name="deepseek-v3", hardware="h200", npu_num=8,
                                           enable_expert_parallel=True)),
    ("deepseek-v3 / 8 x h200, EP 8, DP attn", dict(model_name="deepseek-v3", hardware="h200",
                                                    npu_num=8, enable_expert_parallel=True,
                                                    attention_placement="data")),
    ("deepseek-v3 / 8 x h200, TP 8", dict(model_name="deepseek-v3", hardware="h200",
                                           npu_num=8)),
    ("mixtral-8x7b / 2 x h100, TP 2", dict(model_name="mixtral-8x7b", hardware="h100-sxm",
                                            npu_num=2)),
    ("qwen3-30b-a3b / 1 x h100", dict(model_name="qwen3-30b-a3b", hardware="h100-sxm")),
    ("gpt-oss-20b / 1 x h100", dict(model_name="gpt-oss-20b", hardware="h100-sxm")),
    ("llama-3.1-70b / 8 x h100, TP 8 (dense)", dict(model_name="llama-3.1-70b",
                                                     hardware="h100-sxm", npu_num=8)),
]


def run(flags: dict, trace, repeats: int = 1) -> tuple[float, dict]:
    """The fastest of ``repeats`` runs (the simulated results are identical;
    the host's timing noise, +-15 % on a shared 2-core machine, is not)."""
    config = SimConfig.from_flags(**flags)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        sim = Simulator(config, trace)
        sim.advance()
        best = min(best, time.perf_counter() - t0)
    return best, summarize(sim.result_arrays())


def fixed_batch(flags: dict, repeats: int = 50) -> float:
    """Wall seconds of stack + graph of one 64-request decode iteration."""
    parts = build_instance(SimConfig.from_flags(**flags))
    batch = BatchShape.from_lists([1] * 64, [1000] * 64)
    parts.stack.simulate(batch)  # warm the reuse cache
    t0 = time.perf_counter()
    for _ in range(repeats):
        trace = parts.stack.simulate(batch)
        parts.network.run(parts.converter.build(trace))
    return (time.perf_counter() - t0) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=4.0, help="requests per second")
    parser.add_argument("--fixed_batch", action="store_true")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs per configuration; the fastest is reported")
    args = parser.parse_args()
    trace = synthetic_trace(np.random.default_rng(0), args.requests, args.rate)
    print(f"{args.requests} ShareGPT-like requests at {args.rate:g} req/s")
    results = [(name, *run(flags, trace, args.repeats)) for name, flags in RUNS]
    dense = results[-1][1] / results[-1][2]["num_iterations"]
    for name, wall, summary in results:
        per = wall / summary["num_iterations"]
        print(f"  {name:40s} wall {wall:6.2f} s  {summary['num_iterations']:6d} iterations  "
              f"{per * 1e6:6.0f} us/iteration = {per / dense:4.2f} x dense   "
              f"TTFT {summary['ttft_mean'] * 1e3:8.1f} ms  TPOT "
              f"{summary['tpot_mean'] * 1e3:6.2f} ms")
    if args.fixed_batch:
        print("one decode iteration of 64 requests at context 1,000 (stack + graph):")
        base = fixed_batch(RUNS[-1][1])
        for name, flags in RUNS:
            seconds = fixed_batch(flags)
            print(f"  {name:40s} {seconds * 1e6:7.0f} us = {seconds / base:4.2f} x dense")


if __name__ == "__main__":
    main()
