"""Cluster: serving instances behind a router, on one clock.

Each instance is an :class:`~llmsim_nb.instance.Instance` with its own
config. Requests submitted to the cluster wait for their arrival time; then
the router (:mod:`.router`) picks an instance from every instance's state as
of that time minus ``router_staleness`` (:mod:`.state_log`), and the request
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
instances. (Prefill/decode disaggregation, with KV moved between instances,
is not built yet: every instance here serves its requests from prompt to
last token.)
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ..instance import Instance
from ..instance.instance import SimulationFinished
from ..scheduler.block_hasher import BlockHasher
from ..system import build_instance
from ..workload.request import Request
from .results import cluster_dataset
from .router import get_router
from .spec import ClusterConfig
from .state_log import StateLog

#: Stream of the cluster seed that drives the ``random`` router.
ROUTER_STREAM = 0x726F75  # "rou"


class Cluster:
    """Instances behind a router (see the module docstring).

    Parameters
    ----------
    config : ClusterConfig
        Every instance is built here, so a bad group fails before anything runs.
    router : str or callable, optional
        Overrides ``config.router`` (a registered name or ``f(request, states) -> index``).

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
                self.instances.append(Instance(build_instance(sim_config)))
            except ValueError as exc:
                raise ValueError(f"instance {name!r}: {exc}") from None
        rng = np.random.default_rng([config.seed, ROUTER_STREAM])
        choice = config.router if router is None else router
        params = config.router_params if router is None else {}
        self.router = get_router(choice, rng=rng, **params)
        self._wants_prefix = self.router.uses_prefix_cache
        self._logs = [StateLog(k, inst.kv_cache.num_blocks)
                      for k, inst in enumerate(self.instances)]
        self._pending: deque[tuple[int, Request]] = deque()  # (cluster index, request)
        self.requests: list[Request] = []
        self.request_instance: list[int] = []
        self.request_local: list[int] = []
        self.now = 0.0  # the time of the last event handled

    # -------------------------------------------------------------- requests
    def submit(self, request: Request) -> int:
        """Hand a request to the cluster (routed at its arrival); return its index."""
        if not isinstance(request, Request):
            raise ValueError(f"Cluster.submit needs a Request, got {type(request).__name__}")
        if self.requests and request.arrival_at < self.requests[-1].arrival_at:
            raise ValueError(f"request {request.request_id} arrives at {request.arrival_at} s, "
                             f"before the previous one ({self.requests[-1].arrival_at} s); "
                             f"submit requests in arrival order")
        index = len(self.requests)
        self.requests.append(request)
        self.request_instance.append(-1)
        self.request_local.append(-1)
        self._pending.append((index, request))
        return index

    def submit_trace(self, trace) -> None:
        """Submit every request of ``trace`` (a :class:`~llmsim_nb.workload.trace.Trace`)."""
        for request in trace:
            self.submit(request)

    @property
    def is_finished(self) -> bool:
        """Every submitted request routed and finished."""
        return not self._pending and all(inst.is_finished for inst in self.instances)

    def _earliest_instance(self) -> tuple[int, float] | tuple[None, None]:
        best, best_at = None, None
        for k, inst in enumerate(self.instances):
            at = inst.next_event_at
            if at is not None and (best_at is None or at < best_at):
                best, best_at = k, at
        return best, best_at

    # ----------------------------------------------------------------- route
    def _states(self, request: Request, at: float) -> list:
        observed = at - self.config.router_staleness
        states = []
        for k, log in enumerate(self._logs):
            prefix = self._cached_prefix(k, request) if self._wants_prefix else 0
            states.append(log.state_at(observed, prefix))
        return states

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
        k = self.router.route(request, self._states(request, at))
        self.request_local[index] = self.instances[k].submit(request, at)
        self.request_instance[index] = k
        self._logs[k].routed(at)
        self.now = max(self.now, at)
        return k

    def _record(self, k: int) -> None:
        inst = self.instances[k]
        sched = inst.scheduler
        self._logs[k].record(inst.now, len(sched.waiting), len(sched.running), sched.num_finished,
                             inst.kv_cache.num_used_blocks)

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
        while True:
            k, at = self._earliest_instance()
            if self._pending and (at is None or self._pending[0][1].arrival_at <= at):
                self._route()
                continue
            if k is None:
                raise SimulationFinished(f"all {len(self.requests)} requests have finished")
            ds = self.instances[k].step()
            self._record(k)
            self.now = max(self.now, self.instances[k].now)
            ds.attrs["instance"] = self.names[k]
            return ds.assign(iteration_instance=("iteration", np.array([k]),
                                                 {"units": "1",
                                                  "long_name": "instance that ran the iteration"}))

    def advance(self) -> None:
        """Run until every submitted request has finished (the same iterations
        as repeated :meth:`step`, see the module docstring)."""
        while self._pending:
            at = self._pending[0][1].arrival_at
            for k, inst in enumerate(self.instances):
                if not inst.is_finished:
                    inst.advance(until=at, progress=lambda _n, k=k: self._record(k))
            self._route()
        for k, inst in enumerate(self.instances):
            inst.advance(progress=lambda _n, k=k: self._record(k))
        self.now = max([self.now] + [inst.now for inst in self.instances])

    def run(self):
        """:meth:`advance`, then :meth:`results`."""
        self.advance()
        return self.results()

    def results(self):
        """One Dataset of the run so far (dims ``iteration``, ``request``, ``instance``)."""
        return cluster_dataset(self)


__all__ = ["Cluster"]
