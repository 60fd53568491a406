"""One per-dimension phase of a collective, and the algorithms that price it.

A hierarchical collective (:mod:`llmsim_nb.network.collectives`) is a
sequence of phases, each running on one dimension of the topology. This
module holds the :class:`Phase` record and the closed-form cost of one phase
under each algorithm.

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

from dataclasses import dataclass
from typing import Any

from .topology import Dimension

ALGORITHMS = ("ring", "direct", "halving_doubling")
#: Default algorithm per dimension kind (see the module docstring for why).
DEFAULT_ALGORITHMS = {"Ring": "ring", "FullyConnected": "direct", "Switch": "direct"}
_SUPPORTED = {"ring": ("Ring", "FullyConnected", "Switch"),
              "direct": ("FullyConnected", "Switch"),
              "halving_doubling": ("FullyConnected", "Switch")}


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


def resolve_algorithm(algorithms: Any, dim: int, d: Dimension) -> str:
    """The algorithm to use on dimension ``dim``.

    ``algorithms`` is as in :class:`~llmsim_nb.network.collectives.CollectiveModel`.
    """
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


def phase_cost(d: Dimension, dim: int, op: str, alg: str, p: int, size: float) -> Phase:
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


__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHMS", "Phase", "phase_cost", "resolve_algorithm"]
