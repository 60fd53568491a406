"""Results: numpy buffers during a run, one self-describing xarray Dataset after.

Every variable carries ``units`` and ``long_name``; the Dataset's ``attrs`` hold
the config (JSON), the seed and the package version, so a saved result says
how it was made. ``Simulator.step()`` returns :func:`iteration_dataset` for one
iteration; ``Simulator.run()`` records into a :class:`Recorder` and builds a
single Dataset at the end (no per-step ``xr.concat``); the variables' table is
in :mod:`.variables`, the recorder in :mod:`.recorder`. :func:`summarize` (in
:mod:`.metrics`, importable from here too) reduces a run to headline figures.

Prefix caching and preemption by recompute: per iteration
``num_prefix_query_tokens`` / ``num_prefix_cached_tokens`` (the plan's
``num_prefix_query_tokens`` / ``num_cached_tokens``: the name
``num_cached_tokens`` is the per-request variable), ``num_host_cached_tokens``
(of those, the hits in vllm-v1's host-memory tier), ``prefix_hit_rate`` and
``num_preempted``; per request ``num_cached_tokens``, ``num_preemptions``,
``num_recomputed_tokens`` and ``priority``. ``num_computed_prompt_tokens`` is
the prompt tokens an iteration computes (cached ones excluded);
``num_prefill_tokens`` adds, under vllm-v1, the outputs recomputed after a
preemption (without preemption the two are equal). Schedulers without these
features record 0 (NaN for the rate).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..scheduler.request_state import RequestTable
from .metrics import METRIC_UNITS, metric_definitions, summarize  # noqa: F401  (importable here)
# Importable from here as before the split: the variable table and the recorder.
from .recorder import IterationRecord, Recorder  # noqa: F401
from .variables import (COMPONENTS, INT_VARS, ITERATION_VARS,  # noqa: F401
                        SIMULATION_EFFORT_VARS, VARIABLES, coords_of, variable)

if TYPE_CHECKING:
    import xarray as xr

def request_variables(table: RequestTable) -> dict[str, xr.Variable]:
    """Per-request variables (NaN where a request has not reached that point)."""
    return {name: variable(name, ("request",), values)
            for name, values in request_arrays(table).items()}


def request_arrays(table: RequestTable) -> dict[str, np.ndarray]:
    """Per-request values by variable name (NaN where a request has not reached that point)."""
    col = table.column
    arrival, admitted = col("arrival_at"), col("admitted_at")
    first, finished = col("first_token_at"), col("finished_at")
    outputs = col("num_output_tokens")
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(outputs > 1, (finished - first) / np.maximum(outputs - 1, 1), math.nan)
    data = {
        "arrival_at": arrival, "admitted_at": admitted, "first_token_at": first,
        "finished_at": finished, "ttft": first - arrival, "tpot": tpot,
        "e2e_latency": finished - arrival, "queueing_delay": admitted - arrival,
        "num_prompt_tokens": col("num_prompt_tokens"),
        "num_output_tokens": outputs, "num_evictions": col("num_evictions"),
        "num_cached_tokens": col("num_cached_tokens"),
        "num_preemptions": col("num_preemptions"),
        "num_recomputed_tokens": col("num_recomputed_tokens"), "priority": col("priority"),
    }
    return data


def iteration_dataset(record: IterationRecord, op_names: tuple[str, ...], attrs: dict,
                      graph=None, schedule=None) -> xr.Dataset:
    """The small Dataset ``Simulator.step()`` returns: one iteration, its batch and,
    with ``graph`` and ``schedule``, every execution-graph node's timing (dim
    ``node``) for a Gantt chart."""
    import xarray as xr

    plan = record.plan
    values = record.values()
    data = {name: variable(name, ("iteration",), np.array([values[name]]))
            for name in ITERATION_VARS}
    data["op_latency"] = variable("op_latency", ("iteration", "op"), record.op_latency[None, :])
    if record.expert_tokens is not None:
        data["expert_tokens"] = variable("expert_tokens", ("expert",),
                                         record.expert_tokens.copy())
    data["num_query_tokens"] = variable("num_query_tokens", ("request",),
                                    plan.batch.num_query_tokens.copy())
    data["num_context_tokens"] = variable("num_context_tokens", ("request",),
                                      plan.batch.num_context_tokens.copy())
    data["num_prompt_tokens"] = xr.Variable(
        ("request",), plan.num_prompt_tokens.copy(),
        attrs={"units": "token", "long_name": "prompt tokens among the request's query tokens"})
    coords = {"iteration": [plan.iteration], "op": list(op_names),
              "request": plan.batch.request_ids.copy()}
    if graph is not None and schedule is not None:
        nodes = graph.nodes
        data["node_start_at"] = variable("node_start_at", ("node",), schedule.start_at.copy())
        data["node_end_at"] = variable("node_end_at", ("node",), schedule.end_at.copy())
        data["node_device"] = variable("node_device", ("node",),
                                   np.array([n.device for n in nodes], dtype=np.int64))
        data["node_size"] = variable("node_size", ("node",), np.array([n.size for n in nodes]))
        data["node_unit"] = variable("node_unit", ("node",),
                                 np.array([n.unit for n in nodes], dtype=np.int64))
        coords["node"] = np.arange(len(nodes))
        coords["node_name"] = ("node", np.array([n.name for n in nodes], dtype=str))
        coords["node_type"] = ("node", np.array([n.type.value for n in nodes], dtype=str))
    return xr.Dataset(data, coords=coords_of(coords), attrs=attrs)


class ArrayResults:
    """A run's results as plain arrays: what :func:`summarize` reads, without a Dataset.

    ``results[name].values``, ``results.sizes`` and ``results.attrs`` answer as
    a run Dataset's do (the same arrays ``Instance.results()`` wraps), so the
    CLI's summary needs no xarray.
    """

    class _Values:
        __slots__ = ("values",)

        def __init__(self, values: np.ndarray) -> None:
            self.values = values

    def __init__(self, arrays: dict[str, np.ndarray], sizes: dict[str, int], attrs: dict) -> None:
        self._arrays = arrays
        self.sizes = sizes
        self.attrs = attrs

    def __getitem__(self, name: str) -> "ArrayResults._Values":
        return self._Values(self._arrays[name])

    def __contains__(self, name: object) -> bool:
        return name in self._arrays
