"""Scale-out benchmark: the paper's Fig. 10 and Fig. 9 setups, one iteration each.

Fig. 10 (``../shared/data/paper/fig_numbers/evaluation5/npu-scaling.csv``):
GPT3-7B, 30B and 175B decoding a batch of 64 requests with 1024 tokens in
their KV cache (``--gen``: one decode iteration), tensor parallelism over 8 to
2048 NPUs on the original's default fully connected network. Where the NPU
count does not divide the heads, attention is placed by request (selective
batching, as the original does).

Fig. 9 (``evaluation4/compuation-reuse.csv``): GPT3-30B on 64 NPUs at five
(TP, PP) points. The original ran those with PIM and sub-batch interleaving,
which is not modelled yet, so this is the NPU-only run of the same shapes; its
figures are printed for scale.

Where tensor parallelism puts every rank on the same work (heads placement,
one stage), ``run()`` adds the chain of nodes up without building the graph
("chain" in the nodes column); elsewhere the graph's node count is printed.

Device memory is 100 GiB, as the original's evaluation5 script sets it, so that
GPT3-175B and its 64 x 1024-token KV cache fit on 8 NPUs (the original
does not check capacity). Printed: our wall time per point (building the
simulator included), the original's, and the ratio.

Whole traces: 1,000 requests on GPT3-30B across four layouts, wall time per
iteration (tensor parallelism on one stage takes the chain shortcut; pipeline
layouts run the execution graph every iteration).

Usage: ``python bench/bench_scale.py [--quick]`` (quick: 8 and 64 NPUs only)
"""

from __future__ import annotations

import sys
import time

import numpy as np

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.workload import Trace, sharegpt_like, synthetic_trace

# NPUs -> original's simulation time (ms) for GPT3-7B, 30B, 175B (Fig. 10).
FIG10 = {8: (105254.3, 190919.75, 334983.39), 64: (110264.62, 197643.7, 347391.91),
         512: (387462.96, 614614.11, 1185753.06),
         2048: (4980025.95, 7434793.54, 14876200.68)}
MODELS = ("gpt3-6.7b", "gpt3-30b", "gpt3-175b")
# (TP, PP) -> original's total simulation time without / with reuse (ms) (Fig. 9).
FIG9 = {(64, 1): (215711.54, 33587.86), (16, 4): (205688.96, 24577.14),
        (8, 8): (202377.34, 20516.9), (4, 16): (200295.47, 17562.02),
        (1, 64): (198033.25, 16260.46)}


def batch_trace(num_requests: int = 64, context: int = 1024) -> Trace:
    return Trace(arrival_at=np.zeros(num_requests),
                 num_prompt_tokens=np.full(num_requests, context),
                 num_output_tokens=np.ones(num_requests, dtype=np.int64),
                 source=f"{num_requests} requests x {context} tokens")


def one_iteration(**flags) -> tuple[float, object]:
    start = time.perf_counter()
    sim = Simulator(SimConfig.from_flags(gen=True, npu_mem=100, **flags), batch_trace())
    ds = sim.run()
    wall = time.perf_counter() - start
    assert ds.sizes["iteration"] == 1
    return wall, sim


def main() -> int:
    quick = "--quick" in sys.argv
    # Warm imports and preset caches before timing (1,025 tokens: beyond gpt2's context).
    one_iteration(model_name="gpt2", max_model_len=2048)
    print("Fig. 10: one decode iteration, batch 64 x 1024 tokens, tensor parallel")
    print(f"{'NPUs':>5} {'model':10} {'placement':9} {'nodes':>6} {'latency ms':>10} "
          f"{'wall s':>7} {'original s':>10} {'ratio':>8}")
    for npus, originals in FIG10.items():
        if quick and npus > 64:
            continue
        for model, original_ms in zip(MODELS, originals):
            wall, sim = one_iteration(model_name=model, npu_num=npus, parallel="tensor")
            nodes = len(sim.last_graph) if sim.last_graph is not None else "chain"
            print(f"{npus:5d} {model:10} {sim.layout.attention:9} {nodes:>6} "
                  f"{sim.now * 1e3:10.3f} {wall:7.3f} {original_ms / 1e3:10.1f} "
                  f"{original_ms / 1e3 / wall:7.0f}x")
    print()
    print("Fig. 9 setups: GPT3-30B on 64 NPUs, one decode iteration (NPU only)")
    print(f"{'(TP,PP)':>8} {'nodes':>6} {'latency ms':>10} {'wall s':>7} "
          f"{'orig. w/o reuse s':>17} {'orig. w/ reuse s':>16}")
    for (tp, pp), (without, with_reuse) in FIG9.items():
        try:
            wall, sim = one_iteration(model_name="gpt3-30b", npu_num=64, npu_group=pp,
                                      parallel="hybrid")
        except ValueError as exc:  # GPT3-30B has 48 layers: 64 stages cannot be formed
            print(f"{f'({tp},{pp})':>8} refused: {exc}")
            continue
        nodes = len(sim.last_graph) if sim.last_graph is not None else "chain"
        print(f"{f'({tp},{pp})':>8} {nodes:>6} {sim.now * 1e3:10.3f} "
              f"{wall:7.3f} {without / 1e3:17.1f} {with_reuse / 1e3:16.1f}")
    print()
    whole_traces()
    return 0


def whole_traces() -> None:
    """Whole runs across layouts: what a serving study over many iterations costs.

    Tensor parallelism on one stage is a chain of nodes that ``run()`` adds up
    without building the graph; pipeline stages overlap micro-batches, so
    those iterations build the execution graph and run the network's event
    loop.
    """
    prompt, output = sharegpt_like()
    trace = synthetic_trace(np.random.default_rng(7), 1000, 20.0, prompt=prompt, output=output)
    print("Whole trace: GPT3-30B, 1,000 ShareGPT-like requests at 20 req/s, 40 GiB per NPU")
    print(f"{'layout':>16} {'iterations':>10} {'wall s':>7} {'us/iteration':>12} "
          f"{'simulated s':>11}")
    for label, flags in (("TP 4", dict(npu_num=4, parallel="tensor")),
                         ("TP 8", dict(npu_num=8, parallel="tensor")),
                         ("TP 4 x PP 2", dict(npu_num=8, npu_group=2, parallel="hybrid")),
                         ("PP 4", dict(npu_num=4, npu_group=4, parallel="pipeline"))):
        start = time.perf_counter()
        ds = Simulator(SimConfig.from_flags(model_name="gpt3-30b", npu_mem=40, **flags),
                       trace).run()
        wall = time.perf_counter() - start
        n = ds.sizes["iteration"]
        print(f"{label:>16} {n:10d} {wall:7.2f} {wall / n * 1e6:12.0f} "
              f"{float(ds.t_end[-1]):11.1f}")


if __name__ == "__main__":
    sys.exit(main())
