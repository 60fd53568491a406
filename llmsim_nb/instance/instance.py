"""Instance: one serving instance's iteration loop. ``run()`` is repeated ``step()``.

One iteration flows one way::

    Scheduler.step(now)            -> IterationPlan
    ExecutionStack.simulate(batch) -> IterationTrace   (the engine times each
                                      micro-batch's operators on one device's
                                      shard; one decoder layer is timed and
                                      replicated: "compile one block and
                                      replicate it")
    GraphConverter.build(trace)    -> ExecutionGraph   (TP collectives, PP
                                      send/recv, KV store/load to host)
    Network.run(graph)             -> GraphSchedule    (makespan = latency)
    Scheduler.update(plan, now + latency)

Requests come in through :meth:`Instance.submit` (a router, a notebook) or
all at once from a trace (:class:`~llmsim_nb.instance.simulator.Simulator`).
:attr:`Instance.next_event_at` says when the instance next has something to
do, so a cluster can advance the instance whose next event is earliest.

When nothing is schedulable the clock jumps to the next submitted request's
arrival; idle time is not an iteration. The clock never goes back, and it
always moves: an op timed at NaN, inf or < 0 s, or an iteration that takes
no time, is a ``LatencyError`` naming the op and engine (:mod:`.checks`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..engines.reuse import ReuseCache, ReuseEngine
from ..engines.stack import LatencyError
from ..results.dataset import COMPONENTS, ArrayResults, IterationRecord, iteration_dataset
from ..system.builder import InstanceParts
from ..workload.request import Request
from .chain import ChainShortcut
from .data_parallel_chain import DataParallelChain
from .checks import (STALL_LIMIT, bad_makespan, check_lengths, check_parts, check_run,
                     stuck_error)
from .fast_run import FastRunFile
from .run_dataset import instance_attrs, make_recorder, result_arrays, run_dataset
from .submission import submission_time
from .token_times import TokenTimes
from .usage import Usage, host_transfer_latency

if TYPE_CHECKING:
    import xarray as xr


class SimulationFinished(Exception):
    """Raised by :meth:`Instance.step` when every submitted request has finished."""


class Instance:
    """One serving instance, stepped one iteration at a time.

    Parameters
    ----------
    parts : InstanceParts
        What :func:`~llmsim_nb.system.builder.build_instance` assembled. The
        instance owns them from here on (their scheduler and KV cache hold
        its state).

    Attributes
    ----------
    now : float
        The instance's clock, s.
    parts : InstanceParts
    config, model, template, layout, engine, pim, stack, converter, topology,
    network, memory, kv_cache, scheduler
        The parts, by name.
    last_graph, last_schedule : ExecutionGraph, GraphSchedule or None
        The last iteration's graph and schedule. :meth:`step` always builds them;
        :meth:`run` leaves None where the graph is a chain it adds up (:mod:`.chain`).
    request_ids : list of int
        The caller's id of each submitted request (``Request.request_id``), by
        the instance's own request index (the ``request`` dim of results).

    Examples
    --------
    >>> from llmsim_nb.system import build_instance
    >>> from llmsim_nb.workload import Request
    >>> inst = Instance(build_instance(SimConfig.from_flags(model_name="gpt2")))
    >>> inst.submit(Request(7, arrival_at=0.5, num_prompt_tokens=100, num_output_tokens=4))
    0
    >>> inst.next_event_at
    0.5
    >>> ds = inst.run()          # until every submitted request has finished
    """

    def __init__(self, parts: InstanceParts) -> None:
        check_parts(parts)
        self.parts = parts
        self.config = parts.config
        self.model = parts.model
        self.template = parts.template
        self.layout = parts.layout
        self.engine = parts.engine
        self.pim = parts.pim
        self.stack = parts.stack
        self.converter = parts.converter
        self.topology = parts.topology
        self.network = parts.network
        self.memory = parts.memory
        self.kv_cache = parts.kv_cache
        self.scheduler = parts.scheduler
        self.now = 0.0
        self.op_names = self.template.op_names
        self.request_ids: list[int] = []
        self.last_graph = self.last_schedule = None
        self.last_finished: tuple[int, ...] = ()
        self._trace_source = ""
        self._recorder = make_recorder(self)  # meters energy with power on
        self._wall = dict.fromkeys(COMPONENTS, 0.0)
        self._usage = Usage(self.topology.num_devices)
        self._token_times = TokenTimes()
        chain = DataParallelChain if self.layout.attention == "data" else ChainShortcut
        self._chain = chain(self.layout, self.network, self.converter,
                            has_pim=self.pim is not None, congestion=self.config.system.congestion)
        self._fast_run = FastRunFile(self.engine, self.config.fast_run)
        self._failed: Exception | None = None  # an iteration that could not be timed

    # -------------------------------------------------------------- requests
    def submit(self, request: Request, at: float | None = None, **transfer) -> int:
        """Hand a request to this instance; return its index in the instance.

        Parameters
        ----------
        request : Request
        at : float, optional
            When the request reaches the instance, s (default: its
            ``arrival_at``; later when a router or a KV transfer delayed it).
            It must not be before the previous submitted request's; it may be
            before :attr:`now` (the request then waits for the running
            iteration to end, as on a real server).
        **transfer
            Prefill/decode disaggregation (``scheduling='vllm-v1'`` only):
            ``num_external_tokens``, ``external_latency``, ``hold_kv``
            (:mod:`llmsim_nb.scheduler.kv_transfer`).

        Raises
        ------
        ValueError
            The request is longer than ``max_model_len``, could never fit in
            the KV cache, or arrives before the previous one.
        """
        arrival = submission_time(self, request, at, transfer)
        index = len(self.scheduler.table)
        self.scheduler.add(index, arrival, request.num_prompt_tokens, request.num_output_tokens,
                           request.content, request.priority, **transfer)
        self.request_ids.append(request.request_id)
        return index

    def _submit_arrays(self, arrival_at, num_prompt_tokens, num_output_tokens,
                       content=None, priority=None) -> None:
        """Submit many requests given as arrays (a trace, its ``PromptContent``
        and priority column, or None), ids 0, 1, 2, ..."""
        add = self.scheduler.add
        start = len(self.scheduler.table)
        priorities = [0] * len(arrival_at) if priority is None else priority.tolist()
        for i, (t, p, o) in enumerate(zip(arrival_at.tolist(), num_prompt_tokens.tolist(),
                                          num_output_tokens.tolist())):
            add(start + i, t, p, o, None if content is None else content.row(i), priorities[i])
        self.request_ids.extend(range(start, start + len(arrival_at)))

    def check_lengths(self, num_prompt_tokens, num_output_tokens, ids=None) -> None:
        """Refuse requests longer than the model serves (``max_model_len``);
        the ``ValueError`` names how many and the first of them."""
        check_lengths(self.config.scheduler.max_model_len, self.model, num_prompt_tokens,
                      num_output_tokens, ids)

    # ------------------------------------------------------------------ state
    @property
    def reuse_cache(self) -> ReuseCache | None:
        """The engine's reuse cache (None with ``reuse=False``)."""
        return self.engine.cache if isinstance(self.engine, ReuseEngine) else None

    @property
    def is_finished(self) -> bool:
        """Whether every submitted request has finished."""
        return not self.scheduler.has_unfinished

    @property
    def device_busy_time(self) -> np.ndarray:  # results().device_busy_time, without a Dataset
        return self._usage.device_busy.copy()

    @property
    def num_iterations(self) -> int:
        """Iterations simulated so far."""
        return self._recorder.num_iterations

    @property
    def next_event_at(self) -> float | None:
        """When the instance next has work, s: :attr:`now` while requests are
        running, waiting, evicted or already schedulable; else when the next
        submitted request becomes schedulable (its arrival plus
        ``batch_delay``); None when every submitted request has finished."""
        sched = self.scheduler
        if not sched.has_unfinished:  # is_finished, without a second property
            return None
        if sched.num_active:
            return self.now
        next_at = sched.next_event_at()
        return self.now if next_at is None else max(self.now, next_at)

    def attrs(self) -> dict[str, object]:
        """Dataset attributes: how the result was made (:func:`.run_dataset.instance_attrs`)."""
        return instance_attrs(self)

    # ------------------------------------------------------------------- step
    def _advance(self, with_graph: bool = True, until: float | None = None
                 ) -> IterationRecord | None:
        """Simulate one iteration and record it (the body of step and run).

        With ``with_graph=False`` a chain graph (:mod:`.chain`) is added up
        without being built; the result is bit-identical (tested). None when
        nothing can start before ``until`` or before a transfer's end is known.
        """
        if self._failed is not None:  # the plan it could not time is still open
            raise type(self._failed)(f"the simulation stopped at an earlier error: {self._failed}")
        if self.is_finished:
            raise SimulationFinished(f"all {len(self.scheduler.table)} requests have finished")
        t0 = time.perf_counter()
        sched = self.scheduler
        plan = sched.step(self.now)
        stuck = 0  # rounds of this loop with the clock not moving
        while plan.is_empty:
            sched.update(plan, self.now)
            next_at = sched.next_event_at()
            if next_at is None and getattr(sched, "transfers", None) is not None \
                    and sched.transfers.num_unreleased:
                return None  # its held KV's transfers end at times not known yet
            if next_at is None:
                if not sched.has_unfinished:  # zero-work requests finished on arrival
                    self._wall["scheduler"] += time.perf_counter() - t0
                    raise SimulationFinished(
                        f"all {len(self.scheduler.table)} requests have finished")
                raise RuntimeError("scheduler made no progress with requests left; "
                                   "this is a bug, please report it with the config")
            if until is not None and next_at >= until:
                return None  # the next event is past `until`: no iteration starts
            stuck += next_at <= self.now
            if stuck >= STALL_LIMIT:
                raise stuck_error(stuck, self.now, sched.num_active)
            self.now = max(self.now, next_at)
            plan = sched.step(self.now)
        t1 = time.perf_counter()
        cache = self.reuse_cache
        hits, misses = (cache.hits, cache.misses) if cache is not None else (0, 0)
        serving = self.parts.serving_stack
        try:
            trace = self.stack.simulate(serving.device_batch(plan.batch))
        except LatencyError as exc:
            self._failed = exc
            raise
        t2 = time.perf_counter()
        if with_graph or not self._chain.applies(trace):
            graph = self.converter.build(trace, plan.evicted_bytes, plan.reloaded_bytes)
            t3 = time.perf_counter()
            schedule = self.network.run(graph)
            makespan, transfer = schedule.makespan, host_transfer_latency(graph, schedule)
            self._usage.add_schedule(graph, schedule)
            self.last_graph, self.last_schedule = graph, schedule
        else:
            t3 = t2
            makespan, transfer = self._chain.run(trace, plan, self._usage)
            self.last_graph = self.last_schedule = None
        t4 = time.perf_counter()
        makespan = serving.step(makespan, plan.batch, self.stack)
        t_start, t_end = self.now, self.now + makespan
        if not t_start < t_end < math.inf:  # NaN, inf, <= 0 or lost in rounding
            self._failed = bad_makespan(makespan, t_start, self.num_iterations, plan,
                                        self.engine.name, trace.compute_latency)
            raise self._failed
        finished = serving.finish(sched.table, sched.update(plan, t_end))
        self._token_times.record(sched.table, plan, t_end)
        self.now = t_end
        stack = self.stack
        record = IterationRecord(plan, t_start, t_end, trace.compute_latency, transfer,
                                 trace.op_latency, tuple(s.request_id for s in finished),
                                 cache.hits - hits if cache is not None else 0,
                                 cache.misses - misses if cache is not None else 0,
                                 stack.iteration_expert_tokens, stack.iteration_rank_tokens,
                                 stack.iteration_dispatch_bytes)
        self._recorder.append(record)
        self.last_finished = record.finished  # scheduler indices (a cluster hands them on)
        t5 = time.perf_counter()
        self._wall["scheduler"] += (t1 - t0) + (t5 - t4)
        self._wall["execution_engine"] += t2 - t1
        self._wall["graph_converter"] += t3 - t2
        self._wall["network"] += t4 - t3
        return record

    def step(self, until: float | None = None) -> xr.Dataset | None:
        """Simulate the next iteration; return its Dataset (dims iteration, op,
        request, node); None if ``until`` is given and nothing can start
        before it (a cluster's next event comes first).

        Raises
        ------
        SimulationFinished
            When every submitted request has finished.
        LatencyError
            An op took NaN, inf or < 0 s, or the iteration no time; no step follows.
        """
        record = self._advance(until=until)
        return None if record is None else iteration_dataset(
            record, self.op_names, self.attrs(), self.last_graph, self.last_schedule)

    def run(self, until: float | None = None, *,
            progress: Callable[[int], None] | None = None) -> xr.Dataset:
        """Repeat :meth:`step` and return the Dataset of the whole run so far.

        With ``fast_run`` the reuse cache is read from its file before the
        first run and written back after a run that timed something new
        (:mod:`.fast_run`).

        Parameters
        ----------
        until : float, optional
            Stop once the clock reaches this time (s): no iteration starts at
            or after it (the last one may end after it). None (or inf) runs
            until every submitted request has finished. On return
            :attr:`now` is the end of the last iteration run; an instance
            idle until after ``until`` keeps its clock (it does not jump to
            ``until``: a request submitted later for an earlier time still
            starts at its own arrival).
        progress : callable, optional
            Called with the number of requests finished after each iteration.

        Raises
        ------
        TypeError, ValueError
            For a bad ``until`` or ``progress``; LatencyError as :meth:`step`.
        """
        self.advance(until, progress=progress)
        return self.results()

    def advance(self, until: float | None = None, *,
                progress: Callable[[int], None] | None = None) -> int:
        """:meth:`run` without building its Dataset; return the iterations run.

        For callers that want only some results (:meth:`result_arrays`, the
        CLI's summary) or will ask for them later: the same iterations, clock
        and fast-run cache handling as :meth:`run`.
        """
        until = check_run(until, progress)
        start = self.num_iterations
        self._fast_run.before_run()
        sched = self.scheduler
        while sched.has_unfinished and (until is None or self.now < until):
            # Is next_event_at >= until? It is `now` (< until) with requests active.
            if until is not None and not sched.num_active:
                next_at = sched.next_event_at()
                if next_at is not None and next_at >= until:
                    break  # idle until after `until`: do not jump the clock there
            try:
                if self._advance(with_graph=False, until=until) is None:
                    break
            except SimulationFinished:
                break
            if progress is not None:
                progress(sched.num_finished)
        self._fast_run.after_run()
        return self.num_iterations - start

    @property
    def token_times(self) -> TokenTimes:
        """Every inter-token gap recorded so far (read, do not record into it)."""
        return self._token_times

    def result_arrays(self, with_ops: bool = True, with_gaps: bool = True,
                      lazy: bool = False) -> ArrayResults:
        """The per-iteration and per-request values of :meth:`results` as plain
        arrays (``summarize`` takes them), without building a Dataset; see
        :func:`.run_dataset.result_arrays` for the options."""
        return result_arrays(self._recorder, self.scheduler.table, self._token_times,
                             self.attrs(), with_ops, with_gaps, lazy)

    def results(self) -> xr.Dataset:
        """The Dataset of every iteration simulated so far and every request."""
        return run_dataset(self._recorder, self.scheduler.table, self._usage, self._wall,
                           self._token_times.shared_gaps(), self.op_names, self.pim is not None,
                           self.attrs())


__all__ = ["Instance", "SimulationFinished"]
