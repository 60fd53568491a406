"""Spine benchmark: the seed's 100-request ShareGPT trace on one NPU.

Runs GPT3-6.7B and LLaMA-7B on the paper's NPU (``npu-128x128``) over
``../shared/data/traces/share-gpt-req100-rate10.tsv`` and prints, beside the
original LLMServingSim's figures, wall time, peak memory, iterations, simulated
time and average prompt / generation throughput.

The original's figures: wall time measured on a 2-core machine like ours with
``--fast_run`` (``../shared/data/README.md``); the rest from its archived runs
(``../shared/data/paper/archived_runs/evaluation1/{gpt7b,llama7b}.txt``).

Usage: ``python bench/bench_spine.py``
"""

from __future__ import annotations

import resource
import sys
import time
import tracemalloc
from pathlib import Path

from llmsim_nb import SimConfig, Simulator, load_trace, summarize

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRACE = DATA / "traces" / "share-gpt-req100-rate10.tsv"

# model: (wall s, iterations, simulated s, prompt tok/s, generation tok/s)
ORIGINAL = {
    "gpt3-6.7b": (485.0, 550, 11.266551872, 198.907, 595.213),
    "llama-7b": (561.0, 609, 11.487285338, 195.085, 583.776),
}


def simulate(model: str):
    return Simulator(SimConfig.from_flags(model_name=model, fast_run=True),
                     load_trace(TRACE)).run()


def bench(model: str, repeats: int = 3) -> dict[str, float]:
    """Best wall time of ``repeats`` runs (trace loading included); peak Python
    heap from a separate traced run, since tracemalloc slows the run ~5x."""
    wall = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        ds = simulate(model)
        wall = min(wall, time.perf_counter() - start)
    tracemalloc.start()
    simulate(model)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    s = summarize(ds)
    return {"wall": wall, "peak_mib": peak / 2**20, "iterations": s["num_iterations"],
            "simulated": s["simulated_time"], "prompt": s["prompt_throughput"],
            "generation": s["generation_throughput"]}


def main() -> int:
    if not TRACE.is_file():
        print(f"missing {TRACE}", file=sys.stderr)
        return 1
    simulate("gpt2")  # warm imports and caches so the timed runs measure simulation
    header = (f"{'model':10} {'':9} {'wall s':>9} {'peak MiB':>9} {'iters':>6} "
              f"{'sim s':>7} {'prompt/s':>9} {'gen/s':>8}")
    print(header)
    print("-" * len(header))
    for model, (o_wall, o_iters, o_sim, o_prompt, o_gen) in ORIGINAL.items():
        r = bench(model)
        print(f"{model:10} {'llmsim_nb':9} {r['wall']:9.3f} {r['peak_mib']:9.1f} "
              f"{r['iterations']:6d} {r['simulated']:7.3f} {r['prompt']:9.1f} "
              f"{r['generation']:8.1f}")
        print(f"{'':10} {'original':9} {o_wall:9.1f} {'':>9} {o_iters:6d} {o_sim:7.3f} "
              f"{o_prompt:9.1f} {o_gen:8.1f}")
        print(f"{'':10} {'ratio':9} {o_wall / r['wall']:8.0f}x {'':>9} "
              f"{r['iterations'] / o_iters:6.2f} {r['simulated'] / o_sim:7.3f} "
              f"{r['prompt'] / o_prompt:9.3f} {r['generation'] / o_gen:8.3f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS (imports included): {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
