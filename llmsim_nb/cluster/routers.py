"""The registered routers (see :mod:`.router` for the base class and registry).

Each picks from the :class:`~.instance_state.InstanceState` of every candidate
instance in :meth:`_route` and, where its choice reads only the pool's columns,
also in :meth:`_route_view` with the same answer (see
:meth:`~.router.Router.route_pool`). Ties: fewer outstanding requests, then
the lowest index.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .instance_state import InstanceState
from .router import Router, _is_int, register_router

if TYPE_CHECKING:
    import numpy as np

    from ..workload.request import Request
    from .pool_view import PoolView

__all__ = ["LeastKVRouter", "LeastOutstandingRouter", "PrefixAwareRouter", "RandomRouter",
           "RoundRobinRouter"]


@register_router
class RoundRobinRouter(Router):
    """Instances in turn: the ``k``-th call (from 0) picks ``states[k % len(states)]``.

    The cursor counts calls, not instances, so a cluster that passes fewer
    states (some instances excluded) still moves on; :meth:`reset` sets it
    back to 0.
    """

    name = "round_robin"

    def __init__(self) -> None:
        self._cursor = 0

    def _route(self, request: Request, states: Sequence[InstanceState]) -> int:
        chosen = states[self._cursor % len(states)].index
        self._cursor += 1
        return chosen

    def _route_view(self, request: Request, view: PoolView) -> int:
        chosen = view.pool[self._cursor % len(view.pool)]
        self._cursor += 1
        return chosen

    def reset(self) -> None:
        self._cursor = 0


@register_router
class RandomRouter(Router):
    """Uniformly at random, one ``rng.integers(len(states))`` draw per request.

    Parameters
    ----------
    rng : numpy.random.Generator
        Required: an explicit generator keeps runs reproducible (the same
        seed, the same choices) and independent of numpy's global state.
    """

    name = "random"
    uses_rng = True

    def __init__(self, rng: np.random.Generator | None = None) -> None:
        # Imported here: numpy is loaded by whoever made the generator, and
        # importing the router module stays free of numerical libraries.
        import numpy as np

        if rng is None:
            raise ValueError("router 'random' needs a generator: pass "
                             "rng=numpy.random.default_rng(seed)")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"router 'random': rng must be a numpy.random.Generator, got "
                             f"{type(rng).__name__}; pass rng=numpy.random.default_rng(seed)")
        self.rng = rng

    def _route(self, request: Request, states: Sequence[InstanceState]) -> int:
        return states[int(self.rng.integers(len(states)))].index

    def _route_view(self, request: Request, view: PoolView) -> int:
        return view.pool[int(self.rng.integers(len(view.pool)))]


@register_router
class LeastOutstandingRouter(Router):
    """Fewest ``num_outstanding`` (requests sent and not finished); ties: lowest index."""

    name = "least_outstanding"

    def _route(self, request: Request, states: Sequence[InstanceState]) -> int:
        # min(states, key=lambda s: (s.num_outstanding, s.index)), the first
        # smallest key, compared field by field (no key tuple per state).
        best = states[0]
        for s in states:
            if s.num_outstanding < best.num_outstanding or (
                    s.num_outstanding == best.num_outstanding and s.index < best.index):
                best = s
        return best.index

    def _route_view(self, request: Request, view: PoolView) -> int:
        # The first smallest in ascending pool order: the lowest index among ties.
        return min(view.pool, key=view.num_outstanding.__getitem__)


@register_router
class LeastKVRouter(Router):
    """Lowest ``kv_usage``; ties: fewer outstanding, then lowest index.

    KV usage is what makes an instance preempt; it lags the queue, so an
    instance that just received a burst of waiting requests still looks empty
    (hence the outstanding tie-break).
    """

    name = "least_kv"

    def _route(self, request: Request, states: Sequence[InstanceState]) -> int:
        return min(states, key=lambda s: (s.kv_usage, s.num_outstanding, s.index)).index

    def _route_view(self, request: Request, view: PoolView) -> int:
        used, blocks, out = view.num_used_blocks, view.num_blocks, view.num_outstanding
        return min(view.pool, key=lambda k: (used[k] / blocks[k], out[k]))


@register_router
class PrefixAwareRouter(Router):
    """The most ``cached_prefix_tokens`` among instances not much busier than the least busy.

    Candidates are the instances with ``num_outstanding <= min_outstanding +
    load_cap``; among them the longest cached prefix wins, ties by fewer
    outstanding, then lowest index. Without a cached prefix anywhere among
    the candidates this is :class:`LeastOutstandingRouter` (the least busy
    instance is always a candidate).

    Parameters
    ----------
    load_cap : int, optional
        How many more outstanding requests than the least busy instance a
        cache hit may cost, ``>= 0`` (default 8). 0 sends every request to a
        least busy instance, using the cache only among equally busy ones; a
        large cap follows the cache however unbalanced the load becomes.
    """

    name = "prefix_aware"
    uses_prefix_cache = True

    def __init__(self, load_cap: int = 8) -> None:
        if not _is_int(load_cap) or load_cap < 0:
            raise ValueError(f"router 'prefix_aware': load_cap={load_cap!r} must be an integer "
                             f">= 0 (extra outstanding requests a cache hit may cost)")
        self.load_cap = int(load_cap)

    def _route(self, request: Request, states: Sequence[InstanceState]) -> int:
        limit = min(s.num_outstanding for s in states) + self.load_cap
        candidates = [s for s in states if s.num_outstanding <= limit]
        # With no cached prefix the first key is 0 for all: least outstanding.
        return min(candidates,
                   key=lambda s: (-s.cached_prefix_tokens, s.num_outstanding, s.index)).index
