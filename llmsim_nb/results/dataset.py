"""Results: numpy buffers during a run, one self-describing xarray Dataset after.

Every variable carries ``units`` and ``long_name``; the Dataset's ``attrs`` hold
the config (JSON), the seed and the package version, so a saved result says
how it was made. ``Simulator.step()`` returns :func:`iteration_dataset` for one
iteration; ``Simulator.run()`` records into a :class:`Recorder` and builds a
single Dataset at the end (no per-step ``xr.concat``). :func:`summarize` (in
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
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np

from ..scheduler.plan import IterationPlan
from ..scheduler.request_state import RequestTable
from .metrics import METRIC_UNITS, metric_definitions, summarize  # noqa: F401  (importable here)

if TYPE_CHECKING:
    import xarray as xr

# name: (units, long_name) of every variable the simulator writes.
VARIABLES: dict[str, tuple[str, str]] = {
    "t_start": ("s", "iteration start time"),
    "t_end": ("s", "iteration end time"),
    "latency": ("s", "iteration latency (compute + host transfers)"),
    "compute_latency": ("s", "time the engine spends on the iteration's operators"),
    "host_transfer_latency": ("s", "time moving evicted / reloaded KV blocks over the host link"),
    "batch_size": ("1", "requests in the batch"),
    "num_prefill_tokens": ("token", "prompt tokens computed in the iteration (tokens found "
                                    "in the prefix cache are not computed)"),
    "num_decode_tokens": ("token", "decode tokens computed in the iteration"),
    "num_generated_tokens": ("token", "output tokens emitted by the iteration"),
    "kv_usage": ("1", "fraction of KV blocks in use after allocation"),
    "num_used_blocks": ("block", "KV blocks in use after allocation"),
    "num_evicted": ("1", "requests whose KV cache was swapped out to host memory for the "
                         "iteration (orca / vllm / chunked); 0 for vllm-v1, which preempts "
                         "by recompute and moves cached blocks, not requests"),
    "num_reloaded": ("1", "requests whose KV cache was swapped back from host memory for the "
                          "iteration (orca / vllm / chunked); 0 for vllm-v1"),
    "evicted_bytes": ("B", "KV bytes stored to host memory: evicted requests' KV cache "
                           "(orca / vllm / chunked), or copies of the cached blocks the "
                           "device evicts into the host tier (vllm-v1 with kv_offload_gib)"),
    "reloaded_bytes": ("B", "KV bytes loaded from host memory: reloaded requests' KV cache "
                            "(orca / vllm / chunked), or the prefix-cache hits found in the "
                            "host tier (vllm-v1 with kv_offload_gib; num_host_cached_tokens)"),
    "num_finished": ("1", "requests that finished at the end of the iteration (a request "
                          "with nothing to compute, gen with zero outputs, finishes on "
                          "arrival, in no iteration)"),
    "num_computed_prompt_tokens": ("token", "prompt tokens computed in the iteration (prefix-"
                                            "cache hits excluded; outputs recomputed after a "
                                            "preemption excluded, unlike num_prefill_tokens)"),
    "num_prefix_query_tokens": ("token", "tokens looked up in the prefix cache by the "
                                         "requests admitted for the first time in the "
                                         "iteration (re-admissions after a preemption are "
                                         "counted apart, as vLLM's PrefixCacheStats does)"),
    "num_prefix_cached_tokens": ("token", "of the looked-up tokens, those found in the prefix "
                                          "cache (not computed)"),
    "num_host_cached_tokens": ("token", "of the cached tokens, those found in the host-memory "
                                        "tier and loaded back (reloaded_bytes) instead of "
                                        "computed (vllm-v1 with kv_offload_gib; 0 otherwise)"),
    "prefix_hit_rate": ("1", "num_prefix_cached_tokens / num_prefix_query_tokens of the "
                             "iteration (NaN without lookups)"),
    "num_preempted": ("1", "requests preempted by recompute for the iteration (blocks freed, "
                           "tokens to be computed again)"),
    "reuse_hits": ("1", "operator instances whose timing came from the reuse cache "
                        "(simulation effort, not a simulated quantity)"),
    "reuse_misses": ("1", "operator instances the engine had to simulate "
                          "(simulation effort, not a simulated quantity)"),
    "num_active_experts": ("1", "routed experts that received at least one token in the "
                                "iteration (of an MoE layer; 0 without MoE layers)"),
    "max_expert_tokens": ("token", "most tokens one routed expert received in the iteration "
                                   "(0 without MoE layers)"),
    "max_rank_expert_tokens": ("token", "expert parallelism: most routed tokens one rank "
                                        "computed in the iteration (0 without it)"),
    "dispatch_bytes": ("B", "attention data parallelism: bytes the MoE layers' dispatch "
                            "all-to-alls send between ranks in the iteration, every MoE layer "
                            "(the combines send as many back; 0 without it)"),
    "expert_tokens": ("token", "tokens each routed expert received in the iteration (the "
                               "routing model's draw, summed over micro-batches)"),
    # A cluster's Dataset (llmsim_nb.cluster.results).
    "iteration_instance": ("1", "instance that ran the iteration"),
    "request_instance": ("1", "instance the router sent the request to"),
    "instance_num_requests": ("1", "requests routed to the instance"),
    "instance_num_iterations": ("1", "iterations the instance ran"),
    "instance_busy_time": ("s", "time the instance's devices computed, summed over its "
                                "devices and iterations"),
    "request_decode_instance": ("1", "prefill/decode disaggregation: the decode instance the "
                                     "request's KV moved to (-1: none)"),
    "kv_transfer_bytes": ("B", "KV bytes moved from the prefill to the decode instance (the "
                               "prompt's KV on the prefill layout; 0: none)"),
    "kv_transfer_started_at": ("s", "when the decode instance had the blocks and the KV "
                                    "transfer began (NaN: none)"),
    "kv_transfer_latency": ("s", "how long the KV transfer took once begun (NaN: none)"),
    "op_latency": ("s", "operator latency in the iteration, summed over layers and requests"),
    "arrival_at": ("s", "request arrival time"),
    "admitted_at": ("s", "time the request was first scheduled"),
    "first_token_at": ("s", "time the first output token was emitted"),
    "finished_at": ("s", "time the last output token was emitted (+ serving stack's completion)"),
    "ttft": ("s", "time to first token (first_token_at - arrival_at)"),
    "tpot": ("s", "time per output token after the first"),
    "e2e_latency": ("s", "end-to-end latency (finished_at - arrival_at)"),
    "queueing_delay": ("s", "time from arrival to first scheduling"),
    "num_prompt_tokens": ("token", "prompt length"),
    "num_output_tokens": ("token", "output length requested"),
    "num_evictions": ("1", "times the request's KV cache was evicted"),
    "num_cached_tokens": ("token", "prompt tokens found in the prefix cache at the request's "
                                   "first admission"),
    "num_preemptions": ("1", "times the request was preempted by recompute"),
    "num_recomputed_tokens": ("token", "tokens the request held in the KV cache when "
                                       "preempted (computed or taken from the cache), summed "
                                       "over its preemptions; computed again unless found "
                                       "cached"),
    "priority": ("1", "scheduling priority of the request (lower is scheduled first)"),
    "inter_token_latency": ("s", "time between two consecutive output tokens of a request "
                                 "(every gap of every request, in emission order)"),
    "num_query_tokens": ("token", "tokens the request computes in this iteration"),
    "num_context_tokens": ("token", "tokens in the request's KV cache before this iteration"),
    "wall_time": ("s", "host wall-clock time spent per simulator component"),
    "device_busy_time": ("s", "time each device spent computing, summed over iterations"),
    "pim_busy_time": ("s", "time each device's PIM units spent computing (a local PIM on "
                           "its NPU's device, a pooled PIM device on its own), summed over "
                           "iterations"),
    "link_bytes": ("B", "bytes carried per link class, summed over iterations"),
    "node_start_at": ("s", "execution-graph node start, from the iteration's start"),
    "node_end_at": ("s", "execution-graph node end, from the iteration's start"),
    "node_device": ("1", "device (or class representative) that runs the node"),
    "node_size": ("B", "bytes a communication or memory node moves"),
    "node_unit": ("1", "compute unit of the node's device (0 the device's own, 1.. a PIM "
                       "beside it or a pooled PIM device's channel share)"),
    # Error bands (llmsim_nb.fidelity.error_band).
    "residual_factor": ("1", "latency factor exp(log(measured/predicted)) of an op kind in "
                             "a perturbed re-run"),
    "prompt_throughput_band": ("token/s", "band quantile of the prompt throughput per bucket "
                                          "over the perturbed re-runs"),
    "generation_throughput_band": ("token/s", "band quantile of the generation throughput "
                                              "per bucket over the perturbed re-runs"),
    # Power model (power=True; llmsim_nb.power, docs/power.md).
    "device_energy": ("J", "energy each device drew in the iteration (idle/static power for "
                           "the iteration's latency plus its share of the operators' energy)"),
    "device_power": ("W", "average power of each device over the iteration"),
    "link_energy": ("J", "energy of the bytes the iteration moved over links (host DRAM too)"),
    "host_energy": ("J", "host CPU energy over the iteration (host_cpu_w per device)"),
    "iteration_energy": ("J", "energy of the iteration: devices, links and host"),
    "request_energy": ("J", "energy attributed to the request: each iteration's energy "
                            "shared by the tokens each request computed in it"),
    "instance_idle_power": ("W", "power the instance draws between its iterations (power on)"),
    "instance_price_per_hour": ("USD/h", "price of the instance's devices per hour (NaN: none)"),
}

ITERATION_VARS = ("t_start", "t_end", "latency", "compute_latency", "host_transfer_latency",
                  "batch_size", "num_prefill_tokens", "num_decode_tokens",
                  "num_generated_tokens", "kv_usage", "num_used_blocks", "num_evicted",
                  "num_reloaded", "evicted_bytes", "reloaded_bytes", "num_finished",
                  "num_computed_prompt_tokens", "num_prefix_query_tokens",
                  "num_prefix_cached_tokens",
                  "num_host_cached_tokens", "prefix_hit_rate", "num_preempted", "reuse_hits",
                  "reuse_misses", "num_active_experts", "max_expert_tokens",
                  "max_rank_expert_tokens", "dispatch_bytes")
# Variables that measure the simulator's own effort, not the simulated system:
# they may differ between runs whose simulated results are identical.
SIMULATION_EFFORT_VARS = ("wall_time", "reuse_hits", "reuse_misses")
_INT_VARS = {"batch_size", "num_prefill_tokens", "num_decode_tokens", "num_generated_tokens",
             "num_used_blocks", "num_evicted", "num_reloaded", "num_finished",
             "num_computed_prompt_tokens", "num_prefix_query_tokens", "num_prefix_cached_tokens",
             "num_host_cached_tokens",
             "num_preempted", "reuse_hits", "reuse_misses", "num_active_experts",
             "max_expert_tokens", "max_rank_expert_tokens"}
# Components of the original's simulation-time report.
COMPONENTS = ("scheduler", "execution_engine", "graph_converter", "network")


@dataclass(frozen=True, slots=True)
class IterationRecord:
    """What one simulated iteration produced (the simulator fills it)."""

    plan: IterationPlan
    t_start: float
    t_end: float
    compute_latency: float
    host_transfer_latency: float
    op_latency: np.ndarray
    finished: tuple[int, ...]
    reuse_hits: int = 0
    reuse_misses: int = 0
    expert_tokens: np.ndarray | None = None       # MoE: tokens per routed expert
    rank_expert_tokens: np.ndarray | None = None  # expert parallelism: per rank
    dispatch_bytes: float = 0.0                   # attention data parallelism

    @property
    def latency(self) -> float:
        return self.t_end - self.t_start

    def row(self) -> tuple[float, ...]:
        """The iteration's values in :data:`ITERATION_VARS` order."""
        plan = self.plan
        batch = plan.batch
        prefill = plan.num_prefill_tokens
        return (self.t_start, self.t_end, self.t_end - self.t_start, self.compute_latency,
                self.host_transfer_latency, len(batch.request_ids), prefill,
                batch.num_tokens - prefill, int(np.add.reduce(batch.num_logit_tokens)), plan.kv_usage,
                plan.num_used_blocks, len(plan.evicted_request_ids),
                len(plan.reloaded_request_ids), plan.evicted_bytes, plan.reloaded_bytes,
                len(self.finished), plan.computed_prompt_tokens, plan.num_prefix_query_tokens,
                plan.num_cached_tokens,
                plan.num_host_cached_tokens, plan.prefix_hit_rate,
                len(plan.preempted_request_ids), self.reuse_hits, self.reuse_misses,
                *self._expert_row(), self.dispatch_bytes)

    def _expert_row(self) -> tuple[int, int, int]:
        experts, ranks = self.expert_tokens, self.rank_expert_tokens
        if experts is None:
            return 0, 0, 0
        return (int(np.count_nonzero(experts)), int(experts.max()),
                int(ranks.max()) if ranks is not None else 0)

    def values(self) -> dict[str, float]:
        """The iteration's values by variable name."""
        return dict(zip(ITERATION_VARS, self.row()))


def variable(name: str, dims: tuple[str, ...], data: np.ndarray) -> xr.Variable:
    """The Variable ``name`` over ``dims``, with its units and long name from
    :data:`VARIABLES` (every result variable is made here)."""
    import xarray as xr  # here, not at the top: recording a run needs no xarray

    units, long_name = VARIABLES[name]
    # fastpath: ``data`` is always a plain numpy array here, so xarray need not
    # check whether it is a dask or pandas object (that check imports
    # dask.array, half a second of every CLI run). Anything else (a list) has
    # no ``ndim`` and takes xarray's normal path.
    return xr.Variable(dims, data, attrs={"units": units, "long_name": long_name},
                       fastpath=True)


def _coord(dim: str, values) -> xr.Variable:
    """A coordinate along ``dim`` as a Variable (fastpath: see :func:`variable`)."""
    import xarray as xr

    return xr.Variable((dim,), np.asarray(values), fastpath=True)


def coords_of(coords: dict) -> dict[str, xr.Variable]:
    """``{name: values}`` (a dimension's own coordinate) or ``{name: (dim,
    values)}`` as Variables, so building the Dataset imports no dask."""
    return {name: _coord(*value) if isinstance(value, tuple) else _coord(name, value)
            for name, value in coords.items()}


class Recorder:
    """Growable numpy buffer of per-iteration values (amortised O(1) append).

    One float64 row per iteration (one write per append); integer variables
    are exact in float64 and converted when the Dataset is built.
    """

    def __init__(self, op_names: tuple[str, ...], capacity: int = 1024) -> None:
        self.op_names = op_names
        self.num_iterations = 0
        self._rows = np.empty((capacity, len(ITERATION_VARS)), dtype=np.float64)
        self._ops = np.empty((capacity, len(op_names)), dtype=np.float64)

    def append(self, record: IterationRecord) -> None:
        i = self.num_iterations
        if i == len(self._ops):
            self._grow()
        self._rows[i] = record.row()
        self._ops[i] = record.op_latency
        self.num_iterations = i + 1

    def _grow(self) -> None:
        size = 2 * len(self._ops)
        for name in ("_rows", "_ops"):
            old = getattr(self, name)
            new = np.empty((size, old.shape[1]))
            new[: len(old)] = old
            setattr(self, name, new)

    def iteration_arrays(self) -> dict[str, np.ndarray]:
        """Every iteration variable's values (integers as int64), by name."""
        n = self.num_iterations
        out = {name: self._rows[:n, j].astype(np.int64 if name in _INT_VARS else np.float64)
               for j, name in enumerate(ITERATION_VARS)}
        out["op_latency"] = self._ops[:n].copy()
        return out

    def iteration_variables(self) -> dict[str, xr.Variable]:
        arrays = self.iteration_arrays()
        out = {name: variable(name, ("iteration",), arrays[name]) for name in ITERATION_VARS}
        out["op_latency"] = variable("op_latency", ("iteration", "op"), arrays["op_latency"])
        return out


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
