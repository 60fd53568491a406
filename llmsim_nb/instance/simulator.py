"""Simulator: the iteration loop. ``run()`` is repeated ``step()``.

One iteration flows one way::

    trace -> Scheduler.step(now)            -> IterationPlan
          -> ExecutionStack.simulate(batch) -> IterationTrace   (engine times each
             micro-batch's operators on one device's shard; one decoder layer
             is timed and replicated: "compile one block and replicate it")
          -> GraphConverter.build(trace)    -> ExecutionGraph   (TP collectives,
             PP send/recv, KV store/load to host)
          -> Network.run(graph)             -> GraphSchedule    (makespan = latency)
          -> Scheduler.update(plan, now + latency) -> results

When nothing is schedulable the clock jumps to the next arrival; idle time is
not an iteration. The clock never goes back.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable

import numpy as np
import xarray as xr

from .._version import __version__
from ..config import GIB, SimConfig
from ..engines.base import Engine, get_engine_class
from ..engines.hardware import get_hardware
from ..engines.npu_detailed import DetailedNPUEngine  # noqa: F401  registers "npu-detailed"
from ..engines.reuse import ReuseCache, ReuseEngine, cache_path
from ..engines.stack import ExecutionStack
from ..graph.builder import GraphConverter
from ..graph.nodes import CollectiveType, NodeType
from ..system.memory_plan import MemoryPlan
from ..models.catalog import get_model
from ..models.template import decoder_template
from ..network import Network, default_topology, load_topology
from ..network.interconnect import interconnect_topology
from ..parallel.layout import ParallelLayout
from ..system.pim import PIMSystem
from ..results.dataset import (COMPONENTS, IterationRecord, Recorder, _var, iteration_dataset,
                      request_variables)
from ..scheduler.kv_cache import KVCacheManager
from ..scheduler.scheduler import Scheduler
from ..workload import Trace, default_trace, load_trace


class SimulationFinished(Exception):
    """Raised by :meth:`Simulator.step` when every request has finished."""


def _topology(config: SimConfig, num_devices: int | None = None):
    """The network file or preset; else the hardware preset's interconnect (GPUs:
    NVLink / PCIe, :mod:`llmsim_nb.network.interconnect`); else the original's
    default fully connected one. ``num_devices``: devices the system needs
    (NPUs plus a PIM pool's devices; default ``npu_num``)."""
    system = config.system
    expected = system.npu_num if num_devices is None else num_devices
    link = get_hardware(config.hardware).interconnect
    if system.network is not None:
        topology = load_topology(system.network)
    elif link:
        topology = interconnect_topology(link, system.npu_num)
    elif expected != system.npu_num:  # a PIM pool beside the NPUs: one flat network
        topology = default_topology(expected, 1)
    elif system.npu_group & (system.npu_group - 1) == 0:
        topology = default_topology(system.npu_num, system.npu_group)
    else:  # the original's default needs a power-of-two group count
        topology = default_topology(system.npu_num, 1)
    if topology.num_devices != expected:
        pool = (f" + {expected - system.npu_num} pooled PIM devices"
                if expected != system.npu_num else "")
        raise ValueError(f"network {topology.name or system.network!r} has "
                         f"{topology.num_devices} devices but npu_num={system.npu_num}{pool} "
                         f"(its dimension sizes {list(topology.sizes)} multiply to "
                         f"{topology.num_devices})")
    return topology


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
    pim_mapping : callable, optional
        With ``pim_type`` local or pool, an operator mapping policy
        (``policy(op) -> bool array``, True = PIM; :mod:`llmsim_nb.engines.mapping`)
        instead of ``config.system.pim_mapping``.

    Attributes
    ----------
    now : float
        Simulated clock, seconds.
    scheduler : Scheduler
    engine : Engine
    kv_cache : KVCacheManager
    last_graph, last_schedule : ExecutionGraph, GraphSchedule or None
        The last iteration's execution graph and its schedule. ``step()``
        always builds them; ``run()`` leaves None where the graph is a chain
        it adds up without building (:meth:`_is_chain`).
    """

    def __init__(self, config: SimConfig | None = None, trace: Trace | None = None, *,
                 engine: Engine | None = None, pim_mapping=None) -> None:
        self.config = config = SimConfig() if config is None else config
        self.model = get_model(config.model)
        self.template = decoder_template(self.model)
        self.layout = ParallelLayout.from_config(config.system, self.model.num_layers,
                                                 self.model.num_heads)
        preset = get_hardware(config.hardware)
        spec = preset.spec
        if config.memory.npu_mem is not None:
            spec = dataclasses.replace(spec, memory_bytes=int(config.memory.npu_mem * GIB))
        if engine is None:
            engine_name = preset.engine
            if config.npu_mode == "detailed":
                if engine_name != "npu":
                    raise ValueError(f"npu_mode='detailed' needs an NPU hardware preset; "
                                     f"{config.hardware!r} uses the {engine_name!r} engine")
                engine_name = "npu-detailed"
            engine = get_engine_class(engine_name)(spec)
        if config.reuse:
            engine = ReuseEngine(engine, ReuseCache(config.reuse_cache_size))
        self.engine = engine
        self.pim = (PIMSystem.from_config(config, self.engine, pim_mapping)
                    if config.system.pim_type != "none" else None)
        if self.pim is None:
            self.stack = ExecutionStack(self.engine, self.template, self.layout)
            self.converter = GraphConverter(self.layout, self.stack.sharded)
        else:
            self.stack = self.pim.stack(self.engine, self.template, self.layout, config)
            self.converter = self.pim.converter(self.layout, self.stack.sharded)
        self.topology = _topology(config, self.pim.num_devices if self.pim else None)
        collective = config.system.collective
        self.network = Network(self.topology, congestion=config.system.congestion,
                               algorithms=None if collective == "auto" else collective,
                               host_bandwidth=config.memory.host_bandwidth,
                               host_latency=config.memory.host_latency)
        mem, sched = config.memory, config.scheduler
        self.memory = MemoryPlan.build(
            self.model, self.stack.sharded, self.layout, int(self.engine.spec.memory_bytes),
            mem.activation_reserve, gpu_memory_utilization=mem.gpu_memory_utilization,
            # vLLM profiles one forward of max_num_batched_tokens tokens whose
            # max_num_seqs sequences each sample one row of logits.
            activation_bytes=MemoryPlan.activation_peak_bytes(
                self.stack.sharded, sched.max_num_batched_tokens, self.model.dtype_bytes,
                min(sched.max_batch or sched.max_num_batched_tokens,
                    sched.max_num_batched_tokens))
            if mem.gpu_memory_utilization is not None else 0,
            num_kv_blocks=mem.num_kv_blocks)
        if trace is None:
            trace = load_trace(config.dataset) if config.dataset else default_trace()
        self.trace = trace
        block_size = config.scheduler.block_size
        self.kv_cache = KVCacheManager(
            self.pim.num_kv_blocks(self.memory, block_size, self.model.name,
                                   int((trace.num_prompt_tokens + trace.num_output_tokens)
                                       .max(initial=0)))
            if self.pim is not None else self.memory.num_kv_blocks(block_size, self.model.name),
            block_size)
        self._check_lengths(trace)
        self.scheduler = Scheduler(config.scheduler, self.kv_cache,
                                   self.model.kv_bytes_per_token())
        for i in range(len(trace)):
            self.scheduler.add(i, float(trace.arrival_at[i]), int(trace.num_prompt_tokens[i]),
                               int(trace.num_output_tokens[i]))
        self.now = 0.0
        self.op_names = self.template.op_names
        self._recorder = Recorder(self.op_names)
        self._wall = dict.fromkeys(COMPONENTS, 0.0)
        self._device_busy = np.zeros(self.topology.num_devices)
        self._pim_busy = np.zeros(self.topology.num_devices)
        self._link_bytes: dict[str, float] = {}
        self.last_graph = None
        self.last_schedule = None
        self._cache_loaded = False
        self._saved_misses = 0
        self._kv_share = self.converter.kv_share(0)

    def _check_lengths(self, trace: Trace) -> None:
        """Refuse requests longer than the model serves, before anything runs."""
        given = self.config.scheduler.max_model_len
        limit = given or self.model.max_seq_len
        total = trace.num_prompt_tokens + trace.num_output_tokens
        over = np.flatnonzero(total > limit)
        if len(over):
            i = int(over[0])
            source = "as given" if given else f"{self.model.name}'s context"
            raise ValueError(
                f"{len(over)} of {len(trace)} requests are longer than max_model_len={limit} "
                f"tokens ({source}); the "
                f"first is request {i} with {int(trace.num_prompt_tokens[i])} prompt + "
                f"{int(trace.num_output_tokens[i])} output tokens. Filter the trace, or pass "
                f"max_model_len >= {int(total.max())} to serve them beyond the model's "
                f"context")

    # ------------------------------------------------------------------ state
    @property
    def reuse_cache(self) -> ReuseCache | None:
        """The engine's reuse cache (None with ``reuse=False``)."""
        return self.engine.cache if isinstance(self.engine, ReuseEngine) else None

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
                "tensor_parallel": self.layout.tp, "pipeline_parallel": self.layout.pp,
                "attention_placement": self.layout.attention,
                "network": self.topology.name,
                "kv_block_bytes": self.config.scheduler.block_size
                * self.model.kv_bytes_per_token(),
                "time_units": "s"}

    # ------------------------------------------------------------------- step
    def _advance(self, with_graph: bool = True) -> IterationRecord:
        """Simulate one iteration and record it (the body of step and run).

        When the execution graph is a chain (:meth:`_is_chain`: KV transfers,
        then embedding, every layer, the head, with tensor-parallel collectives
        between them), ``run()`` skips building it and adds the same durations
        in the same order as ``Network.run`` would (:meth:`_chain`); the result
        is bit-identical (tested). ``step()`` always builds the graph, for its
        Gantt chart.
        """
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
        cache = self.reuse_cache
        hits, misses = (cache.hits, cache.misses) if cache is not None else (0, 0)
        trace = self.stack.simulate(plan.batch)
        t2 = time.perf_counter()
        if with_graph or not self._is_chain(trace):
            graph = self.converter.build(trace, plan.evicted_bytes, plan.reloaded_bytes)
            t3 = time.perf_counter()
            schedule = self.network.run(graph)
            makespan, transfer = schedule.makespan, self._host_transfer_latency(graph, schedule)
            self._accumulate(graph, schedule)
            self.last_graph, self.last_schedule = graph, schedule
        else:
            t3 = t2
            makespan, transfer = self._chain(trace, plan)
            self.last_graph = self.last_schedule = None
        t4 = time.perf_counter()
        t_start, t_end = self.now, self.now + makespan
        finished = sched.update(plan, t_end)
        self.now = t_end
        record = IterationRecord(plan, t_start, t_end, trace.compute_latency, transfer,
                                 trace.op_latency, tuple(s.request_id for s in finished),
                                 cache.hits - hits if cache is not None else 0,
                                 cache.misses - misses if cache is not None else 0)
        self._recorder.append(record)
        t5 = time.perf_counter()
        self._wall["scheduler"] += (t1 - t0) + (t5 - t4)
        self._wall["execution_engine"] += t2 - t1
        self._wall["graph_converter"] += t3 - t2
        self._wall["network"] += t4 - t3
        return record

    def _is_chain(self, trace) -> bool:
        """Whether the iteration's graph is one chain of nodes in a row.

        It is on one pipeline stage running one micro-batch, without PIM units
        (they overlap the NPU), when every tensor-parallel rank does the same
        work (heads placement: one class, one representative) and, with more
        than one rank, without congestion (whose flows the chain does not model).
        One device with congestion is a chain too: its only transfers, the KV
        store and load, use the host link's two directions and never share.
        """
        layout = self.layout
        if self.pim is not None or layout.pp > 1 or len(trace.micro_batches) > 1:
            return False
        return layout.tp == 1 or (layout.attention == "heads"
                                  and not self.config.system.congestion)

    def _chain(self, trace, plan) -> tuple[float, float]:
        """Makespan and host-transfer time of a chain graph (:meth:`_is_chain`).

        The same arithmetic, in the same order, as ``Network.run`` on the graph
        ``GraphConverter.build`` makes: the representative rank's KV store and
        load run at once from time 0; the embedding starts when both are done;
        then the embedding's all-reduce, every layer's segments and all-reduces,
        the head and the logits' all-gather, one after another. Busy time and
        link bytes are accounted as ``Network.run`` and :meth:`_accumulate` do.
        """
        layout, network, conv = self.layout, self.network, self.converter
        tp = layout.tp
        transfer, host_bytes = 0.0, 0.0
        share = self._kv_share
        for moved in (plan.evicted_bytes, plan.reloaded_bytes):
            if moved:
                size = moved * share
                transfer = max(transfer, network.host_time(size))
                host_bytes += size * tp
        links: dict[str, float] = {"host": host_bytes} if host_bytes else {}
        group = range(tp)  # stage 0's devices

        def collective(kind, size) -> float:
            cost = network.collectives.cost(kind, float(size), tuple(group))
            for link, moved in cost.link_bytes.items():
                links[link] = links.get(link, 0.0) + moved
            return cost.duration

        mb = trace.micro_batches[0]
        reduce_size = mb.batch.num_tokens * conv.hidden * conv.dtype  # every all-reduce's
        t = transfer + mb.embedding_latency
        busy = 0.0 + mb.embedding_latency
        if tp > 1:
            t += collective(CollectiveType.ALL_REDUCE, reduce_size)
        # Segment durations as the converter takes them: differences of the
        # running sum of one layer's op latencies (from 0.0).
        cum = [0.0, *np.cumsum(mb.layer_op_latency).tolist()]
        segments = [(cum[b] - cum[a], reduce_after) for a, b, reduce_after in conv.segments]
        if tp == 1:  # one segment, no collectives
            duration = segments[0][0]
            for _ in range(layout.stage_layers[0]):
                t += duration
                busy += duration
        else:
            for _ in range(layout.stage_layers[0]):
                for duration, reduce_after in segments:
                    t += duration
                    busy += duration
                    if reduce_after:
                        t += collective(CollectiveType.ALL_REDUCE, reduce_size)
        if mb.has_head:
            t += mb.head_latency
            busy += mb.head_latency
            if tp > 1:
                rows = int(mb.batch.num_logit_tokens.sum())
                t += collective(CollectiveType.ALL_GATHER, rows * conv.vocab * conv.dtype)
        if tp == 1:
            self._device_busy[0] += busy
        else:
            self._device_busy[:tp] += busy
        for link, moved in links.items():
            self._link_bytes[link] = self._link_bytes.get(link, 0.0) + moved
        return t, transfer

    @staticmethod
    def _host_transfer_latency(graph, schedule) -> float:
        """Time device 0 spends storing / loading KV over its host link (both
        directions run at once, so this is the longer of the two)."""
        longest = 0.0
        for node in graph.nodes:
            if node.type in (NodeType.MEM_STORE, NodeType.MEM_LOAD) and node.device == 0:
                longest = max(longest, schedule.end_at[node.id] - schedule.start_at[node.id])
        return longest

    def _accumulate(self, graph, schedule) -> None:
        """Busy time of every device (a representative's for its whole class)."""
        for device, busy in schedule.device_busy.items():
            self._device_busy[list(graph.classes.get(device, (device,)))] += busy
        for (device, _unit), busy in schedule.unit_busy.items():  # PIM units
            self._pim_busy[list(graph.classes.get(device, (device,)))] += busy
        for link, moved in schedule.link_bytes.items():
            self._link_bytes[link] = self._link_bytes.get(link, 0.0) + moved

    def step(self) -> xr.Dataset:
        """Simulate the next iteration; return its Dataset (dims iteration, op, request).

        Raises
        ------
        SimulationFinished
            When every request has finished.
        """
        record = self._advance()
        return iteration_dataset(record, self.op_names, self.attrs(), self.last_graph,
                                 self.last_schedule)

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

        With ``fast_run`` the reuse cache is read from its file
        (:func:`~llmsim_nb.engines.reuse.cache_path`) before the first run and
        written back after a run that simulated something new, so a later
        process (a notebook restart, the next sweep point, the next CLI run)
        does not simulate again what this one did. An unreadable or outdated
        file is replaced, and a file that cannot be written is skipped, each
        with a warning: the cache never costs a result.
        """
        path = self._fast_run_path()
        cache = self.reuse_cache
        if path is not None and not self._cache_loaded:
            self._cache_loaded = True
            if path.exists():
                try:
                    cache.load(path, self.engine.inner)
                except ValueError as exc:  # written by another version: start afresh
                    warnings.warn(f"{exc}; starting a new cache there", stacklevel=2)
            self._saved_misses = cache.misses
        while not self.is_finished and (until is None or self.now < until):
            try:
                self._advance(with_graph=False)
            except SimulationFinished:
                break
            if progress is not None:
                progress(self.scheduler.num_finished)
        if path is not None and cache.misses > self._saved_misses:
            try:
                cache.save(path, self.engine.inner)
                self._saved_misses = cache.misses
            except OSError as exc:
                warnings.warn(f"the reuse cache was not saved to {str(path)!r}: {exc}",
                              stacklevel=2)
        return self.results()

    def _fast_run_path(self):
        if not self.config.fast_run or self.reuse_cache is None:
            return None
        return cache_path(self.engine.inner)

    def results(self) -> xr.Dataset:
        """The Dataset of every iteration simulated so far and every request."""
        data = self._recorder.iteration_variables()
        data.update(request_variables(self.scheduler.table))
        data["wall_time"] = _var("wall_time", ("component",),
                                 np.array([self._wall[c] for c in COMPONENTS]))
        data["device_busy_time"] = _var("device_busy_time", ("device",),
                                        self._device_busy.copy())
        if self.pim is not None:
            data["pim_busy_time"] = _var("pim_busy_time", ("device",), self._pim_busy.copy())
        links = sorted(self._link_bytes)
        data["link_bytes"] = _var("link_bytes", ("link",),
                                  np.array([self._link_bytes[k] for k in links], dtype=float))
        coords = {"iteration": np.arange(self.num_iterations), "op": list(self.op_names),
                  "request": np.arange(len(self.scheduler.table)),
                  "component": list(COMPONENTS), "device": np.arange(len(self._device_busy)),
                  "link": np.array(links, dtype=str)}
        return xr.Dataset(data, coords=coords, attrs=self.attrs())
