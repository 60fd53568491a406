"""The Dataset of a whole run: iterations, requests, token gaps, devices, links."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..results.dataset import (COMPONENTS, ArrayResults, Recorder, coords_of, request_arrays,
                               request_variables, variable)
from ..scheduler.request_state import RequestTable
from ..engines.pim import get_pim
from .token_times import TokenTimes
from .usage import Usage
from .power_run import make_recorder, power_attrs  # noqa: F401  (make_recorder: for instance)

if TYPE_CHECKING:
    import xarray as xr


def result_arrays(recorder: Recorder, table: RequestTable, token_times: TokenTimes, attrs: dict,
                  with_ops: bool = True, with_gaps: bool = True,
                  lazy: bool = False) -> ArrayResults:
    """The values of :func:`run_dataset`'s iteration and request variables as
    plain arrays (``summarize`` takes them).

    Without ``op_latency`` or ``inter_token_latency`` when a caller (a
    cluster) has no use for them (``token_times`` gives the gaps); with
    ``lazy`` (which has no ``op_latency``), each iteration variable is made
    when read (:class:`~llmsim_nb.results.recorder.LazyColumns`).
    """
    others = request_arrays(table)
    if with_gaps:
        others["inter_token_latency"] = token_times.shared_gaps()
    if lazy:
        if with_ops:
            raise ValueError("result_arrays(lazy=True) has no op_latency: pass with_ops=False")
        arrays = recorder.lazy_arrays(others)
    else:
        arrays = recorder.iteration_arrays(with_ops)
        arrays.update(others)
    return ArrayResults(arrays, {"iteration": recorder.num_iterations, "request": len(table)},
                        attrs)


def run_dataset(recorder: Recorder, table: RequestTable, usage: Usage, wall: dict[str, float],
                gaps: np.ndarray, op_names: tuple[str, ...], has_pim: bool,
                attrs: dict) -> xr.Dataset:
    """One Dataset of everything recorded so far (dims iteration, op, request,
    token_gap, component, device, link)."""
    data = recorder.iteration_variables()
    data.update(request_variables(table))
    data["inter_token_latency"] = variable("inter_token_latency", ("token_gap",), gaps)
    data["wall_time"] = variable("wall_time", ("component",),
                                 np.array([wall[c] for c in COMPONENTS]))
    data["device_busy_time"] = variable("device_busy_time", ("device",),
                                        usage.device_busy.copy())
    if has_pim:
        data["pim_busy_time"] = variable("pim_busy_time", ("device",), usage.pim_busy.copy())
    links = sorted(usage.link_bytes)
    data["link_bytes"] = variable("link_bytes", ("link",),
                                  np.array([usage.link_bytes[k] for k in links], dtype=float))
    # ``token_gap`` has no coordinate: its positions would be 0..n-1, and an
    # int64 coordinate (with its pandas index) would triple the memory of the
    # largest variable of a long run (one gap per output token).
    coords = {"iteration": np.arange(recorder.num_iterations), "op": list(op_names),
              "request": np.arange(len(table)),
              "component": list(COMPONENTS), "device": np.arange(len(usage.device_busy)),
              "link": np.array(links, dtype=str)}
    import xarray as xr  # here, not at the top: stepping and recording need no xarray

    return xr.Dataset(data, coords=coords_of(coords), attrs=attrs)


def instance_attrs(instance) -> dict[str, object]:
    """An instance's Dataset attributes: its config, seed, version and layout."""
    from .._version import __version__

    sched = instance.scheduler.config
    return {"config": instance.config.to_json(), "seed": instance.config.seed,
            "llmsim_nb_version": __version__, "model": instance.model.name,
            "hardware": instance.config.hardware, "engine": instance.engine.name,
            "scheduling": sched.policy,
            "serving_stack": instance.parts.serving_stack.name,
            "prefix_caching": "on" if sched.prefix_caching else "off",
            "trace_source": instance._trace_source,
            "num_kv_blocks": instance.kv_cache.num_blocks,
            "tensor_parallel": instance.layout.tp, "pipeline_parallel": instance.layout.pp,
            "attention_placement": instance.layout.attention,
            "network": instance.topology.name,
            "host_bandwidth": instance.network.host_bandwidth,
            "host_latency": instance.network.host_latency,
            "kv_block_bytes": instance.config.scheduler.block_size
            * instance.model.kv_bytes_per_token(),
            **pim_attrs(instance),
            **power_attrs(instance),
            "time_units": "s"}


def pim_attrs(instance) -> dict[str, object]:
    """With PIM: the PIM channels per device, the micro-batches, and ``implied_flags``,
    the flags whose value came from the original's PIM defaults
    (:mod:`llmsim_nb.config.original_flags`; "" when every one was given)."""
    pim = getattr(instance, "pim", None)
    if pim is None:
        return {}
    from ..config.original_flags import format_implied, implied_flags

    config = instance.config
    preset = get_pim(config.system.pim_hardware)
    implied = implied_flags(config.system, config.memory, instance.layout.pp,
                            preset.channel_bytes, preset.channels,
                            mixture_of_experts=instance.model.moe is not None)
    return {"pim_channels": pim.device.channels,
            "micro_batches": instance.layout.num_micro_batches,
            "implied_flags": format_implied(implied)}
