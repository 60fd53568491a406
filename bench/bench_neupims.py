"""NeuPIMs study: the paper's Fig. 7 and NeuPIMs' headline ratios.

Fig. 7 (``../shared/data/paper/fig_numbers/evaluation2/neupims-llmservingsim.csv``):
GPT3-7B, 13B and 30B at six (TP, PP) points, 256 Alpaca requests decoding one
token each with their prompts already in the KV cache, on NPUs with local PIM
and sub-batch interleaving. The original's command lines
(``evaluation2.sh`` of github.com/casys-kaist/LLMServingSim, commit 638d9f1,
run from its ``evaluation/`` folder; outputs archived in
``../shared/data/paper/archived_runs/evaluation2/``) are, for (TP, PP) = (4, 1)::

    main.py --model_name gpt3-6.7b --npu_num 32 --npu_group 1 --npu_mem 4 \\
        --pim_type local --sub_batch --dataset alpaca-bs256-ms7B-tp4-pp1.tsv \\
        --network 'neupims_(4,1).json' --gen

i.e. a NeuPIMs device (8 systolic arrays, 32 PIM channels) is 8 of the
original's 128x128 NPUs: ``npu_num = 8 * TP * PP`` NPUs in ``npu_group = PP``
stages, and the network files connect them with unbounded links. We pass
exactly those flags (``--output`` only names files) and nothing else:
``--pim_type local`` brings the original's meaning of the settings it leaves
implicit (``llmsim_nb.config.original_flags``, docs/original-flags.md):
``micro_batches`` 1, ``attention_placement`` requests, and ``pim_channels`` =
``npu_mem`` / 1 GiB = 4. Each run's ``implied_flags`` attribute is printed
once, so nothing is hidden. Not taken: the original's ``main.py`` silently
turns ``--sub_batch`` off when ``npu_num >= 64`` on a ``neupims`` network (the
13B and 30B points); the figure with that behaviour is printed too, for
comparison.

Printed per point: our generation throughput, NeuPIMs' and the original's
(LLMServingSim), the error of each against NeuPIMs, and simulation wall time
(ours, and the original's from its archived ``*-simulation-time.tsv``). Then
the geometric mean of the absolute errors (the paper reports 8.88% for the
original) and the worst point.

Fig. 6, 7B points: the original's ``evaluation1.sh`` command lines for GPT3-7B
and LLaMA-7B (``--npu_num 1 --npu_group 1 --npu_mem 24 --dataset
share-gpt-req100-rate10.tsv --network gpu_n1.json --fast_run``, the paper's NPU),
unchanged: our average prompt and generation throughput against the
original's archived run, and the curve-mean errors against vLLM's measured
curve and against the original's curve (``fig_numbers/evaluation1``).

Sweep: NeuPIMs reports NPU+PIM with sub-batch interleaving at about 2.4x the
throughput of an NPU-only system and 1.6x that of a naive NPU+PIM (no
interleaving). We run GPT3-7B at (TP, PP) = (4, 1) for 32 to 256 requests
(the Alpaca prompts, and a fixed 512-token context) in three modes: NPU-only
(attention on the NPUs), naive NPU+PIM (``pim_type local``, serial) and
NeuPIMs (``--sub_batch``). NPU-only here is the original's NPU with its own
936 GB/s memory each; a NeuPIMs device's eight arrays share 1 TB/s, so the
NPU-only baseline is also shown with 1/8 of that per NPU (``hbm-shared``).

Usage: ``python bench/bench_neupims.py [--no-sweep]``
"""

from __future__ import annotations

import csv
import dataclasses
import math
import sys
import time
from pathlib import Path

import numpy as np

from llmsim_nb import SimConfig, Simulator, load_trace, summarize
from llmsim_nb.config import GIB
from llmsim_nb.engines.hardware import get_hardware
from llmsim_nb.engines.npu import NPUEngine
from llmsim_nb.fidelity.validate import compare_curves, load_throughput_curve, simulated_curve
from llmsim_nb.workload import Trace

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POINTS = (("7B", "gpt3-6.7b", 4, 1), ("7B", "gpt3-6.7b", 2, 2), ("13B", "gpt3-13b", 8, 1),
          ("13B", "gpt3-13b", 4, 2), ("30B", "gpt3-30b", 8, 2), ("30B", "gpt3-30b", 4, 4))
#: The original's average (prompt, generation) tokens/s of its evaluation1 runs
#: (../shared/data/paper/iiswc24_archived_runs_summary.csv).
ORIGINAL_FIG6 = {"gpt7b": (198.90735208608106, 595.2131651446942),
                 "llama7b": (195.0852559208885, 583.7758706851755)}


def fig7_flags(model: str, size: str, tp: int, pp: int) -> dict:
    """The original's evaluation2.sh flags for one point, exactly (no others)."""
    return dict(model_name=model, npu_num=8 * tp * pp, npu_group=pp, npu_mem=4,
                pim_type="local", sub_batch=True, gen=True,
                dataset=str(DATA / "traces" / f"alpaca-bs256-ms{size}-tp{tp}-pp{pp}.tsv"),
                network=f"neupims_({tp},{pp}).json")


def geometric_mean(values) -> float:
    return math.exp(float(np.mean(np.log(values))))


def fig7_errors(points=POINTS, original_sub_batch_rule: bool = False) -> dict[str, float]:
    """Signed error of our throughput against NeuPIMs per point, with exactly the
    original's flags (``original_sub_batch_rule``: also its silent ``--sub_batch``
    off at ``npu_num >= 64`` on a ``neupims`` network)."""
    ref = reference()
    out = {}
    for size, model, tp, pp in points:
        flags = fig7_flags(model, size, tp, pp)
        if original_sub_batch_rule and flags["npu_num"] >= 64:
            flags["sub_batch"] = False
        neupims = ref[f"{size}-({tp},{pp})"][0]
        out[f"{size}-({tp},{pp})"] = throughput(
            Simulator(SimConfig.from_flags(**flags))) / neupims - 1
    return out


def throughput(sim: Simulator) -> float:
    """Generated tokens per second of simulated time (the original's average)."""
    ds = sim.run()
    return float(ds.num_generated_tokens.sum()) / float(ds.t_end.max())


def reference() -> dict[str, tuple[float, float]]:
    path = DATA / "paper" / "fig_numbers" / "evaluation2" / "neupims-llmservingsim.csv"
    with path.open() as f:
        return {row["model-(TP,PP)"]: (float(row["NeuPIMs"]), float(row["LLMServingSim"]))
                for row in csv.DictReader(f)}


def original_wall(size: str, tp: int, pp: int) -> float:
    name = {"7B": "gpt7b", "13B": "gpt13b", "30B": "gpt30b"}[size]
    path = (DATA / "paper" / "archived_runs" / "evaluation2"
            / f"{name}-({tp},{pp})-simulation-time.tsv")
    if not path.is_file():
        return math.nan
    rows = path.read_text().split("\n")
    return float(rows[1].split("\t")[-1]) / 1e3


def fig7() -> None:
    ref = reference()
    print("Fig. 7: generation throughput (tokens/s), 256 Alpaca requests, local PIM + sub-batch,"
          " the original's flags exactly")
    print(f"{'point':<10}{'ours':>10}{'NeuPIMs':>10}{'original':>10}{'our err':>9}"
          f"{'orig err':>9}{'our wall s':>11}{'orig wall s':>12}")
    ours_err, orig_err, implied = {}, [], set()
    for size, model, tp, pp in POINTS:
        key = f"{size}-({tp},{pp})"
        t0 = time.perf_counter()
        ds = Simulator(SimConfig.from_flags(**fig7_flags(model, size, tp, pp))).run()
        ours = float(ds.num_generated_tokens.sum()) / float(ds.t_end.max())
        wall = time.perf_counter() - t0
        implied.add(ds.attrs["implied_flags"])
        neupims, original = ref[key]
        e_ours, e_orig = (ours - neupims) / neupims, (original - neupims) / neupims
        ours_err[key] = e_ours
        orig_err.append(abs(e_orig))
        print(f"{key:<10}{ours:>10.0f}{neupims:>10.0f}{original:>10.0f}{e_ours:>+9.1%}"
              f"{e_orig:>+9.1%}{wall:>11.2f}{original_wall(size, tp, pp):>12.1f}")
    print(f"implied by --pim_type local (run attrs): {'; '.join(sorted(implied))}")
    worst = max(ours_err, key=lambda k: abs(ours_err[k]))
    gm = geometric_mean([abs(e) for e in ours_err.values()])
    print(f"geometric-mean |error| vs NeuPIMs: ours {gm:.2%} (worst {worst} "
          f"{ours_err[worst]:+.1%}), original {geometric_mean(orig_err):.2%} (paper: 8.88%)")
    quirk = fig7_errors(original_sub_batch_rule=True)
    print(f"with the original's silent sub_batch off at npu_num >= 64 (not taken): "
          f"{geometric_mean([abs(e) for e in quirk.values()]):.2%}")


def fig6_7b() -> None:
    """Fig. 6's 7B points from the original's evaluation1.sh command lines."""
    fig = DATA / "paper" / "fig_numbers" / "evaluation1"
    trace = DATA / "traces" / "share-gpt-req100-rate10.tsv"
    print("\nFig. 6, 7B: the original's evaluation1.sh flags (one 128x128 NPU, 24 GiB), "
          "share-gpt-req100-rate10")
    print(f"{'model':<10}{'prompt':>9}{'gen.':>9}{'vs orig':>9}{'vs orig':>9}"
          f"{'vLLM p':>9}{'vLLM g':>9}{'orig p':>9}{'orig g':>9}")
    for tag, model in (("gpt7b", "gpt3-6.7b"), ("llama7b", "llama-7b")):
        ds = Simulator(SimConfig.from_flags(
            model_name=model, npu_num=1, npu_group=1, npu_mem=24, dataset=str(trace),
            network="gpu_n1.json", fast_run=True)).run()
        s = summarize(ds)
        prompt0, gen0 = ORIGINAL_FIG6[tag]
        curve = simulated_curve(ds)
        vllm = compare_curves(load_throughput_curve(fig / f"vllm-{tag}.csv"), curve)
        orig = compare_curves(load_throughput_curve(fig / f"llmservingsim-{tag}.csv"), curve)
        print(f"{tag:<10}{s['prompt_throughput']:>9.1f}{s['generation_throughput']:>9.1f}"
              f"{s['prompt_throughput'] / prompt0 - 1:>+9.1%}"
              f"{s['generation_throughput'] / gen0 - 1:>+9.1%}"
              f"{vllm['prompt_mean_error']:>+9.1%}{vllm['generation_mean_error']:>+9.1%}"
              f"{orig['prompt_mean_error']:>+9.1%}{orig['generation_mean_error']:>+9.1%}")
    print("(prompt / gen.: our average tokens/s; vs orig: against the original's archived "
          "averages; vLLM / orig p, g: curve-mean errors against vLLM's and the original's "
          "curves)")


def decode_trace(n: int, context: int | None) -> Trace:
    """``n`` requests decoding one token: Alpaca prompts (repeated) or a fixed context."""
    base = load_trace(str(DATA / "traces" / "alpaca-bs256-ms7B-tp4-pp1.tsv"))
    prompts = (base.num_prompt_tokens[np.arange(n) % len(base)] if context is None
               else np.full(n, context, dtype=np.int64))
    return Trace(arrival_at=np.zeros(n), num_prompt_tokens=prompts,
                 num_output_tokens=np.ones(n, dtype=np.int64),
                 source=f"{n} requests, context {context or 'Alpaca'}")


def sweep() -> None:
    print("\nSweep: GPT3-7B (4,1), one decode step of N requests; throughput (tokens/s)")
    print(f"{'context':>8}{'N':>5}{'NPU-only':>10}{'hbm-shared':>11}{'naive':>9}{'NeuPIMs':>9}"
          f"{'vs NPU':>8}{'vs shared':>10}{'vs naive':>9}")
    base = dict(model_name="gpt3-6.7b", npu_num=32, npu_mem=4, gen=True,
                network="neupims_(4,1).json", micro_batches=1,
                attention_placement="requests")
    pim = dict(pim_type="local")  # npu_mem 4 implies 4 PIM channels (original_flags)
    spec = get_hardware("npu-128x128").spec
    shared = dataclasses.replace(spec, memory_bandwidth=1024e9 / 8, memory_bytes=4 * GIB)
    for context in (None, 512):
        for n in (32, 64, 128, 256):
            trace = decode_trace(n, context)
            npu = throughput(Simulator(SimConfig.from_flags(**base), trace))
            hbm = throughput(Simulator(SimConfig.from_flags(**base), trace,
                                       engine=NPUEngine(shared)))
            naive = throughput(Simulator(SimConfig.from_flags(**base, **pim), trace))
            neu = throughput(Simulator(SimConfig.from_flags(**base, **pim, sub_batch=True),
                                       trace))
            print(f"{context or 'Alpaca':>8}{n:>5}{npu:>10.0f}{hbm:>11.0f}{naive:>9.0f}"
                  f"{neu:>9.0f}{neu / npu:>8.2f}{neu / hbm:>10.2f}{neu / naive:>9.2f}")
    print("NeuPIMs reports ~2.4x over NPU-only and ~1.6x over naive NPU+PIM.")


def main(argv: list[str]) -> None:
    if not (DATA / "traces").is_dir():
        print(f"team data not found at {DATA}; nothing to run")
        return
    fig7()
    fig6_7b()
    if "--no-sweep" not in argv:
        sweep()


if __name__ == "__main__":
    main(sys.argv[1:])
