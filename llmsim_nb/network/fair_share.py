"""Congestion-aware links: concurrent transfers share bandwidth fairly.

:class:`FairShareLinks` is the :class:`~llmsim_nb.network.link_model.LinkModel`
of ``Network(congestion=True)``. It treats links as shared resources with a
fluid (processor-sharing) model: a transfer pays its latency first, then
moves its bytes at a rate recomputed whenever a transfer starts or ends on
one of its links. The rate of a SEND is ``min over its links of capacity /
n`` where ``n`` counts the transfers on that link; a host transfer shares its
host link (one per device and direction) the same way.

Collectives and row bundles
---------------------------
A collective phase uses every link of the rows of its dimension that the
group covers. Rather than registering thousands of links (a 64-device full
mesh row has 4032), it holds one resource per row, the *row bundle*
``(dim, first device of the row)``; its progress is measured in seconds of
unloaded transfer time, at a rate ``min over its rows of 1 / (c + s)`` where
``c`` counts the collectives on the row and ``s`` the most SENDs on any one
link of the row (the collective uses all of them, so its busiest link limits
it). A SEND on a link of a row shares it with the row's collectives: its
rate on that link is ``capacity / (sends on the link + collectives on the
row)``. So two concurrent collectives on the same rows take twice as long,
collectives on disjoint rows (different pipeline stages) do not interact.
This treats a ring collective on a full mesh (which uses only the ring's
links) as using the whole row, a deliberate over-estimate.

Flows
-----
Every claimed node is a :class:`_Flow`: a list of stages ``(latency,
resources, work)`` run one after the other (one stage for a SEND or a host
transfer, one per phase for a collective). A stage first waits ``latency``
(event :data:`~llmsim_nb.network.link_model.STAGE_START`), then holds its
resources until ``work`` is done (event
:data:`~llmsim_nb.network.link_model.STAGE_END`). Work is bytes for a SEND or
a host transfer and unloaded seconds for a collective phase.

Invariants kept between events:

- ``remaining`` of a flow is its work left at time ``last``; a flow's
  ``rate`` is constant between two updates, so ``remaining`` is brought up to
  date (:meth:`FairShareLinks._advance`) before any change of the counts its
  rate depends on, and its end is predicted again afterwards
  (:meth:`FairShareLinks._reschedule`);
- every re-prediction bumps the flow's ``version``, which makes the events
  pushed before it stale; they stay on the heap and are skipped.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, ClassVar

from .link_model import STAGE_END, STAGE_START, LinkModel, Transfers

_NO_FLOWS: frozenset = frozenset()


class _Flow:
    """A claimed transfer: stages of ``(latency, resources, work)``."""

    __slots__ = ("node", "kind", "stages", "stage", "remaining", "rate", "last", "version",
                 "links", "bundles", "host")

    def __init__(self, node: int, kind: str, stages: list) -> None:
        self.node = node
        self.kind = kind            # "send", "coll" or "host"
        self.stages = stages        # [(latency, resources, work)]
        self.stage = 0
        self.remaining = 0.0        # work left at time `last`
        self.rate = 0.0             # work per second since `last`
        self.last = 0.0
        self.version = 0            # bumped on every re-prediction; older events are stale
        # Resources held by the current stage; empty while paying latency.
        self.links = ()             # SEND: LinkIds
        self.bundles = ()           # collective: row bundles
        self.host = None            # host transfer: (device, direction)


class FairShareLinks(LinkModel):
    """Processor-sharing links (see the module docstring).

    Parameters
    ----------
    network : Network
    transfers : dict
        ``node -> (kind, payload)`` for every node that moves bytes; see
        :mod:`llmsim_nb.network.link_model`.
    device : list
        Device of each node, indexed by node id.
    """

    congestion: ClassVar[bool] = True

    def __init__(self, network: Any, transfers: Transfers, device: list) -> None:
        self._network = network
        self._topology = network.topology
        self._dims = network.topology.dimensions
        self._host_bw = network.host_bandwidth
        self._host_latency = network.host_latency
        self._transfers = transfers
        self.claims = transfers     # every node that moves bytes over a link
        self._device = device
        self._flows: dict[int, _Flow] = {}
        self._link_flows: dict[Any, set] = {}     # link -> SEND flows on it
        self._bundle_colls: dict[Any, set] = {}   # row bundle -> collective flows on it
        self._bundle_sends: dict[Any, set] = {}   # row bundle -> SEND flows on its links
        self._bundle_links: dict[Any, dict] = {}  # row bundle -> {link: active SENDs}
        self._host_flows: dict[Any, set] = {}     # (device, direction) -> host flows
        self._link_bundle: dict[Any, tuple] = {}  # link -> its row bundle (lazy cache)
        self._capacity: dict[Any, float] = {}     # link -> B/s (filled with _link_bundle)

    # ------------------------------------------------------------------ loop protocol
    def begin(self, node: int, t: float, heap: list) -> None:
        kind, payload = self._transfers[node]
        if kind == "send":
            links, latency, size = payload
            stages = [(latency, links, float(size))]
        elif kind == "host":
            direction, size = payload
            stages = [(self._host_latency, (self._device[node], direction), float(size))]
        else:
            cost, members = payload
            row_bundles = self._network._row_bundles
            stages = [(ph.latency, row_bundles(members, ph.dim), ph.transfer)
                      for ph in cost.phases]
        f = self._flows[node] = _Flow(node, kind, stages)
        heapq.heappush(heap, (t + stages[0][0], STAGE_START, node, f.version))

    def on_event(self, tag: int, node: int, version: int, t: float, heap: list) -> bool:
        f = self._flows[node]
        if version != f.version:
            return False            # a prediction made before the rates last changed
        if tag == STAGE_START:
            self._attach(f, t, heap)
            return False
        self._release(f, t, heap)
        f.stage += 1
        f.version += 1
        if f.stage < len(f.stages):
            heapq.heappush(heap, (t + f.stages[f.stage][0], STAGE_START, node, f.version))
            return False
        return True

    # ------------------------------------------------------------------ resources
    def _bundle_of(self, link) -> tuple:
        """Row bundle of ``link``; caches it and the link's capacity on first use."""
        b = self._link_bundle.get(link)
        if b is None:
            b = self._link_bundle[link] = (link[0], self._topology.row_base(link[1], link[0]))
            self._capacity[link] = self._dims[link[0]].link_capacity
        return b

    def _collective_rate(self, f: _Flow) -> float:
        """Rate of a collective flow, unloaded seconds per second: its slowest row bundle."""
        bundle_links, bundle_colls = self._bundle_links, self._bundle_colls
        r = math.inf
        for b in f.bundles:
            per_link = bundle_links.get(b)
            busiest = max(per_link.values()) if per_link else 0
            r = min(r, 1.0 / (len(bundle_colls[b]) + busiest))
        return r

    def _neighbours(self, f: _Flow) -> set:
        """Flows whose rate depends on how many flows hold ``f``'s resources."""
        out: set = set()
        if f.kind == "send":
            for l in f.links:
                out |= self._link_flows.get(l, _NO_FLOWS)
                out |= self._bundle_colls.get(self._bundle_of(l), _NO_FLOWS)
        elif f.kind == "host":
            out |= self._host_flows.get(f.host, _NO_FLOWS)
        else:
            for b in f.bundles:
                out |= self._bundle_colls.get(b, _NO_FLOWS)
                out |= self._bundle_sends.get(b, _NO_FLOWS)
        return out

    def _advance(self, ids, t: float) -> None:
        """Bring ``remaining`` of the flows ``ids`` up to time ``t`` at their old rates."""
        flows = self._flows
        for fid in ids:
            g = flows[fid]
            g.remaining -= g.rate * (t - g.last)
            g.last = t

    def _reschedule(self, ids, t: float, heap: list) -> None:
        """New rates for the flows ``ids`` and a fresh end prediction for each.

        A SEND moves ``min over its links of capacity / (SENDs on the link +
        collectives on its row)`` B/s, a host flow ``host_bandwidth / flows on
        its host link`` B/s, a collective :meth:`_collective_rate`. The two
        byte rates are computed inline: this is the hottest loop of a
        congested run.
        """
        flows, push = self._flows, heapq.heappush
        capacity, link_bundle = self._capacity, self._link_bundle
        link_flows, bundle_colls = self._link_flows, self._bundle_colls
        host_bw, host_flows = self._host_bw, self._host_flows
        for fid in ids:
            g = flows[fid]
            kind = g.kind
            if kind == "send":
                # Every link of an attached SEND went through _bundle_of, so
                # both caches hold it.
                g.rate = min(capacity[l] / (len(link_flows[l])
                                            + len(bundle_colls.get(link_bundle[l], _NO_FLOWS)))
                             for l in g.links)
            elif kind == "host":
                g.rate = host_bw / len(host_flows[g.host])
            else:
                g.rate = self._collective_rate(g)
            g.version += 1
            # Rounding can leave a hair of negative work; never predict the past.
            left = g.remaining if g.remaining > 0 else 0.0
            push(heap, (t + left / g.rate, STAGE_END, fid, g.version))

    def _attach(self, f: _Flow, t: float, heap: list) -> None:
        """``f``'s current stage has paid its latency: take its resources at ``t``."""
        _, resources, work = f.stages[f.stage]
        if work <= 0:
            # Nothing to move: end the stage now without touching anyone's rate.
            heapq.heappush(heap, (t, STAGE_END, f.node, f.version))
            return
        if f.kind == "send":
            f.links = resources
        elif f.kind == "host":
            f.host = resources
        else:
            f.bundles = resources
        affected = self._neighbours(f)
        self._advance(affected, t)
        fid = f.node
        if f.kind == "send":
            for l in f.links:
                b = self._bundle_of(l)
                self._link_flows.setdefault(l, set()).add(fid)
                self._bundle_sends.setdefault(b, set()).add(fid)
                per_link = self._bundle_links.setdefault(b, {})
                per_link[l] = per_link.get(l, 0) + 1
        elif f.kind == "host":
            self._host_flows.setdefault(f.host, set()).add(fid)
        else:
            for b in f.bundles:
                self._bundle_colls.setdefault(b, set()).add(fid)
        f.remaining = work
        f.last = t
        affected.add(fid)
        self._reschedule(affected, t, heap)

    def _release(self, f: _Flow, t: float, heap: list) -> None:
        """``f``'s current stage is done at ``t``: free its resources, speed up the rest."""
        if not (f.links or f.bundles or f.host is not None):
            return                  # a zero-work stage never took any
        affected = self._neighbours(f)
        affected.discard(f.node)
        self._advance(affected, t)
        fid = f.node
        if f.kind == "send":
            for l in f.links:
                b = self._bundle_of(l)
                self._link_flows[l].discard(fid)
                per_link = self._bundle_links[b]
                per_link[l] -= 1
                if per_link[l] == 0:
                    del per_link[l]   # keeps max(per_link.values()) the busiest *active* link
                self._bundle_sends[b].discard(fid)
        elif f.kind == "host":
            self._host_flows[f.host].discard(fid)
        else:
            for b in f.bundles:
                self._bundle_colls[b].discard(fid)
        f.links, f.bundles, f.host = (), (), None
        self._reschedule(affected, t, heap)


__all__ = ["FairShareLinks"]
