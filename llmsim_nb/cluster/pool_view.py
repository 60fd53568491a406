"""PoolView: what a router sees of a whole pool of instances, as columns.

The same figures as one :class:`~.instance_state.InstanceState` per
instance, kept as per-instance lists (indexed by instance index) that the
cluster updates only where an instance changed. A built-in router picks from
the columns directly (:meth:`~.router.Router.route_pool`); any other router
gets the InstanceStates, built from the view by :meth:`PoolView.states`.
Building one frozen state per instance for every routed request is what made
routing cost grow with the number of instances (64 states per request in a
64-instance cluster).

Invariant: the lists are the cluster's own and read-only to routers; ``pool``
is ascending, so the first instance with the smallest key in ``pool`` order
is the lowest index among ties (the routers' tie rule).
"""

from __future__ import annotations

from dataclasses import dataclass

from .instance_state import InstanceState

__all__ = ["PoolView"]

_trusted = InstanceState.trusted


@dataclass(frozen=True, slots=True)
class PoolView:
    """The candidate instances of one routing decision, as columns.

    Parameters
    ----------
    pool : list of int
        The candidates' instance indices, ascending.
    observed_at : float
        Simulated time the figures are as of, seconds (``>= 0``).
    num_waiting, num_running, num_outstanding, num_used_blocks, num_blocks : list of int
        Per instance of the whole cluster (index ``k`` is instance ``k``), as
        the :class:`InstanceState` fields of the same names.
    """

    pool: list[int]
    observed_at: float
    num_waiting: list[int]
    num_running: list[int]
    num_outstanding: list[int]
    num_used_blocks: list[int]
    num_blocks: list[int]

    def states(self, cached_prefix_tokens: list[int] | None = None) -> list[InstanceState]:
        """One InstanceState per instance of ``pool``, in order (with each
        one's cached prefix tokens when given, one per pool entry)."""
        at, w, r, o, u, b = (self.observed_at, self.num_waiting, self.num_running,
                             self.num_outstanding, self.num_used_blocks, self.num_blocks)
        if cached_prefix_tokens is None:
            return [_trusted(k, at, w[k], r[k], o[k], u[k], b[k]) for k in self.pool]
        return [_trusted(k, at, w[k], r[k], o[k], u[k], b[k], c)
                for k, c in zip(self.pool, cached_prefix_tokens)]
