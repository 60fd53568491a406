"""Run totals of the power model: joules per token, average and peak power, cost.

From the per-iteration energies a run with ``power`` on records
(``iteration_energy``, ``device_power``...) and the Dataset attributes it
sets (``power_idle_w``, ``price_per_hour``, ``carbon_g_per_kwh``). Between
iterations the instance idles: every device (and the host) draws its idle
power, so the run's energy is::

    energy = sum of iteration_energy + power_idle_w * (simulated_time - busy time)

Cost is the devices' price per hour times the simulated time. It is split
between input and output tokens by each iteration's share of prompt tokens
(``num_prefill_tokens``) and decode tokens (``num_decode_tokens``); idle time
by the run's overall shares. Every figure is NaN for a run without ``power``
(and the cost ones where no price is known).
"""

from __future__ import annotations

import math

import numpy as np

#: key: (units, definition); the order summarize returns them in.
ENERGY_METRICS: dict[str, tuple[str, str]] = {
    "energy": ("J", "energy of the run: devices, links and host over simulated_time (idle "
                    "power between iterations included); NaN without power"),
    "energy_per_output_token": ("J/token", "energy / output tokens emitted "
                                           "(num_generated_tokens)"),
    "tokens_per_joule": ("token/J", "output tokens emitted / energy"),
    "average_power": ("W", "energy / simulated_time"),
    "peak_power": ("W", "highest iteration power: iteration_energy / latency"),
    "cost": ("USD", "device price per hour x simulated_time (NaN without a price)"),
    "cost_per_million_input_tokens": ("USD/Mtoken", "cost share of the prompt tokens per "
                                                    "million prompt tokens computed"),
    "cost_per_million_output_tokens": ("USD/Mtoken", "cost share of the decode tokens per "
                                                     "million output tokens emitted"),
    "carbon_per_output_token": ("g/token", "energy x carbon_g_per_kwh / output tokens (NaN "
                                           "without a carbon intensity)"),
}


def energy_totals(ds, duration: float) -> dict[str, float]:
    """The :data:`ENERGY_METRICS` of a run Dataset (or ArrayResults)."""
    out = dict.fromkeys(ENERGY_METRICS, math.nan)
    if "iteration_energy" not in ds:
        return out
    attrs = ds.attrs
    iteration = ds["iteration_energy"].values
    latency = ds["latency"].values
    prompt = ds["num_prefill_tokens"].values.astype(np.float64)
    decode = ds["num_decode_tokens"].values.astype(np.float64)
    tokens = prompt + decode
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(tokens > 0, prompt / tokens, 0.0)
    total_prompt, total_decode = float(prompt.sum()), float(decode.sum())
    overall = total_prompt / (total_prompt + total_decode) if total_prompt + total_decode \
        else 0.0
    # Each instance idles (at its idle power) whenever it runs no iteration: one
    # group for a single instance's run, one per instance for a cluster's.
    energy, cost, input_cost = float(iteration.sum()), 0.0, 0.0
    for mask, idle_w, price in _groups(ds):
        idle_time = max(0.0, duration - float(latency[mask].sum()))
        energy += idle_w * idle_time
        cost += price * duration / 3600.0
        input_cost += price * (float((latency[mask] * share[mask]).sum())
                               + idle_time * overall) / 3600.0
    outputs = float(ds["num_generated_tokens"].values.sum())
    out["energy"] = energy
    out["energy_per_output_token"] = energy / outputs if outputs else math.nan
    out["tokens_per_joule"] = outputs / energy if energy else math.nan
    out["average_power"] = energy / duration if duration else math.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        out["peak_power"] = float(np.max(iteration / latency)) if len(latency) else math.nan
    out["cost"] = cost
    if total_prompt:
        out["cost_per_million_input_tokens"] = input_cost / total_prompt * 1e6
    if outputs:
        out["cost_per_million_output_tokens"] = (cost - input_cost) / outputs * 1e6
    carbon = float(attrs.get("carbon_g_per_kwh", 0.0))
    if carbon and outputs:
        out["carbon_per_output_token"] = energy / 3.6e6 * carbon / outputs
    return out


def _groups(ds):
    """(iteration mask, idle W, price per hour) of each instance in ``ds``."""
    if "instance_idle_power" not in ds:
        everything = np.ones(ds.sizes.get("iteration", 0), dtype=bool)
        return [(everything, float(ds.attrs["power_idle_w"]),
                 float(ds.attrs.get("price_per_hour", math.nan)))]
    owner = ds["iteration_instance"].values
    return [(owner == k, float(idle), float(price)) for k, (idle, price) in
            enumerate(zip(ds["instance_idle_power"].values,
                          ds["instance_price_per_hour"].values))]


__all__ = ["ENERGY_METRICS", "energy_totals"]
