"""Analytical cost of collectives on a hierarchical topology.

A collective runs over a *group* of devices that is a Cartesian product of
coordinate sets, one per dimension: in every dimension the group uses either
one coordinate (the dimension is not spanned), all of them (a full row), or
-- on ``FullyConnected`` and ``Switch`` dimensions only, where any subset of a
row is still directly connected -- a subset of them. A tensor-parallel group
(the first ``t`` devices of a pipeline stage) is such a product; so is a
group that is exactly one row of one dimension. Anything else raises
``ValueError``.

Hierarchical composition
------------------------
With the spanned dimensions ``d_1 < d_2 < ... < d_k`` and ``p_i`` group
members along ``d_i``:

- reduce-scatter of a buffer of ``S`` bytes: reduce-scatter along ``d_1`` on
  ``S``, then along ``d_2`` on ``S / p_1``, ..., along ``d_k`` on
  ``S / (p_1 ... p_{k-1})``;
- all-gather producing ``S`` bytes: the same phases, mirrored (``d_k`` first,
  on ``S / (p_1 ... p_{k-1})``; ``d_1`` last, on ``S``);
- all-reduce = that reduce-scatter followed by that all-gather;
- all-to-all of ``S`` bytes per device: an all-to-all along each spanned
  dimension in turn, each on the whole ``S``.

The collective's time is the sum of its phases' times (phases run one after
the other; each phase runs all rows of its dimension in parallel on disjoint
links).

How one phase is priced (``ring``, ``direct``, ``halving_doubling``, and the
default per dimension kind) is :mod:`llmsim_nb.network.phases`; which groups
are valid is :mod:`llmsim_nb.network.groups`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..graph.nodes import CollectiveType
from .alpha_beta import fitted_dimension
from .groups import GroupShape, group_shape
from .phases import ALGORITHMS, DEFAULT_ALGORITHMS, Phase, phase_cost, resolve_algorithm
from .topology import Topology

#: Collective costs kept per (kind, size, group); cleared when full.
MAX_MEMOISED_COSTS = 65_536


@dataclass(frozen=True)
class CollectiveCost:
    """Unloaded cost of one collective over a group.

    Attributes
    ----------
    kind : CollectiveType
    size : float
        Buffer per device, bytes (the output for all-gather, the input for
        reduce-scatter).
    group_size : int
    phases : tuple of Phase
        In execution order.
    duration : float
        Sum of the phase durations, seconds (0 for a group of one).
    steps : int
    bytes_per_device : float
        Bytes each member sends over all phases.
    link_bytes : dict of str to float
        Bytes per link class (``"dim0"``, ...), summed over the group.
    """

    kind: CollectiveType
    size: float
    group_size: int
    phases: tuple[Phase, ...]
    duration: float = field(init=False)
    steps: int = field(init=False)
    bytes_per_device: float = field(init=False)
    link_bytes: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "duration", float(sum(p.duration for p in self.phases)))
        object.__setattr__(self, "steps", int(sum(p.steps for p in self.phases)))
        object.__setattr__(self, "bytes_per_device",
                           float(sum(p.bytes_per_device for p in self.phases)))
        loads: dict[str, float] = {}
        for p in self.phases:
            loads[f"dim{p.dim}"] = loads.get(f"dim{p.dim}", 0.0) + p.link_bytes
        object.__setattr__(self, "link_bytes", loads)


def _as_kind(kind: Any) -> CollectiveType:
    if isinstance(kind, CollectiveType):
        return kind
    try:
        return CollectiveType(str(kind).upper())
    except ValueError:
        raise ValueError(f"collective kind={kind!r} is not one of "
                         f"{[k.value for k in CollectiveType]}") from None


class CollectiveModel:
    """Collective costs on one topology, cached by ``(kind, size, group)``.

    Parameters
    ----------
    topology : Topology
    algorithms : None, str or dict
        ``None`` or ``"hierarchical"``: :data:`DEFAULT_ALGORITHMS` per
        dimension kind. A string from :data:`ALGORITHMS`: that algorithm on
        every dimension. A dict mapping a dimension index (``0``) or a kind
        (``"FullyConnected"``) to an algorithm; unlisted dimensions keep the
        default.
    """

    def __init__(self, topology: Topology, algorithms: Any = None) -> None:
        if not isinstance(topology, Topology):
            raise ValueError(f"topology must be a Topology, got {type(topology).__name__}")
        if algorithms is not None and not isinstance(algorithms, (str, dict)):
            raise ValueError(f"algorithms={algorithms!r} must be None, a string or a dict")
        self.topology = topology
        self.algorithms = algorithms
        self._shapes: dict[tuple[int, ...], GroupShape] = {}
        self._costs: dict[tuple, CollectiveCost] = {}

    def shape(self, group) -> GroupShape:
        key = tuple(group)
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = group_shape(self.topology, key)
        return shape

    def cost(self, kind: Any, size: float, group) -> CollectiveCost:
        """The :class:`CollectiveCost` of ``kind`` on a ``size``-byte buffer over ``group``."""
        key = (kind, size, tuple(group))
        cost = self._costs.get(key)
        if cost is None:
            if len(self._costs) >= MAX_MEMOISED_COSTS:  # one per message size: bound it
                self._costs.clear()
            cost = self._costs[key] = self._compute(_as_kind(kind), size, key[2])
        return cost

    def time(self, kind: Any, size: float, group) -> float:
        return self.cost(kind, size, group).duration

    def _compute(self, kind: CollectiveType, size: float, group: tuple) -> CollectiveCost:
        if isinstance(size, bool) or not isinstance(size, (int, float)) \
                or not math.isfinite(size) or size < 0:
            raise ValueError(f"collective size={size!r} must be a finite number of bytes >= 0")
        shape = self.shape(group)
        n = len(shape.members)
        dims = self.topology.dimensions
        fit = self.topology.collective_latency
        algorithms = self.algorithms
        if fit is not None:
            # Measured constants price dimension 0 (alpha_beta): the fit's default
            # algorithm unless one was asked for, with that algorithm's constants.
            if algorithms is None or algorithms == "hierarchical":
                algorithms = {0: fit.algorithm}
            alg0 = resolve_algorithm(algorithms, 0, dims[0])
            dims = (fitted_dimension(dims[0], fit, alg0), *dims[1:])
        plan = [(i, p, resolve_algorithm(algorithms, i, dims[i])) for i, p in shape.spanned]
        phases: list[Phase] = []
        if kind is CollectiveType.ALL_TO_ALL:
            for i, p, alg in plan:
                phases.append(phase_cost(dims[i], i, "all_to_all", alg, p, size))
        else:
            sizes, s = [], float(size)
            for i, p, alg in plan:
                sizes.append(s)
                s /= p
            rs = [phase_cost(dims[i], i, "reduce_scatter", alg, p, sz)
                  for (i, p, alg), sz in zip(plan, sizes)]
            ag = [phase_cost(dims[i], i, "all_gather", alg, p, sz)
                  for (i, p, alg), sz in reversed(list(zip(plan, sizes)))]
            if kind is CollectiveType.REDUCE_SCATTER:
                phases = rs
            elif kind is CollectiveType.ALL_GATHER:
                phases = ag
            else:
                phases = rs + ag
        # phase_cost gives link bytes for one row; a phase on dim i runs n / p_i rows.
        phases = [Phase(ph.dim, ph.op, ph.algorithm, ph.peers, ph.size, ph.steps, ph.latency,
                        ph.transfer, ph.bytes_per_device, ph.link_bytes * (n // ph.peers))
                  for ph in phases]
        return CollectiveCost(kind, float(size), n, tuple(phases))


def _algorithms_key(algorithm: Any) -> Any:
    if isinstance(algorithm, dict):
        return tuple(sorted(algorithm.items(), key=lambda kv: str(kv[0])))
    return algorithm


@lru_cache(maxsize=32)
def _model(topology: Topology, algorithms_key: Any) -> CollectiveModel:
    algorithms = dict(algorithms_key) if isinstance(algorithms_key, tuple) else algorithms_key
    return CollectiveModel(topology, algorithms)


def collective_cost(topology: Topology, kind: Any, size: float, group,
                    algorithm: Any = None) -> CollectiveCost:
    """Unloaded cost of a collective (see the module docstring for the formulas).

    Parameters
    ----------
    topology : Topology
    kind : CollectiveType or str
        ``ALL_REDUCE``, ``ALL_GATHER``, ``REDUCE_SCATTER`` or ``ALL_TO_ALL``.
    size : float
        Bytes per device.
    group : iterable of int
        Participating devices.
    algorithm : None, str or dict
        As ``algorithms`` of :class:`CollectiveModel`.
    """
    return _model(topology, _algorithms_key(algorithm)).cost(kind, size, tuple(group))


def collective_time(topology: Topology, kind: Any, size: float, group,
                    algorithm: Any = None) -> float:
    """Seconds a collective takes on an idle network (``collective_cost(...).duration``)."""
    return collective_cost(topology, kind, size, group, algorithm).duration


def collective_link_bytes(topology: Topology, kind: Any, size: float, group,
                          algorithm: Any = None) -> dict[str, float]:
    """Bytes the collective puts on each link class (``"dim0"``, ...), summed over the group."""
    return dict(collective_cost(topology, kind, size, group, algorithm).link_bytes)


# ALGORITHMS, DEFAULT_ALGORITHMS, Phase, GroupShape and group_shape are defined in
# .phases / .groups and stay importable from here, where they used to live.
__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHMS", "CollectiveCost", "CollectiveModel", "GroupShape",
           "Phase", "collective_cost", "collective_link_bytes", "collective_time", "group_shape"]