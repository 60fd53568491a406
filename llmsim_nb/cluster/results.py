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

_CLUSTER_VARS = {
    "iteration_instance": ("1", "instance that ran the iteration"),
    "request_instance": ("1", "instance the router sent the request to"),
    "instance_num_requests": ("1", "requests routed to the instance"),
    "instance_num_iterations": ("1", "iterations the instance ran"),
    "instance_busy_time": ("s", "time the instance's devices computed, summed over its "
                                "devices and iterations"),
}


def _variable(name: str, dims: tuple[str, ...], data: np.ndarray):
    import xarray as xr

    if name in _CLUSTER_VARS:
        units, long_name = _CLUSTER_VARS[name]
        return xr.Variable(dims, data, attrs={"units": units, "long_name": long_name})
    return variable(name, dims, data)


def cluster_dataset(cluster):
    """See the module docstring."""
    import xarray as xr

    parts = [inst.result_arrays() for inst in cluster.instances]
    owner = np.concatenate([np.full(p.sizes["iteration"], k, dtype=np.int64)
                            for k, p in enumerate(parts)])
    starts = np.concatenate([p["t_start"].values for p in parts])
    order = np.lexsort((owner, starts))  # by start time, then instance
    data = {name: _variable(name, ("iteration",),
                            np.concatenate([p[name].values for p in parts])[order])
            for name in ITERATION_VARS}
    data["iteration_instance"] = _variable("iteration_instance", ("iteration",), owner[order])
    where = np.array(cluster.request_instance, dtype=np.int64)
    local = np.array(cluster.request_local, dtype=np.int64)
    routed = where >= 0
    for name in request_arrays(cluster.instances[0].scheduler.table):
        first = parts[0][name].values
        out = np.full(len(where), np.nan if first.dtype.kind == "f" else 0, dtype=first.dtype)
        for k, p in enumerate(parts):
            mine = routed & (where == k)
            out[mine] = p[name].values[local[mine]]
        data[name] = _variable(name, ("request",), out)
    data["request_instance"] = _variable("request_instance", ("request",), where)
    gaps = np.concatenate([p["inter_token_latency"].values for p in parts])
    data["inter_token_latency"] = _variable("inter_token_latency", ("token_gap",), gaps)
    data["instance_num_requests"] = _variable(
        "instance_num_requests", ("instance",),
        np.array([int((where == k).sum()) for k in range(len(parts))], dtype=np.int64))
    data["instance_num_iterations"] = _variable(
        "instance_num_iterations", ("instance",),
        np.array([p.sizes["iteration"] for p in parts], dtype=np.int64))
    data["instance_busy_time"] = _variable(
        "instance_busy_time", ("instance",),
        np.array([float(inst.device_busy_time.sum()) for inst in cluster.instances]))
    coords = {"iteration": np.arange(len(order)), "request": np.arange(len(where)),
              "instance": np.array(cluster.names, dtype=str), "token_gap": np.arange(len(gaps))}
    attrs = {"cluster": json.dumps(cluster.config.to_dict(), sort_keys=True),
             "seed": cluster.config.seed, "llmsim_nb_version": __version__,
             "router": getattr(cluster.router, "name", "callable"),
             "router_staleness": float(cluster.config.router_staleness),
             "num_instances": len(parts), "time_units": "s"}
    return xr.Dataset(data, coords=coords_of(coords), attrs=attrs)


__all__ = ["cluster_dataset"]
