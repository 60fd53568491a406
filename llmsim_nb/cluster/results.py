"""The Dataset of a cluster run: every instance's iterations, every request.

Dims:

- ``iteration``: every iteration of every instance, in start-time order (ties:
  the lower instance), each variable as an instance's run Dataset has it,
  plus ``iteration_instance`` (which instance ran it);
- ``request``: the requests in the order they were submitted to the cluster,
  each with the values its instance recorded, plus ``request_instance``;
- ``instance``: per instance its name (coordinate), requests routed to it,
  iterations and busy time;
- ``token_gap``: every gap between two output tokens of a request, instance
  by instance.

Per-operator latencies and execution-graph tables stay with each instance
(``cluster.instances[k].results()``): instances may run different models,
whose operators differ. ``summarize`` reads this Dataset as it reads a
single instance's.
"""

from __future__ import annotations

import json

import numpy as np

from .._version import __version__
from ..results.dataset import ITERATION_VARS, coords_of, request_arrays, variable

#: Per-request values a disaggregated request takes from its decode side.
_FROM_DECODE = ("finished_at",)
_SUMMED = ("num_preemptions", "num_evictions", "num_recomputed_tokens")


def cluster_dataset(cluster):
    """See the module docstring."""
    import xarray as xr

    # Without per-op latencies (they stay with each instance) and gaps (copied
    # below straight into the cluster's array): a large run's peak memory.
    # Iteration variables made per variable when read (lazy): never every
    # instance's whole iteration table at once.
    parts = [inst.result_arrays(with_ops=False, with_gaps=False, lazy=True)
             for inst in cluster.instances]
    owner = np.concatenate([np.full(p.sizes["iteration"], k, dtype=np.int64)
                            for k, p in enumerate(parts)])
    starts = np.concatenate([p["t_start"].values for p in parts])
    order = np.lexsort((owner, starts))  # by start time, then instance
    data = {name: variable(name, ("iteration",),
                            np.concatenate([p[name].values for p in parts])[order])
            for name in ITERATION_VARS}
    data["iteration_instance"] = variable("iteration_instance", ("iteration",), owner[order])
    where = np.array(cluster.request_instance, dtype=np.int64)
    local = np.array(cluster.request_local, dtype=np.int64)
    routed = where >= 0
    for name in request_arrays(cluster.instances[0].scheduler.table):
        first = parts[0][name].values
        out = np.full(len(where), np.nan if first.dtype.kind == "f" else 0, dtype=first.dtype)
        for k, p in enumerate(parts):
            mine = routed & (where == k)
            out[mine] = p[name].values[local[mine]]
        data[name] = variable(name, ("request",), out)
    data["request_instance"] = variable("request_instance", ("request",), where)
    if cluster.disaggregation is not None:
        _decode_side(cluster, data, parts)
    times = [inst.token_times for inst in cluster.instances]
    counts = [t.num_gaps for t in times]
    gaps = np.empty(sum(counts))
    for t, start in zip(times, np.cumsum([0, *counts[:-1]]).tolist()):
        t.move_gaps(gaps[start:])  # the instances keep their part of it: one copy
    gaps.setflags(write=False)
    data["inter_token_latency"] = variable("inter_token_latency", ("token_gap",), gaps)
    data["instance_num_requests"] = variable(
        "instance_num_requests", ("instance",),
        np.array([len(cluster.local_requests[k]) for k in range(len(parts))], dtype=np.int64))
    data["instance_num_iterations"] = variable(
        "instance_num_iterations", ("instance",),
        np.array([p.sizes["iteration"] for p in parts], dtype=np.int64))
    data["instance_busy_time"] = variable(
        "instance_busy_time", ("instance",),
        np.array([float(inst.device_busy_time.sum()) for inst in cluster.instances]))
    _energy(cluster, data, parts, order, where, local)
    coords = {"iteration": np.arange(len(order)), "request": np.arange(len(where)),
              "instance": np.array(cluster.names, dtype=str)}  # token_gap: none (run_dataset)
    attrs = {"cluster": json.dumps(cluster.config.to_dict(), sort_keys=True),
             "seed": cluster.config.seed, "llmsim_nb_version": __version__,
             "router": getattr(cluster.router, "name", "callable"),
             "router_staleness": float(cluster.config.router_staleness),
             "num_instances": len(parts), "time_units": "s"}
    if "iteration_energy" in data:  # carbon intensity: the instances' one value, or none
        carbon = {float(p.attrs["carbon_g_per_kwh"]) for p in parts}
        attrs["carbon_g_per_kwh"] = carbon.pop() if len(carbon) == 1 else 0.0
    return xr.Dataset(data, coords=coords_of(coords), attrs=attrs)


def _energy(cluster, data, parts, order, where, local) -> None:
    """Energy variables where every instance meters power (``power`` on): the
    iterations' energies, each request's (both sides' for a disaggregated
    one), and per instance its idle power and price, which ``summarize``
    needs for the time each instance idles. KV transfers between instances
    are not metered (docs/power.md)."""
    if not all("iteration_energy" in p for p in parts):
        return
    data["iteration_energy"] = variable(
        "iteration_energy", ("iteration",),
        np.concatenate([p["iteration_energy"].values for p in parts])[order])
    energy = np.zeros(len(where))
    for k, p in enumerate(parts):
        mine = where == k
        energy[mine] += p["request_energy"].values[local[mine]]
    if cluster.disaggregation is not None:
        for r, h in cluster.disaggregation.handoffs.items():
            if h.decode >= 0:
                energy[r] += parts[h.decode]["request_energy"].values[h.decode_local]
    data["request_energy"] = variable("request_energy", ("request",), energy)
    for name, key in (("instance_idle_power", "power_idle_w"),
                      ("instance_price_per_hour", "price_per_hour")):
        data[name] = variable(name, ("instance",),
                              np.array([float(p.attrs[key]) for p in parts]))


def _decode_side(cluster, data, parts) -> None:
    """A disaggregated request's values: arrival, admission, first token and
    cache hits from its prefill side; its last token from the decode side;
    its outputs, TPOT and end-to-end latency over both; the transfer."""
    n = len(cluster.requests)
    decode = np.full(n, -1, dtype=np.int64)
    moved, started, latency = np.zeros(n), np.full(n, np.nan), np.full(n, np.nan)
    values = {name: data[name].values.copy() for name in _FROM_DECODE + _SUMMED}
    for r, h in cluster.disaggregation.handoffs.items():
        decode[r], moved[r], started[r] = h.decode, h.num_bytes, h.started_at
        if h.decode < 0:
            continue
        latency[r] = h.latency
        side = parts[h.decode]
        for name in _FROM_DECODE:
            values[name][r] = side[name].values[h.decode_local]
        for name in _SUMMED:
            values[name][r] += side[name].values[h.decode_local]
    outputs = np.array([q.num_output_tokens for q in cluster.requests], dtype=np.int64)
    for name, array in values.items():
        data[name] = variable(name, ("request",), array)
    arrival, first = data["arrival_at"].values, data["first_token_at"].values
    finished = values["finished_at"]
    data["num_output_tokens"] = variable("num_output_tokens", ("request",), outputs)
    data["e2e_latency"] = variable("e2e_latency", ("request",), finished - arrival)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(outputs > 1, (finished - first) / np.maximum(outputs - 1, 1), np.nan)
    data["tpot"] = variable("tpot", ("request",), tpot)
    for name, array in (("request_decode_instance", decode), ("kv_transfer_bytes", moved),
                        ("kv_transfer_started_at", started), ("kv_transfer_latency", latency)):
        data[name] = variable(name, ("request",), array)


__all__ = ["cluster_dataset"]
