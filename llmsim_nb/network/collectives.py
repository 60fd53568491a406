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

Per-dimension algorithms
------------------------
Notation for one phase on dimension ``d`` with ``p`` members and a buffer of
``S`` bytes: ``alpha`` is the latency of one step (link latency + NIC
latency; a switch step costs two link latencies + the router latency), and

- ``B_ring``: bandwidth a device feeds into a ring -- ``bandwidth *
  num_links`` on a Ring dimension (the buffer is split over both directions /
  all parallel rings), twice the pair-link capacity on a FullyConnected
  dimension (the links to the two ring neighbours; once if ``p = 2``), the
  port ``bandwidth * num_links`` on a Switch;
- ``B_pair``: capacity of the direct link to one peer on a FullyConnected
  dimension, ``bandwidth * num_links / (size - 1)``;
- ``B_port``: a Switch port, ``bandwidth * num_links``.

``ring`` (any kind)
    reduce-scatter / all-gather: ``p - 1`` steps, each moving ``S / p`` to the
    next device: ``T = (p - 1) (alpha + S / (p B_ring))``; each device sends
    ``(p - 1) S / p`` bytes. An all-reduce is both: ``2 (p - 1)`` steps,
    ``T = 2 (p - 1) (alpha + S / (p B_ring))``, ``2 (p - 1) S / p`` bytes per
    device (the textbook bandwidth-optimal figure).
    all-to-all: store-and-forward round the ring; at step ``j`` each device
    forwards the ``(p - j) S / p`` bytes not yet delivered:
    ``T = (p - 1) alpha + (p - 1) S / (2 B_ring)``.
``direct`` (FullyConnected, Switch)
    One step in which every device sends its ``S / p`` share to each of the
    ``p - 1`` peers at once. On a full mesh each share has its own link:
    ``T = alpha + S / (p B_pair)``; through a switch the shares queue on the
    port: ``T = alpha + (p - 1) S / (p B_port)``. Same bytes per device as the
    ring. An all-reduce takes two such steps (reduce-scatter + all-gather);
    an all-to-all is one step with the same formula.
``halving_doubling`` (FullyConnected, Switch; ``p`` a power of two)
    ``log2 p`` steps; at step ``k`` a device exchanges ``S / 2^k`` bytes with
    one partner: ``T = log2(p) alpha + (p - 1) S / (p B)`` with ``B =
    B_pair`` or ``B_port``. all-to-all (Bruck-style): ``log2 p`` steps of
    ``S / 2``: ``T = log2(p) (alpha + S / (2 B))``.

Defaults: ``ring`` on Ring dimensions (only neighbour links exist, and the
ring is bandwidth-optimal on them without forwarding); ``direct`` on
FullyConnected dimensions (every pair has its own link, so one step uses all
of them in parallel and pays one latency instead of ``p - 1``) and on Switch
dimensions (a non-blocking switch gives the same bandwidth term as a ring
but in a single step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ..graph.nodes import CollectiveType
from .topology import Dimension, Topology

ALGORITHMS = ("ring", "direct", "halving_doubling")
#: Default algorithm per dimension kind (see the module docstring for why).
DEFAULT_ALGORITHMS = {"Ring": "ring", "FullyConnected": "direct", "Switch": "direct"}
_SUPPORTED = {"ring": ("Ring", "FullyConnected", "Switch"),
              "direct": ("FullyConnected", "Switch"),
              "halving_doubling": ("FullyConnected", "Switch")}

#: Collective costs kept per (kind, size, group); cleared when full.
MAX_MEMOISED_COSTS = 65_536


@dataclass(frozen=True, slots=True)
class Phase:
    """One per-dimension phase of a collective.

    Attributes
    ----------
    dim : int
        Dimension it runs on.
    op : str
        ``"reduce_scatter"``, ``"all_gather"`` or ``"all_to_all"``.
    algorithm : str
    peers : int
        Group members along ``dim`` (``p``).
    size : float
        Buffer the phase works on, bytes.
    steps : int
    latency : float
        ``steps * alpha``, seconds.
    transfer : float
        Bandwidth term, seconds (time at full link speed).
    bytes_per_device : float
        Bytes each member sends in this phase.
    link_bytes : float
        Bytes carried by all links of ``dim`` together, over the whole group
        (a switch crossing counts on the up- and the down-port).
    """

    dim: int
    op: str
    algorithm: str
    peers: int
    size: float
    steps: int
    latency: float
    transfer: float
    bytes_per_device: float
    link_bytes: float

    @property
    def duration(self) -> float:
        return self.latency + self.transfer


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


@dataclass(frozen=True, slots=True)
class GroupShape:
    """A validated group: its members and the dimensions it spans.

    Attributes
    ----------
    members : tuple of int
        Sorted device ids.
    spanned : tuple of (int, int)
        ``(dim, p)`` for every dimension with ``p > 1`` members, ascending.
    """

    members: tuple[int, ...]
    spanned: tuple[tuple[int, int], ...]


def _as_kind(kind: Any) -> CollectiveType:
    if isinstance(kind, CollectiveType):
        return kind
    try:
        return CollectiveType(str(kind).upper())
    except ValueError:
        raise ValueError(f"collective kind={kind!r} is not one of "
                         f"{[k.value for k in CollectiveType]}") from None


def group_shape(topology: Topology, group) -> GroupShape:
    """Validate ``group`` against ``topology`` (see the module docstring).

    Raises
    ------
    ValueError
        Empty group, repeated or out-of-range devices, a group that is not a
        Cartesian product of per-dimension coordinate sets, or a partial row
        of a Ring dimension.
    """
    members = tuple(sorted(int(g) for g in group))
    if not members:
        raise ValueError("collective group is empty; it needs at least one device")
    n = topology.num_devices
    if members[0] < 0 or members[-1] >= n:
        bad = [g for g in members if not 0 <= g < n]
        raise ValueError(f"collective group has devices {bad} outside topology "
                         f"{topology.name!r} (0..{n - 1})")
    if len(set(members)) != len(members):
        raise ValueError(f"collective group {members} repeats devices")
    spanned, product = [], 1
    for i, (d, stride) in enumerate(zip(topology.dimensions, topology.strides)):
        coords = {(g // stride) % d.size for g in members}
        p = len(coords)
        product *= p
        if p == 1:
            continue
        if p < d.size and d.kind == "Ring":
            raise ValueError(f"collective group {_short(members)} uses {p} of the {d.size} "
                             f"devices of Ring dimension {i}; a group must span whole rings")
        spanned.append((i, p))
    if product != len(members):
        raise ValueError(f"collective group {_short(members)} is not aligned to the topology's "
                         f"dimensions: it must be a full product of per-dimension coordinate "
                         f"sets (e.g. whole rows), but it has {len(members)} of the {product} "
                         f"devices such a product would hold")
    return GroupShape(members, tuple(spanned))


def _short(members: tuple[int, ...]) -> str:
    return str(members) if len(members) <= 8 else f"({members[0]}, {members[1]}, ..., {members[-1]})"


def _resolve_algorithm(algorithms: Any, dim: int, d: Dimension) -> str:
    """The algorithm to use on dimension ``dim`` (see :class:`CollectiveModel`)."""
    if algorithms is None or algorithms == "hierarchical":
        alg = DEFAULT_ALGORITHMS[d.kind]
    elif isinstance(algorithms, str):
        alg = algorithms
    else:
        alg = algorithms.get(dim, algorithms.get(d.kind, DEFAULT_ALGORITHMS[d.kind]))
    if alg not in ALGORITHMS:
        raise ValueError(f"collective algorithm={alg!r} for dimension {dim} is not one of "
                         f"{list(ALGORITHMS)} (or 'hierarchical' for the defaults)")
    if d.kind not in _SUPPORTED[alg]:
        raise ValueError(f"collective algorithm {alg!r} does not run on {d.kind} dimension "
                         f"{dim}; it needs one of {list(_SUPPORTED[alg])}")
    return alg


def _phase(d: Dimension, dim: int, op: str, alg: str, p: int, size: float) -> Phase:
    """Cost of one phase; formulas in the module docstring."""
    switch = d.kind == "Switch"
    alpha = (2 * d.latency + d.router_latency if switch else d.latency) + d.nic_latency
    b_pair = d.link_capacity                    # FC: bandwidth * num_links / (size - 1)
    b_port = d.injection_bandwidth              # Switch port: bandwidth * num_links
    if alg == "ring":
        if d.kind == "Ring":
            bw = d.injection_bandwidth
        elif switch:
            bw = b_port
        else:
            bw = b_pair * (2 if p > 2 else 1)
        if op == "all_to_all":
            steps, transfer = p - 1, (p - 1) * size / (2 * bw)
            sent = (p - 1) * size / 2
        else:
            steps, transfer = p - 1, (p - 1) * size / (p * bw)
            sent = (p - 1) * size / p
    elif alg == "direct":
        steps = 1
        sent = (p - 1) * size / p
        transfer = sent / b_port if switch else size / (p * b_pair)
    else:  # halving_doubling
        if p & (p - 1):
            raise ValueError(f"halving_doubling needs a power-of-two group along dimension "
                             f"{dim}, got {p} devices")
        steps = p.bit_length() - 1
        bw = b_port if switch else b_pair
        if op == "all_to_all":
            sent = steps * size / 2
        else:
            sent = (p - 1) * size / p
        transfer = sent / bw
    hops = 2 if switch else 1
    return Phase(dim, op, alg, p, size, steps, steps * alpha, transfer, sent,
                 sent * p * hops)  # per-row figure; scaled to all rows by the caller


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
        plan = [(i, p, _resolve_algorithm(self.algorithms, i, dims[i])) for i, p in shape.spanned]
        phases: list[Phase] = []
        if kind is CollectiveType.ALL_TO_ALL:
            for i, p, alg in plan:
                phases.append(_phase(dims[i], i, "all_to_all", alg, p, size))
        else:
            sizes, s = [], float(size)
            for i, p, alg in plan:
                sizes.append(s)
                s /= p
            rs = [_phase(dims[i], i, "reduce_scatter", alg, p, sz)
                  for (i, p, alg), sz in zip(plan, sizes)]
            ag = [_phase(dims[i], i, "all_gather", alg, p, sz)
                  for (i, p, alg), sz in reversed(list(zip(plan, sizes)))]
            if kind is CollectiveType.REDUCE_SCATTER:
                phases = rs
            elif kind is CollectiveType.ALL_GATHER:
                phases = ag
            else:
                phases = rs + ag
        # _phase gives link bytes for one row; a phase on dim i runs n / p_i rows.
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


__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHMS", "CollectiveCost", "CollectiveModel", "GroupShape",
           "Phase", "collective_cost", "collective_link_bytes", "collective_time", "group_shape"]
