"""The summary ``llmsim run`` prints: the run's headline figures, one line each."""

from __future__ import annotations

import math


def format_summary(summary: dict, wall: float, ds) -> str:
    """The lines of ``summary`` (:func:`~llmsim_nb.results.summarize`) for a run
    ``ds`` (Dataset or ArrayResults) that took ``wall`` seconds."""
    def ms(x: float) -> str:
        return f"{x * 1e3:9.1f} ms"

    lines = [
        "-" * 60,
        f"llmsim_nb {ds.attrs['llmsim_nb_version']}: {ds.attrs['model']} on "
        f"{ds.attrs['hardware']} ({ds.attrs['engine']} engine)",
        f"layout              {_group(ds.attrs)} x PP "
        f"{ds.attrs.get('pipeline_parallel', '?')}, network {ds.attrs.get('network') or '-'}, "
        f"{ds.attrs['engine']} engine",
        f"scheduling          {ds.attrs.get('scheduling', '?')}, prefix caching "
        f"{ds.attrs.get('prefix_caching', '?')}, serving stack "
        f"{ds.attrs.get('serving_stack', 'none')}",
        *pim_lines(ds.attrs),
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
        f"{summary['kv_usage_peak']:.1%}"
        + ("" if ds.attrs.get("scheduling") == "vllm-v1"
           else f", {summary['num_evictions']} evictions"),
        *prefix_lines(summary),
        f"wall time           {wall:.3f} s",
        "-" * 60,
    ]
    return "\n".join(lines)


def pim_lines(attrs) -> list[str]:
    """With PIM: its channels, micro-batches, and which flags took the original's PIM
    defaults (never silent: :mod:`llmsim_nb.config.original_flags`)."""
    if "implied_flags" not in attrs:
        return []
    implied = attrs["implied_flags"] or "none (all given)"
    return [f"PIM                 {attrs['pim_channels']} channels per device, "
            f"{attrs['micro_batches']} micro-batch(es) per iteration",
            f"original's PIM defaults: {implied}"]


def prefix_lines(summary: dict) -> list[str]:
    """The summary lines of prefix caching, preemption and goodput, where they apply."""
    lines = []
    if not math.isnan(summary.get("prefix_hit_rate", math.nan)):
        lines.append(f"prefix cache        hit rate {summary['prefix_hit_rate']:.1%} "
                     f"({summary['num_cached_tokens']} cached prompt tokens)")
    if summary.get("num_host_cached_tokens") or summary.get("host_stored_bytes"):
        lines.append(f"host KV tier        {summary['num_host_cached_tokens']} tokens hit there; "
                     f"{summary['host_stored_bytes'] / 1e9:.3f} GB stored, "
                     f"{summary['host_loaded_bytes'] / 1e9:.3f} GB loaded")
    if summary.get("num_preemptions"):
        lines.append(f"preemptions         {summary['num_preemptions']} (by recompute)")
    if not math.isnan(summary.get("energy", math.nan)):  # power on (docs/power.md)
        lines.append(f"energy              {summary['energy']:.4g} J, "
                     f"{summary['energy_per_output_token']:.4g} J/token, average "
                     f"{summary['average_power']:.4g} W, peak {summary['peak_power']:.4g} W")
        if not math.isnan(summary.get("cost", math.nan)):
            lines.append(f"cost                ${summary['cost_per_million_output_tokens']:.3g}"
                         f" per M output tokens, "
                         f"${summary['cost_per_million_input_tokens']:.3g} per M input tokens")
    if not math.isnan(summary.get("goodput", math.nan)):
        lines.append(f"goodput             {summary['goodput']:.2f} req/s "
                     f"({summary['goodput_fraction']:.1%} of requests meet the SLOs)")
    return lines


def _group(attrs) -> str:
    """How the ranks of a stage split the model: "TP 4", or "DP 4 (attention) + EP 4"."""
    ranks = attrs.get("tensor_parallel", "?")
    if attrs.get("attention_placement") == "data":
        return f"DP {ranks} (attention) + EP {ranks}"
    return f"TP {ranks}"
