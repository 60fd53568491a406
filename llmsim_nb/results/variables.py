"""The result variables: names, units and long names, and how each is made.

:data:`VARIABLES` is the one table of every variable the simulator writes
(``units`` and ``long_name``); :func:`variable` makes every result variable
from it, so none lacks either. :data:`ITERATION_VARS` is the order of the
per-iteration values a :class:`~.recorder.Recorder` stores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

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
INT_VARS = {"batch_size", "num_prefill_tokens", "num_decode_tokens", "num_generated_tokens",
             "num_used_blocks", "num_evicted", "num_reloaded", "num_finished",
             "num_computed_prompt_tokens", "num_prefix_query_tokens", "num_prefix_cached_tokens",
             "num_host_cached_tokens",
             "num_preempted", "reuse_hits", "reuse_misses", "num_active_experts",
             "max_expert_tokens", "max_rank_expert_tokens"}
# Components of the original's simulation-time report.
COMPONENTS = ("scheduler", "execution_engine", "graph_converter", "network")


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
