"""``llmsim run``: simulate a trace and print a summary.

The flags are the original LLMServingSim's parameter names (``--model_name
--npu_num --max_batch --batch_delay --scheduling --parallel --npu_group
--npu_mem --kv_manage --block_size --pim_type --sub_batch --dataset --network
--output --gen --fast_run``) plus ours (``--hardware``,
``--max_num_batched_tokens``, ``--seed``, ``--config file.yaml``...). The
simulator is imported only when the command runs, so ``llmsim --help`` stays
fast.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from ..config import SimConfig

#: (flag, type or None for a switch, help) of every ``llmsim run`` flag.
RUN_FLAGS: list[tuple[str, type | None, str]] = [
    ("model_name", str, "model name, e.g. gpt3-6.7b, llama-7b, llama-2-70b"),
    ("hardware", str, "engine hardware preset (default npu-128x128, the paper's NPU)"),
    ("npu_num", int, "number of NPUs"),
    ("npu_group", int, "pipeline groups"),
    ("parallel", str, "tensor | pipeline | hybrid"),
    ("npu_mem", float, "device memory per NPU in GiB (default: the preset's)"),
    ("max_batch", int, "most requests per batch; 0 = unlimited"),
    ("batch_delay", float, "seconds a request waits after arrival before it can be batched"),
    ("scheduling", str, "orca | vllm | chunked"),
    ("max_num_batched_tokens", int, "token budget per iteration (chunked)"),
    ("max_model_len", int, "longest request served, prompt + output tokens (default: the "
                           "model's context length)"),
    ("kv_manage", str, "vllm (paged, on demand) | max (reserve the maximum length)"),
    ("block_size", int, "tokens per KV block"),
    ("gpu_memory_utilization", float,
     "fraction of device memory for weights + activations + KV (as vLLM)"),
    ("num_kv_blocks", int, "explicit KV blocks (overrides gpu_memory_utilization)"),
    ("pim_type", str, "none | local | pool"),
    ("sub_batch", None, "NeuPIMs sub-batch interleaving"),
    ("pim_hardware", str, "PIM device preset (neupims-hbm2 | newton-hbm2)"),
    ("pim_channels", int, "channels per PIM device (0 = the preset's 32); 1 GiB of KV each"),
    ("pim_num", int, "PIM devices in the pool (pim_type pool; 0 = one per NPU)"),
    ("pim_mapping", str, "decode-attention | attention | fastest (operator mapping)"),
    ("num_sub_batches", int, "sub-batches with --sub_batch (default 2)"),
    ("sub_batch_criterion", str, "memory | compute: what sub-batches balance"),
    ("dataset", str, "trace file (TSV/CSV/JSONL or Azure CSV); default: packaged trace"),
    ("network", str, "network topology file or preset (e.g. gpu_n4.json)"),
    ("micro_batches", int, "most micro-batches per iteration (pipeline); 0 = one per stage"),
    ("attention_placement", str, "auto | heads | requests (selective batching)"),
    ("collective", str, "auto | ring | direct | halving_doubling"),
    ("congestion", None, "congestion-aware network (shared links slow transfers)"),
    ("gen", None, "skip prefill: prompts start in the KV cache"),
    ("fast_run", None, "the original's compile bypass: keep the reuse cache on disk between "
                       "runs ($LLMSIM_CACHE_DIR, default ~/.cache/llmsim_nb)"),
    ("reuse", str, "on | off: reuse operator timings (results identical; default on)"),
    ("reuse_cache_size", int, "most cached operator timings"),
    ("npu_mode", str, "analytical | detailed (tile-level GEMM schedule, slower)"),
    ("seed", int, "random seed"),
    ("config", str, "YAML file of flag names and values"),
    ("output", str, "write PREFIX-throughput.tsv, -simulation-time.tsv, -requests.csv, .nc"),
]


def flag_ranges() -> dict[str, str]:
    """``flag -> "range LO .. HI UNITS"`` from the config fields' metadata (the
    ranges ``SimConfig`` checks), for the help text."""
    import dataclasses

    from ..config import FLAG_FIELDS, MemoryConfig, SchedulerConfig, SimConfig, SystemConfig

    sections = {None: SimConfig, "scheduler": SchedulerConfig, "memory": MemoryConfig,
                "system": SystemConfig}
    out = {}
    for flag, (section, name) in FLAG_FIELDS.items():
        meta = {f.name: f.metadata for f in dataclasses.fields(sections[section])}[name]
        if meta.get("range"):
            low, high = meta["range"]
            units = "" if meta.get("units", "1") == "1" else f" {meta['units']}"
            show = lambda v: str(v) if isinstance(v, int) else f"{v:g}"  # noqa: E731
            out[flag] = f"range {show(low)} .. {show(high)}{units}"
    return out


def add_run_parser(sub) -> None:
    """Add the ``run`` subcommand to ``llmsim``'s subparsers."""
    run = sub.add_parser("run", help="simulate a trace and print a summary")
    ranges = flag_ranges()
    for name, kind, text in RUN_FLAGS:
        if name in ranges:
            text = f"{text} ({ranges[name]})"
        if kind is None:
            run.add_argument(f"--{name}", action="store_true", default=None, help=text)
        else:
            run.add_argument(f"--{name}", type=kind, default=None, help=text)
    run.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _format_summary(summary: dict, wall: float, ds) -> str:
    def ms(x: float) -> str:
        return f"{x * 1e3:9.1f} ms"

    lines = [
        "-" * 60,
        f"llmsim_nb {ds.attrs['llmsim_nb_version']}: {ds.attrs['model']} on "
        f"{ds.attrs['hardware']} ({ds.attrs['engine']} engine)",
        f"trace: {ds.attrs['trace_source']}",
        f"requests finished   {summary['num_finished']} / {summary['num_requests']}",
        f"iterations          {summary['num_iterations']}",
        f"simulated time      {summary['simulated_time']:.3f} s",
        f"prompt throughput   {summary['prompt_throughput']:.1f} tokens/s",
        f"generation thrpt.   {summary['generation_throughput']:.1f} tokens/s",
        f"TTFT  mean {ms(summary['ttft_mean'])}  p50 {ms(summary['ttft_p50'])}  "
        f"p99 {ms(summary['ttft_p99'])}",
        f"TPOT  mean {ms(summary['tpot_mean'])}  p50 {ms(summary['tpot_p50'])}  "
        f"p99 {ms(summary['tpot_p99'])}",
        f"E2E   mean {ms(summary['e2e_mean'])}  p50 {ms(summary['e2e_p50'])}  "
        f"p99 {ms(summary['e2e_p99'])}",
        f"KV cache            {ds.attrs['num_kv_blocks']} blocks, peak usage "
        f"{summary['kv_usage_peak']:.1%}, {summary['num_evictions']} evictions",
        f"wall time           {wall:.3f} s",
        "-" * 60,
    ]
    return "\n".join(lines)


def run_run_command(args: argparse.Namespace) -> int:
    """Run ``llmsim run``; return the exit status."""
    from tqdm import tqdm

    from ..instance.simulator import Simulator
    from ..results.dataset import summarize
    from ..results.files import check_output_prefix, check_throughput_buckets, write_outputs

    flags = {name: getattr(args, name) for name, _, _ in RUN_FLAGS}
    start = time.perf_counter()
    config = SimConfig.from_flags(**flags)
    if args.output is not None:  # before anything is simulated (or created)
        check_output_prefix(args.output)
    sim = Simulator(config)
    if args.output is not None:
        # The run lasts at least until the last arrival becomes schedulable, so
        # the throughput table has at least that many buckets: refuse it now,
        # not after the simulation, if it would be too big to allocate.
        check_throughput_buckets(float(sim.trace.arrival_at.max()) + config.scheduler.batch_delay)
    total = len(sim.trace)
    with tqdm(total=total, unit="req", delay=2.0, disable=True if args.quiet else None,
              desc="simulating", file=sys.stderr) as bar, \
            warnings.catch_warnings(record=True) as caught:
        def progress(done: int) -> None:
            bar.update(done - bar.n)

        try:
            ds = sim.run(progress=progress)  # with --fast_run it reads and writes the cache
        finally:
            for warning in caught:  # one line each, not Python's two-line format
                print(f"llmsim: warning: {warning.message}", file=sys.stderr)
    wall = time.perf_counter() - start
    if args.output is not None:
        paths = write_outputs(ds, args.output)
        if not args.quiet:
            print("wrote " + ", ".join(str(p) for p in paths))
    if not args.quiet:
        print(_format_summary(summarize(ds), wall, ds))
    return 0



__all__ = ["RUN_FLAGS", "add_run_parser", "run_run_command"]
