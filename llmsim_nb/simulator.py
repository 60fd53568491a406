"""Simulator: the iteration loop. ``run()`` is repeated ``step()``.

One iteration flows one way::

    trace -> Scheduler.step(now) -> IterationPlan
          -> BlockTemplate.instantiate(batch) -> (embedding, decoder block, LM head)
          -> Engine.simulate(block) per block -> BlockTiming
          -> latency = sum over blocks of block latency x repeat + host transfers
          -> Scheduler.update(plan, now + latency) -> results

The decoder block is timed once and multiplied by ``num_layers`` ("compile one
block and replicate it"). When nothing is schedulable the clock jumps to the
next arrival; idle time is not an iteration. The clock never goes back.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import xarray as xr

from ._version import __version__
from .config import GIB, SimConfig
from .engines.base import Engine, get_engine_class
from .engines.hardware import get_hardware
from .models.catalog import get_model
from .models.template import decoder_template
from .results import (COMPONENTS, IterationRecord, Recorder, _var, iteration_dataset,
                      request_variables)
from .scheduler.kv_cache import KVCacheManager
from .scheduler.scheduler import Scheduler
from .workload import Trace, default_trace, load_trace


class SimulationFinished(Exception):
    """Raised by :meth:`Simulator.step` when every request has finished."""


def _check_supported(config: SimConfig) -> None:
    """Flags a later capability brings: refuse clearly instead of ignoring them."""
    system = config.system
    if system.npu_num != 1 or system.npu_group != 1:
        raise ValueError(
            f"npu_num={system.npu_num}, npu_group={system.npu_group}: multi-NPU tensor / "
            "pipeline parallelism is not supported yet (it comes with the scale-out graph "
            "and network simulator); use npu_num=1, npu_group=1")
    if system.pim_type != "none":
        raise ValueError(f"pim_type={system.pim_type!r}: processing-in-memory is not "
                         "supported yet; use pim_type='none'")
    if system.network is not None:
        raise ValueError(f"network={system.network!r}: network topologies are not supported "
                         "yet (one NPU needs none); leave network unset")


class Simulator:
    """Simulates serving a request trace, one iteration per :meth:`step`.

    Parameters
    ----------
    config : SimConfig, optional
        Defaults to ``SimConfig()``: GPT3-6.7B on the paper's 128x128 NPU.
    trace : Trace, optional
        Requests to serve. Defaults to ``load_trace(config.dataset)`` or, with
        no dataset, the packaged 100-request ShareGPT-like trace.
    engine : Engine, optional
        A ready engine to use instead of the ``config.hardware`` preset's.

    Attributes
    ----------
    now : float
        Simulated clock, seconds.
    scheduler : Scheduler
    engine : Engine
    kv_cache : KVCacheManager
    """

    def __init__(self, config: SimConfig | None = None, trace: Trace | None = None, *,
                 engine: Engine | None = None) -> None:
        self.config = config = SimConfig() if config is None else config
        _check_supported(config)
        self.model = get_model(config.model)
        self.template = decoder_template(self.model)
        preset = get_hardware(config.hardware)
        spec = preset.spec
        if config.memory.npu_mem is not None:
            spec = dataclasses.replace(spec, memory_bytes=int(config.memory.npu_mem * GIB))
        self.engine = engine if engine is not None else get_engine_class(preset.engine)(spec)
        self.memory_bytes = int(self.engine.spec.memory_bytes)
        if trace is None:
            trace = load_trace(config.dataset) if config.dataset else default_trace()
        self.trace = trace
        self.kv_cache = KVCacheManager(self._num_kv_blocks(), config.scheduler.block_size)
        self.scheduler = Scheduler(config.scheduler, self.kv_cache,
                                   self.model.kv_bytes_per_token())
        for i in range(len(trace)):
            self.scheduler.add(i, float(trace.arrival_at[i]), int(trace.num_prompt_tokens[i]),
                               int(trace.num_output_tokens[i]))
        self.now = 0.0
        self.op_names = self.template.op_names
        self._recorder = Recorder(self.op_names)
        self._wall = dict.fromkeys(COMPONENTS, 0.0)
        self.last_plan = None

    def _num_kv_blocks(self) -> int:
        weights = self.model.weight_bytes()
        reserve = self.config.memory.activation_reserve * self.memory_bytes
        free = self.memory_bytes - weights - reserve
        block_bytes = self.config.scheduler.block_size * self.model.kv_bytes_per_token()
        if free < block_bytes:
            raise ValueError(
                f"model {self.model.name!r} does not fit: its weights need "
                f"{weights / GIB:.2f} GiB and the activation reserve "
                f"{reserve / GIB:.2f} GiB, leaving {max(free, 0) / GIB:.2f} GiB of "
                f"{self.memory_bytes / GIB:.2f} GiB for the KV cache, less than one block "
                f"({block_bytes / 2**20:.2f} MiB); raise npu_mem or pick a smaller model")
        return int(free // block_bytes)

    # ------------------------------------------------------------------ state
    @property
    def is_finished(self) -> bool:
        return not self.scheduler.has_unfinished

    @property
    def num_iterations(self) -> int:
        return self._recorder.num_iterations

    def attrs(self) -> dict[str, object]:
        """Dataset attributes: how the result was made."""
        return {"config": self.config.to_json(), "seed": self.config.seed,
                "llmsim_nb_version": __version__, "model": self.model.name,
                "hardware": self.config.hardware, "engine": self.engine.name,
                "trace_source": getattr(self.trace, "source", ""),
                "num_kv_blocks": self.kv_cache.num_blocks,
                "kv_block_bytes": self.config.scheduler.block_size
                * self.model.kv_bytes_per_token(),
                "time_units": "s"}

    # ------------------------------------------------------------------- step
    def _advance(self) -> IterationRecord:
        """Simulate one iteration and record it (the body of step and run)."""
        if self.is_finished:
            raise SimulationFinished(f"all {len(self.trace)} requests have finished")
        t0 = time.perf_counter()
        sched = self.scheduler
        plan = sched.step(self.now)
        while plan.is_empty:
            sched.update(plan, self.now)
            next_at = sched.next_event_at()
            if next_at is None:
                if not sched.has_unfinished:  # zero-work requests finished on arrival
                    self._wall["scheduler"] += time.perf_counter() - t0
                    raise SimulationFinished(f"all {len(self.trace)} requests have finished")
                raise RuntimeError("scheduler made no progress with requests left; "
                                   "this is a bug, please report it with the config")
            self.now = max(self.now, next_at)
            plan = sched.step(self.now)
        t1 = time.perf_counter()
        op_latency = []
        compute = 0.0
        for block in self.template.instantiate(plan.batch):
            if block.ops:
                timing = self.engine.simulate(block)
                op_latency.append(timing.op_latency * block.repeat)
                compute += timing.total_latency
            else:
                op_latency.append(np.zeros(self._num_ops(block.name)))
        t2 = time.perf_counter()
        transfer = self._host_transfer_latency(plan.evicted_bytes, plan.reloaded_bytes)
        t_start, t_end = self.now, self.now + compute + transfer
        finished = sched.update(plan, t_end)
        self.now = t_end
        record = IterationRecord(plan, t_start, t_end, compute, transfer,
                                 np.concatenate(op_latency),
                                 tuple(s.request_id for s in finished))
        self._recorder.append(record)
        self.last_plan = plan
        t3 = time.perf_counter()
        self._wall["scheduler"] += (t1 - t0) + (t3 - t2)
        self._wall["execution_engine"] += t2 - t1
        return record

    def _num_ops(self, block_name: str) -> int:
        t = self.template
        return len({"embedding": t.embedding, "decoder_block": t.block,
                    "lm_head": t.head}[block_name])

    def _host_transfer_latency(self, evicted_bytes: float, reloaded_bytes: float) -> float:
        """KV moved over the host link, serialised before the iteration computes.

        Each direction that moves data pays the link latency once plus its
        bytes over the bandwidth (one DMA stream per direction).
        """
        mem = self.config.memory
        latency = 0.0
        for moved in (evicted_bytes, reloaded_bytes):
            if moved:
                latency += mem.host_latency + moved / mem.host_bandwidth
        return latency

    def step(self) -> xr.Dataset:
        """Simulate the next iteration; return its Dataset (dims iteration, op, request).

        Raises
        ------
        SimulationFinished
            When every request has finished.
        """
        record = self._advance()
        return iteration_dataset(record, self.op_names, self.attrs())

    def run(self, until: float | None = None, *,
            progress: Callable[[int], None] | None = None) -> xr.Dataset:
        """Repeat :meth:`step` and return the Dataset of the whole run so far.

        Parameters
        ----------
        until : float, optional
            Stop once the simulated clock reaches this time (seconds). None runs
            until every request has finished.
        progress : callable, optional
            Called with the number of requests finished after each iteration.
        """
        while not self.is_finished and (until is None or self.now < until):
            try:
                self._advance()
            except SimulationFinished:
                break
            if progress is not None:
                progress(self.scheduler.num_finished)
        return self.results()

    def results(self) -> xr.Dataset:
        """The Dataset of every iteration simulated so far and every request."""
        data = self._recorder.iteration_variables()
        data.update(request_variables(self.scheduler.requests))
        data["wall_time"] = _var("wall_time", ("component",),
                                 np.array([self._wall[c] for c in COMPONENTS]))
        coords = {"iteration": np.arange(self.num_iterations), "op": list(self.op_names),
                  "request": np.arange(len(self.scheduler.requests)),
                  "component": list(COMPONENTS)}
        return xr.Dataset(data, coords=coords, attrs=self.attrs())
