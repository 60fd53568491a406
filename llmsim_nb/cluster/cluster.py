"""Cluster: serving instances behind a router, on one clock.

Each instance is an :class:`~llmsim_nb.instance.Instance` with its own
config. Requests submitted to the cluster wait for their arrival time; then
the router (:mod:`.router`) picks an instance from every instance's state as
of that time minus ``router_staleness`` (:mod:`.state_board`), and the request
is submitted to it at its arrival time.

One clock. :meth:`Cluster.step` handles the earliest event: if the next
request arrives no later than every instance's next iteration starts, it is
routed first; otherwise the instance whose next iteration starts earliest
(ties: the lowest index) runs one iteration. Routing therefore sees every
iteration that started before the arrival, and no instance runs an
iteration that starts after an arrival it might have been given. No clock
goes back: an instance's clock only moves forward, and arrivals are routed in
time order.

:meth:`Cluster.run` is repeated steps. Between two arrivals the instances do
not interact, so it runs each instance up to the next arrival in one call
(:meth:`Instance.advance` with ``until``: every iteration that starts before
it), which is the same sequence of iterations as stepping, without building
execution graphs.

Data-parallel replicas of one model behind a router are a cluster of equal
instances. With prefill and decode pools (:mod:`.disaggregation`) a request
is prefilled on one instance and decoded on another after its KV moved; the
hand-over to the decode router is an event at the prefill's end, delivered
in time order like an arrival. Instances then depend on each other's
iterations, so :meth:`Cluster.run` handles every event in order, one
iteration at a time (without execution graphs). An instance that finds
nothing to start before the next delivery waits for its own next event (a
prefill instance that can admit nothing until a transfer frees its held
blocks has none until the transfer's end is known).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

import numpy as np

from ..instance import Instance
from ..results.dataset import variable
from ..instance.instance import SimulationFinished
from ..scheduler.block_hasher import BlockHasher
from ..system import build_instance
from ..workload.request import Request
from .disaggregation import Disaggregation
from .next_events import NextEvents
from .results import cluster_dataset
from .router import get_router
from .spec import ClusterConfig
from .state_board import StateBoard
from .submission import check_fits, check_order

#: Stream of the cluster seed that drives the ``random`` router.
ROUTER_STREAM = 0x726F75  # "rou"


class Cluster:
    """Instances behind a router (see the module docstring).

    Parameters
    ----------
    config : ClusterConfig
        Every instance is built here, so a bad group fails before anything runs.
    router : str or callable, optional
        Overrides ``config.router`` (a registered name or ``f(request, states) -> index``),
        without ``config.router_params`` (they belong to the config's router).

    Attributes
    ----------
    instances : list of Instance
    names : list of str
        ``group-k`` per instance.
    request_instance : list of int
        Per request submitted to the cluster (in submission order), the
        instance it was routed to (-1 until routed).
    """

    def __init__(self, config: ClusterConfig, router=None) -> None:
        if not isinstance(config, ClusterConfig):
            raise ValueError(f"Cluster(config=...) needs a ClusterConfig, got "
                             f"{type(config).__name__}")
        self.config = config
        self.names = config.instance_names()
        self.instances: list[Instance] = []
        for name, sim_config in zip(self.names, config.instance_configs()):
            try:
                # Per-request API costs do not apply between disaggregated instances.
                self.instances.append(Instance(build_instance(
                    sim_config, request_overheads=not config.is_disaggregated)))
            except ValueError as exc:
                raise ValueError(f"instance {name!r}: {exc}") from None
        self.roles = config.instance_roles()
        if config.is_disaggregated:
            for name, inst in zip(self.names, self.instances):
                if not hasattr(inst.scheduler, "transfers"):
                    raise ValueError(f"instance {name!r}: prefill/decode disaggregation needs "
                                     f"scheduling='vllm-v1' (it schedules with "
                                     f"{inst.scheduler.config.policy!r})")
        rng = np.random.default_rng([config.seed, ROUTER_STREAM])
        choice = config.router if router is None else router
        params = config.router_params if router is None else {}
        self.router = get_router(choice, rng=rng, **params)
        self._board = StateBoard([inst.kv_cache.num_blocks for inst in self.instances])
        self._entry = [k for k, role in enumerate(self.roles) if role != "decode"]
        self.disaggregation = None
        if config.is_disaggregated:
            try:
                decode = get_router(config.decode_router, rng=rng,
                                    **config.decode_router_params)
            except ValueError as exc:
                raise ValueError(f"decode_router: {exc}") from None
            self.disaggregation = Disaggregation(self, decode, config.kv_link)
        self._pending: deque[tuple[int, Request]] = deque()  # (cluster index, request)
        self.requests: list[Request] = []
        self.request_instance: list[int] = []
        self.request_local: list[int] = []
        #: Per instance, the cluster index of each of its requests (by local index).
        self.local_requests: list[list[int]] = [[] for _ in self.instances]
        self.now = 0.0  # the time of the last event handled
        # Instances that tried and could start nothing: their own next event
        # (None: none until something is delivered to them).
        self._idle_until: dict[int, float | None] = {}
        # Every instance's next event while step() or advance() handles events
        # in time order (None otherwise; see .next_events).
        self._next: NextEvents | None = None

    # -------------------------------------------------------------- requests
    def submit(self, request: Request) -> int:
        """Hand a request to the cluster (routed at its arrival); return its index."""
        if not isinstance(request, Request):
            raise ValueError(f"Cluster.submit needs a Request, got {type(request).__name__}")
        self._check_order(request)
        check_fits(self.names, self.instances, self.roles, np.array([request.num_prompt_tokens]),
                   np.array([request.num_output_tokens]), np.array([request.request_id]))
        return self._add(request)

    def _check_order(self, request: Request) -> None:
        check_order(request, self.requests[-1] if self.requests else None,
                    self._board.observed_until, self.config.router_staleness)

    def _add(self, request: Request) -> int:
        index = len(self.requests)
        self.requests.append(request)
        self.request_instance.append(-1)
        self.request_local.append(-1)
        self._pending.append((index, request))
        return index

    def submit_trace(self, trace) -> None:
        """Submit every request of ``trace`` (a :class:`~llmsim_nb.workload.trace.Trace`)."""
        requests = list(trace)  # in arrival order (a Trace's invariant)
        if requests:
            self._check_order(requests[0])
        # Every instance checks the whole trace at once, before anything runs.
        check_fits(self.names, self.instances, self.roles, trace.num_prompt_tokens,
                   trace.num_output_tokens, np.arange(len(requests)))
        for request in requests:
            self._add(request)

    @property
    def is_finished(self) -> bool:
        """Every submitted request routed and finished."""
        return not self._pending and all(inst.is_finished for inst in self.instances)

    # ----------------------------------------------------------------- route
    def states(self, pool: list[int], request: Request, at: float, router=None) -> list:
        """The states of the instances in ``pool`` a router deciding at ``at`` sees."""
        view = self._board.view(pool, at - self.config.router_staleness)
        if not (router or self.router).uses_prefix_cache:
            return view.states()
        return view.states([self._cached_prefix(k, request) for k in pool])

    def choose(self, pool: list[int], request: Request, at: float, router=None) -> int:
        """The instance of ``pool`` that ``router`` (default: the cluster's)
        sends ``request`` to, deciding at ``at``."""
        router = router or self.router
        if router.uses_prefix_cache:
            return router.route(request, self.states(pool, request, at, router))
        return router.route_pool(request,
                                 self._board.view(pool, at - self.config.router_staleness))

    def submit_to(self, k: int, index: int, request: Request, at: float, **transfer) -> int:
        """Submit cluster request ``index`` (as ``request``) to instance ``k`` at ``at``."""
        local = self.instances[k].submit(request, at, **transfer)
        self.wake(k)
        self.local_requests[k].append(index)
        self._board.routed(k, at)
        return local

    def _cached_prefix(self, k: int, request: Request) -> int:
        """Prompt tokens of ``request`` in instance ``k``'s prefix cache now (the
        cache as it is, not as it was ``router_staleness`` ago)."""
        kv = self.instances[k].kv_cache
        if request.content is None or not getattr(kv, "enable_caching", False):
            return 0
        hasher = BlockHasher(request.content, 0, request.num_prompt_tokens, kv.block_size)
        return len(kv.find_cached_prefix(hasher, request.num_prompt_tokens)) * kv.block_size

    def _route(self) -> int:
        index, request = self._pending.popleft()
        at = request.arrival_at
        k = self.choose(self._entry, request, at)
        transfer = {}
        if self.disaggregation is not None:  # the prompt and first token only, KV kept
            transfer = {"hold_kv": True} if request.num_output_tokens > 1 else {}
            request = replace(request, num_output_tokens=min(request.num_output_tokens, 1))
        self.request_local[index] = self.submit_to(k, index, request, at, **transfer)
        self.request_instance[index] = k
        self.now = max(self.now, at)
        return k

    def wake(self, k: int) -> None:
        """Instance ``k`` got something (a request, a release time): it may
        have work again at its own clock."""
        self._idle_until.pop(k, None)
        if self._next is not None:
            self._next.refresh(k)

    def _record(self, k: int, ran: bool = True) -> None:
        """After instance ``k`` ran an iteration (``ran``), or only scheduled
        (admitted transfers) without one."""
        inst = self.instances[k]
        sched = inst.scheduler
        if not ran:  # nothing could start before the next delivery
            self._idle_until[k] = sched.next_event_at()
        else:
            self._idle_until.pop(k, None)
            self._board.record(k, inst.now, sched.num_waiting, sched.num_running,
                               sched.num_finished, inst.kv_cache.num_used_blocks)
        pd = self.disaggregation
        if pd is not None:
            if self.roles[k] == "prefill":
                if ran:
                    pd.prefilled(k)
            else:
                pd.decoded(k)

    def _until(self, at: float) -> float:
        """Where an instance whose next event is ``at`` must stop: after the
        iteration starting at ``at`` and before the next delivery (an
        instance that finds nothing to do at ``at`` must not run at a later
        time of its own before other instances' earlier events)."""
        until = math.nextafter(at, math.inf)
        delivery = self._next_delivery()
        return until if delivery is None else min(until, delivery)

    def _next_delivery(self) -> float | None:
        """When the next arrival or hand-over is due (None: none queued)."""
        pd = self.disaggregation
        times = [pd.next_at() if pd is not None else None,
                 self._pending[0][1].arrival_at if self._pending else None]
        return min((t for t in times if t is not None), default=None)

    def _deliver_due(self, at: float | None) -> bool:
        """Deliver the earliest arrival or hand-over due no later than ``at``
        (the earliest instance event; None: no instance has one). Hand-overs
        first at equal times (they were made before)."""
        pd = self.disaggregation
        handoff = pd.next_at() if pd is not None else None
        arrival = self._pending[0][1].arrival_at if self._pending else None
        if handoff is not None and (arrival is None or handoff <= arrival) and (
                at is None or handoff <= at):
            pd.deliver()
            self.now = max(self.now, handoff)
            return True
        if arrival is not None and (at is None or arrival <= at):
            self._route()
            return True
        return False

    def _next_instance(self, events: NextEvents) -> tuple[int | None, float | None]:
        """Deliver every arrival and hand-over due before the earliest
        instance event, then return that instance and its event time (None:
        no instance has an event and nothing is left to deliver)."""
        while True:
            k, at = events.earliest()
            if not self._deliver_due(at):
                return k, at

    # ------------------------------------------------------------------ step
    def step(self):
        """Handle events up to one instance iteration; return its Dataset
        (``Instance.step()``'s, with the ``instance`` it ran on in ``attrs``
        and as a variable).

        Raises
        ------
        SimulationFinished
            When every submitted request has finished.
        """
        events = self._next = NextEvents(self.instances, self._idle_until)
        try:
            while True:
                k, at = self._next_instance(events)
                if k is None:
                    raise SimulationFinished(f"all {len(self.requests)} requests have finished")
                ds = self.instances[k].step(until=self._until(at))
                self._record(k, ran=ds is not None)
                events.refresh(k)
                if ds is not None:
                    break
        finally:
            self._next = None
        self.now = max(self.now, self.instances[k].now)
        ds.attrs["instance"] = self.names[k]
        return ds.assign(iteration_instance=variable("iteration_instance", ("iteration",),
                                                     np.array([k], dtype=np.int64)))

    def advance(self) -> None:
        """Run until every submitted request has finished (the same iterations
        as repeated :meth:`step`, see the module docstring)."""
        if self.disaggregation is not None:
            self._advance_in_order()
            return
        # Each instance's next event, asked again only when the instance changed
        # (it advanced, or a request was routed to it): nothing else touches an
        # instance here, so the cached time is the one it would report.
        instances = self.instances
        next_at = [inst.next_event_at for inst in instances]
        record = self._record
        recorders = [lambda _n, k=k: record(k) for k in range(len(instances))]  # built once
        pending = self._pending
        while pending:
            at = pending[0][1].arrival_at
            for k, t in enumerate(next_at):
                if t is not None and t < at:
                    inst = instances[k]
                    inst.advance(until=at, progress=recorders[k])
                    next_at[k] = inst.next_event_at
            k = self._route()
            next_at[k] = instances[k].next_event_at
        for k, inst in enumerate(instances):
            inst.advance(progress=recorders[k])
        self.now = max([self.now] + [inst.now for inst in self.instances])

    def _advance_in_order(self) -> None:
        """Every event in time order, an iteration at a time (no graphs)."""
        events = self._next = NextEvents(self.instances, self._idle_until)
        try:
            while True:
                k, at = self._next_instance(events)
                if k is None:
                    break
                inst = self.instances[k]
                ran = inst.advance(until=self._until(at))
                self._record(k, ran=bool(ran))
                events.refresh(k)
                self.now = max(self.now, inst.now)
        finally:
            self._next = None
        if not self.is_finished:
            raise RuntimeError(f"the cluster stopped with requests unfinished and no event left "
                               f"(instances idle: {sorted(self._idle_until)}); this is a bug, "
                               f"please report it with the config")

    def run(self):
        """:meth:`advance`, then :meth:`results`."""
        self.advance()
        return self.results()

    def results(self):
        """One Dataset of the run so far (dims ``iteration``, ``request``, ``instance``)."""
        return cluster_dataset(self)


__all__ = ["Cluster"]
