"""Discrete-event execution of an :class:`~llmsim_nb.graph.nodes.ExecutionGraph`.

:class:`Network` plays the role of ASTRA-sim's system layer with its
analytical network backend: it runs the nodes of one iteration's execution
graph on a :class:`~llmsim_nb.network.topology.Topology` and returns when each
node started and finished.

Execution rules
---------------
- A node becomes *ready* when all of its ``data_deps`` have finished (roots
  are ready at time 0).
- Each device has one compute unit per ``Node.unit`` (0 = the device's own;
  a local PIM is unit 1). ``COMP`` nodes of a unit run one at a
  time for their ``duration``; when the unit frees up it takes the ready node
  with the lowest id. Ids are program order (the graph converter emits
  micro-batch by micro-batch), so a stage finishes micro-batch ``j`` before it
  starts ``j + 1`` and the pipeline fills as in GPipe, instead of interleaving
  every micro-batch layer by layer.
- Communication and memory nodes do not use the compute unit (they are DMA /
  NIC work), so they overlap with compute and with each other:

  * ``COMM_COLL``: :meth:`CollectiveModel.cost` of its ``collective``,
    ``size`` and full ``group``;
  * ``COMM_SEND``: ``size`` bytes from ``device`` to ``peer`` along
    :meth:`Topology.path`: ``T = sum(hop latencies) + size / min(link
    bandwidths)`` (plus router / NIC latencies, see :mod:`.topology`);
  * ``COMM_RECV``: zero time of its own; it depends on its SEND, so it
    finishes when the data has arrived;
  * ``MEM_LOAD`` / ``MEM_STORE``: ``T = size / host_bandwidth +
    host_latency`` over the device's own host link (one per direction).

Congestion
----------
``congestion=False`` charges every transfer its unloaded time (fast; use it
for sweeps). ``congestion=True`` treats links as shared resources with a fluid
(processor-sharing) model: a transfer pays its latency first, then moves its
bytes at a rate recomputed whenever a transfer starts or ends on one of its
links. The rate of a SEND is ``min over its links of capacity / n`` where
``n`` counts the transfers on that link; a host transfer shares its host link
the same way.

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

Symmetric reduction
-------------------
A reduced graph holds nodes for one representative device per class of
symmetric devices (``ExecutionGraph.multiplicity``). Timing needs nothing
special: a collective node already names its whole group, and the other
members of a class run identical, simultaneous work on their own compute
units. In congestion mode a representative's SEND stands for ``m`` SENDs
from the other members of its class to *their* peers; the members of a
tensor-parallel class differ in the coordinates of the dimensions their group
spans, while pipeline SENDs go rank to rank along the other dimensions, so
dimension-order routing puts the ``m`` copies on disjoint links and they do
not slow each other -- they are not added to the links. Host transfers use
each device's own host link. Byte counts (``link_bytes``) do include the
copies: a representative's SEND or host transfer counts ``multiplicity``
times.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..graph.nodes import ExecutionGraph, NodeType
from .collectives import CollectiveModel
from .topology import Topology, load_topology

_COMP = NodeType.COMP
_COLL = NodeType.COMM_COLL
_SEND = NodeType.COMM_SEND
_RECV = NodeType.COMM_RECV
_LOAD = NodeType.MEM_LOAD
_STORE = NodeType.MEM_STORE


@dataclass(frozen=True, eq=False)
class GraphSchedule:
    """When each node of a graph ran.

    Attributes
    ----------
    start_at, end_at : numpy.ndarray of float64
        Seconds from the start of the graph, indexed by node id.
    makespan : float
        Latest end time (0 for an empty graph).
    device_busy : dict of int to float
        Seconds of COMP work per device that has COMP nodes.
    link_bytes : dict of str to float
        Bytes carried per link class (``"dim0"``, ``"dim1"``, ..., ``"host"``),
        counting a representative's transfers ``multiplicity`` times.
    congestion : bool
        Whether the congestion-aware model produced it.
    unit_busy : dict of (int, int) to float
        Seconds of COMP work per ``(device, unit)`` for units other than 0
        (``device_busy`` counts unit 0 only).
    """

    start_at: np.ndarray
    end_at: np.ndarray
    makespan: float
    device_busy: dict[int, float]
    link_bytes: dict[str, float]
    congestion: bool = False
    unit_busy: dict = field(default_factory=dict)

    @property
    def durations(self) -> np.ndarray:
        """``end_at - start_at`` per node, seconds."""
        return self.end_at - self.start_at


def _check_real(name: str, value: Any, *, strict: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Network.{name} must be a finite number, got {value!r}")
    if value < 0 or (strict and value == 0):
        raise ValueError(f"Network.{name} must be {'>' if strict else '>='} 0, got {value}")


class _Flow:
    """A transfer in the congestion model: stages of (latency, resources, work)."""

    __slots__ = ("node", "kind", "stages", "stage", "remaining", "rate", "last", "version",
                 "links", "bundles", "host")

    def __init__(self, node: int, kind: str, stages: list) -> None:
        self.node = node
        self.kind = kind            # "send", "coll" or "host"
        self.stages = stages        # [(latency, resources, work)]
        self.stage = 0
        self.remaining = 0.0
        self.rate = 0.0
        self.last = 0.0
        self.version = 0
        self.links = ()
        self.bundles = ()
        self.host = None


class Network:
    """Executes execution graphs on a topology.

    Parameters
    ----------
    topology : Topology or str
        A topology, or a preset name / file path for :func:`load_topology`.
    congestion : bool
        Share link bandwidth between concurrent transfers (see the module
        docstring); False charges unloaded times.
    algorithms : None, str or dict
        Collective algorithms per dimension (see
        :class:`~llmsim_nb.network.collectives.CollectiveModel`).
    host_bandwidth : float
        Device <-> host memory bandwidth per direction, B/s.
    host_latency : float
        Fixed latency of one host transfer, seconds.
    """

    def __init__(self, topology: Topology | str, *, congestion: bool = False,
                 algorithms: Any = None, host_bandwidth: float = 512e9,
                 host_latency: float = 1e-6) -> None:
        if not isinstance(topology, Topology):
            topology = load_topology(topology)
        if not isinstance(congestion, bool):
            raise ValueError(f"Network.congestion must be a bool, got {congestion!r}")
        _check_real("host_bandwidth", host_bandwidth, strict=True)
        _check_real("host_latency", host_latency, strict=False)
        self.topology = topology
        self.congestion = congestion
        self.host_bandwidth = float(host_bandwidth)
        self.host_latency = float(host_latency)
        self.collectives = CollectiveModel(topology, algorithms)
        self._routes: dict[tuple[int, int], tuple] = {}
        self._rows: dict[tuple, tuple] = {}

    # ------------------------------------------------------------------ unloaded costs
    def _route(self, src: int, dst: int) -> tuple:
        """``(links, latency, bottleneck bandwidth, {class: hops})`` of ``src -> dst``, cached."""
        key = (src, dst)
        route = self._routes.get(key)
        if route is None:
            topo = self.topology
            links = topo.path(src, dst)
            classes: dict[str, int] = {}
            for link in links:
                c = topo.link_class(link)
                classes[c] = classes.get(c, 0) + 1
            route = (links, topo.path_latency(src, dst), topo.path_bandwidth(src, dst), classes)
            self._routes[key] = route
        return route

    def send_time(self, src: int, dst: int, size: float) -> float:
        """Unloaded SEND time: ``path latency + size / bottleneck bandwidth`` (0 if ``src == dst``)."""
        links, latency, bandwidth, _ = self._route(src, dst)
        return latency + size / bandwidth if links else 0.0

    def host_time(self, size: float) -> float:
        """Unloaded host transfer time: ``size / host_bandwidth + host_latency``."""
        return size / self.host_bandwidth + self.host_latency

    def _row_bundles(self, members: tuple[int, ...], dim: int) -> tuple:
        key = (members, dim)
        rows = self._rows.get(key)
        if rows is None:
            topo = self.topology
            rows = self._rows[key] = tuple(sorted({(dim, topo.row_base(m, dim)) for m in members}))
        return rows

    # ------------------------------------------------------------------ run
    def run(self, graph: ExecutionGraph) -> GraphSchedule:
        """Simulate ``graph``; see the module docstring for the rules.

        Returns
        -------
        GraphSchedule

        Raises
        ------
        ValueError
            A node on a device outside the topology, a negative or non-finite
            duration or size, a collective without a kind, an invalid group.
        """
        nodes = graph.nodes
        n = len(nodes)
        if n == 0:
            empty = np.zeros(0, dtype=np.float64)
            return GraphSchedule(empty, empty.copy(), 0.0, {}, {}, self.congestion)
        topo = self.topology
        num_devices = topo.num_devices
        mult = graph.multiplicity or {}
        congestion = self.congestion

        # ---- one pass over the nodes: validation, durations, successors, accounting
        succ: list[list[int]] = [[] for _ in range(n)]
        indeg = [0] * n
        dur = [0.0] * n
        device = [0] * n
        is_comp = [False] * n
        busy: dict[int, float] = {}
        unit_busy: dict[tuple[int, int], float] = {}
        link_bytes: dict[str, float] = {}
        flows_spec: dict[int, tuple] = {}   # congestion mode: node -> (kind, payload)
        for node in nodes:
            i = node.id
            dev = node.device
            if not 0 <= dev < num_devices:
                raise ValueError(f"node {i} ({node.name!r}) is on device {dev}, outside topology "
                                 f"{topo.name!r} with {num_devices} devices")
            device[i] = dev
            deps = node.data_deps
            if deps:
                indeg[i] = len(deps)
                for d in deps:
                    succ[d].append(i)
            t = node.type
            if t is _COMP:
                d = node.duration
                if not (d >= 0 and d < math.inf):
                    raise ValueError(f"node {i} ({node.name!r}) has duration={d!r}; it must be "
                                     f"a finite number of seconds >= 0")
                dur[i] = d
                is_comp[i] = True
                if node.unit:  # a second compute unit of the device: its own queue
                    device[i] = (dev, node.unit)
                    unit_busy[device[i]] = unit_busy.get(device[i], 0.0) + d
                else:
                    busy[dev] = busy.get(dev, 0.0) + d
                continue
            size = node.size
            if not (size >= 0 and size < math.inf):
                raise ValueError(f"node {i} ({node.name!r}) has size={size!r}; it must be a "
                                 f"finite number of bytes >= 0")
            if t is _COLL:
                if node.collective is None:
                    raise ValueError(f"collective node {i} ({node.name!r}) has no collective kind")
                group = node.group or (dev,)
                try:
                    cost = self.collectives.cost(node.collective, size, group)
                except ValueError as err:
                    raise ValueError(f"collective node {i} ({node.name!r}): {err}") from None
                dur[i] = cost.duration
                for c, b in cost.link_bytes.items():
                    link_bytes[c] = link_bytes.get(c, 0.0) + b
                if congestion and cost.duration > 0:
                    flows_spec[i] = ("coll", (cost, self.collectives.shape(group).members))
            elif t is _SEND:
                peer = node.peer
                if not 0 <= peer < num_devices:
                    raise ValueError(f"send node {i} ({node.name!r}) has peer={peer}, outside "
                                     f"topology {topo.name!r} with {num_devices} devices")
                links, latency, bandwidth, classes = self._route(dev, peer)
                if links:
                    dur[i] = latency + size / bandwidth
                    m = mult.get(dev, 1)
                    for c, hops in classes.items():
                        link_bytes[c] = link_bytes.get(c, 0.0) + size * hops * m
                    if congestion:
                        flows_spec[i] = ("send", (links, latency, size))
            elif t is _LOAD or t is _STORE:
                dur[i] = size / self.host_bandwidth + self.host_latency
                link_bytes["host"] = link_bytes.get("host", 0.0) + size * mult.get(dev, 1)
                if congestion:
                    flows_spec[i] = ("host", ("load" if t is _LOAD else "store", size))
            # RECV: zero time of its own.

        start = [0.0] * n
        end = [0.0] * n
        if congestion and flows_spec:
            self._simulate_congested(n, succ, indeg, dur, device, is_comp, start, end, flows_spec)
        else:
            _simulate_unloaded(n, succ, indeg, dur, device, is_comp, start, end)
        start_at = np.asarray(start, dtype=np.float64)
        end_at = np.asarray(end, dtype=np.float64)
        start_at.setflags(write=False)
        end_at.setflags(write=False)
        return GraphSchedule(start_at, end_at, float(end_at.max()), busy, link_bytes, congestion,
                             unit_busy)

    # ------------------------------------------------------------------ congestion
    def _simulate_congested(self, n, succ, indeg, dur, device, is_comp, start, end,
                            flows_spec) -> None:
        """Event loop with fluid link sharing (module docstring, "Congestion").

        Heap entries are ``(time, tag, id, version)``: tag 0 a node with a fixed
        duration ends, tag 1 a flow's stage has paid its latency and starts
        moving bytes, tag 2 a flow's stage is predicted to end (ignored when
        its version is stale because rates changed since).
        """
        topo = self.topology
        dims = topo.dimensions
        host_bw = self.host_bandwidth
        host_latency = self.host_latency
        heap: list = []
        push, pop = heapq.heappush, heapq.heappop
        queues: dict[int, list] = {}
        running: dict[int, bool] = {}
        touched: set = set()
        link_flows: dict[Any, set] = {}     # link -> SEND flows on it
        bundle_colls: dict[Any, set] = {}   # row bundle -> collective flows on it
        bundle_sends: dict[Any, set] = {}   # row bundle -> SEND flows on its links
        bundle_links: dict[Any, dict] = {}  # row bundle -> {link: active SENDs}
        host_flows: dict[Any, set] = {}     # (device, direction) -> host flows
        flows: dict[int, _Flow] = {}
        link_bundle: dict[Any, tuple] = {}
        capacity: dict[Any, float] = {}
        no_flows: set = set()

        def bundle_of(link):
            b = link_bundle.get(link)
            if b is None:
                b = link_bundle[link] = (link[0], topo.row_base(link[1], link[0]))
                capacity[link] = dims[link[0]].link_capacity
            return b

        def rate_of(f: _Flow) -> float:
            # SEND: bytes/s; host: bytes/s; collective: unloaded-seconds per second.
            if f.kind == "send":
                return min(capacity[l] / (len(link_flows[l])
                                          + len(bundle_colls.get(bundle_of(l), no_flows)))
                           for l in f.links)
            if f.kind == "host":
                return host_bw / len(host_flows[f.host])
            r = math.inf
            for b in f.bundles:
                per_link = bundle_links.get(b)
                busiest = max(per_link.values()) if per_link else 0
                r = min(r, 1.0 / (len(bundle_colls[b]) + busiest))
            return r

        def neighbours(f: _Flow) -> set:
            """Flows whose rate depends on how many flows hold ``f``'s resources."""
            out: set = set()
            if f.kind == "send":
                for l in f.links:
                    out |= link_flows.get(l, no_flows)
                    out |= bundle_colls.get(bundle_of(l), no_flows)
            elif f.kind == "host":
                out |= host_flows.get(f.host, no_flows)
            else:
                for b in f.bundles:
                    out |= bundle_colls.get(b, no_flows)
                    out |= bundle_sends.get(b, no_flows)
            return out

        def advance(ids, t):
            for fid in ids:
                g = flows[fid]
                g.remaining -= g.rate * (t - g.last)
                g.last = t

        def reschedule(ids, t):
            for fid in ids:
                g = flows[fid]
                g.rate = rate_of(g)
                g.version += 1
                left = g.remaining if g.remaining > 0 else 0.0
                push(heap, (t + left / g.rate, 2, fid, g.version))

        def attach(f: _Flow, t: float) -> None:
            _, resources, work = f.stages[f.stage]
            if work <= 0:
                push(heap, (t, 2, f.node, f.version))
                return
            if f.kind == "send":
                f.links = resources
            elif f.kind == "host":
                f.host = resources
            else:
                f.bundles = resources
            affected = neighbours(f)
            advance(affected, t)
            fid = f.node
            if f.kind == "send":
                for l in f.links:
                    b = bundle_of(l)
                    link_flows.setdefault(l, set()).add(fid)
                    bundle_sends.setdefault(b, set()).add(fid)
                    per_link = bundle_links.setdefault(b, {})
                    per_link[l] = per_link.get(l, 0) + 1
            elif f.kind == "host":
                host_flows.setdefault(f.host, set()).add(fid)
            else:
                for b in f.bundles:
                    bundle_colls.setdefault(b, set()).add(fid)
            f.remaining = work
            f.last = t
            affected.add(fid)
            reschedule(affected, t)

        def release(f: _Flow, t: float) -> None:
            if not (f.links or f.bundles or f.host is not None):
                return
            affected = neighbours(f)
            affected.discard(f.node)
            advance(affected, t)
            fid = f.node
            if f.kind == "send":
                for l in f.links:
                    b = bundle_of(l)
                    link_flows[l].discard(fid)
                    per_link = bundle_links[b]
                    per_link[l] -= 1
                    if per_link[l] == 0:
                        del per_link[l]
                    bundle_sends[b].discard(fid)
            elif f.kind == "host":
                host_flows[f.host].discard(fid)
            else:
                for b in f.bundles:
                    bundle_colls[b].discard(fid)
            f.links, f.bundles, f.host = (), (), None
            reschedule(affected, t)

        def make_ready(j: int, t: float) -> None:
            if is_comp[j]:
                dev = device[j]
                push(queues.setdefault(dev, []), (j, j))
                touched.add(dev)
                return
            start[j] = t
            spec = flows_spec.get(j)
            if spec is None:
                push(heap, (t + dur[j], 0, j, 0))
                return
            kind, payload = spec
            if kind == "send":
                links, latency, size = payload
                stages = [(latency, links, float(size))]
            elif kind == "host":
                direction, size = payload
                stages = [(host_latency, (device[j], direction), float(size))]
            else:
                cost, members = payload
                stages = [(ph.latency, self._row_bundles(members, ph.dim), ph.transfer)
                          for ph in cost.phases]
            f = flows[j] = _Flow(j, kind, stages)
            push(heap, (t + stages[0][0], 1, j, f.version))

        def node_done(i: int, t: float) -> None:
            end[i] = t
            if is_comp[i]:
                running[device[i]] = False
                touched.add(device[i])
            for j in succ[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    make_ready(j, t)

        for j in range(n):
            if indeg[j] == 0:
                make_ready(j, 0.0)
        t = 0.0
        while True:
            for dev in touched:
                if not running.get(dev):
                    q = queues.get(dev)
                    if q:
                        _, j = pop(q)
                        start[j] = t
                        running[dev] = True
                        push(heap, (t + dur[j], 0, j, 0))
            touched.clear()
            if not heap:
                break
            t = heap[0][0]
            while heap and heap[0][0] == t:
                _, tag, i, version = pop(heap)
                if tag == 0:
                    node_done(i, t)
                    continue
                f = flows[i]
                if version != f.version:
                    continue
                if tag == 1:
                    attach(f, t)
                    continue
                release(f, t)
                f.stage += 1
                f.version += 1
                if f.stage < len(f.stages):
                    push(heap, (t + f.stages[f.stage][0], 1, i, f.version))
                else:
                    node_done(i, t)


def _simulate_unloaded(n, succ, indeg, dur, device, is_comp, start, end) -> None:
    """Event loop with fixed durations: only compute units are contended.

    Events are ``(finish time, node id)``; all events of one instant are
    processed before idle devices pick their next COMP node, so ties go to
    the lowest id.
    """
    heap: list = []
    queues: dict[int, list] = {}
    running: dict[int, bool] = {}
    touched: set = set()
    push, pop = heapq.heappush, heapq.heappop

    for j in range(n):
        if indeg[j] == 0:
            if is_comp[j]:
                push(queues.setdefault(device[j], []), (j, j))
                touched.add(device[j])
            else:
                end[j] = dur[j]
                push(heap, (dur[j], j))
    t = 0.0
    while True:
        for dev in touched:
            if not running.get(dev):
                q = queues.get(dev)
                if q:
                    _, j = pop(q)
                    start[j] = t
                    e = t + dur[j]
                    end[j] = e
                    running[dev] = True
                    push(heap, (e, j))
        touched.clear()
        if not heap:
            break
        t = heap[0][0]
        while heap and heap[0][0] == t:
            _, i = pop(heap)
            if is_comp[i]:
                running[device[i]] = False
                touched.add(device[i])
            for j in succ[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    if is_comp[j]:
                        push(queues.setdefault(device[j], []), (j, j))
                        touched.add(device[j])
                    else:
                        start[j] = t
                        e = t + dur[j]
                        end[j] = e
                        push(heap, (e, j))


__all__ = ["GraphSchedule", "Network"]
