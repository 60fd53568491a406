"""The network: runs an :class:`~llmsim_nb.graph.nodes.ExecutionGraph` on a topology.

:class:`Network` plays the role of ASTRA-sim's system layer with its
analytical network backend: it runs the nodes of one iteration's execution
graph on a :class:`~llmsim_nb.network.topology.Topology` and returns when each
node started and finished (a :class:`~llmsim_nb.network.schedule.GraphSchedule`).
This module prices each node and validates the graph; the event loop that
orders the nodes is :mod:`.event_loop`.

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

Link models
-----------
Everything above is the unloaded time of a node. How concurrent transfers
interact is the run's :class:`~llmsim_nb.network.link_model.LinkModel`:
``congestion=False`` (:class:`~llmsim_nb.network.link_model.UnloadedLinks`)
charges every transfer its unloaded time (fast; use it for sweeps);
``congestion=True`` (:class:`~llmsim_nb.network.fair_share.FairShareLinks`)
shares link bandwidth fairly between concurrent transfers (fluid
processor sharing; see :mod:`.fair_share`). Both run on the same event loop,
:func:`~llmsim_nb.network.event_loop.execute`.

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

import math
from typing import Any

import numpy as np

from ..graph.nodes import ExecutionGraph, NodeType
from .collectives import CollectiveModel
from .event_loop import execute
from .fair_share import FairShareLinks
from .link_model import LinkModel, UnloadedLinks
from .schedule import GraphSchedule
from .topology import Topology
from .topology_files import load_topology

_COMP = NodeType.COMP
_COLL = NodeType.COMM_COLL
_SEND = NodeType.COMM_SEND
_RECV = NodeType.COMM_RECV
_LOAD = NodeType.MEM_LOAD
_STORE = NodeType.MEM_STORE


def _check_real(name: str, value: Any, *, strict: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"Network.{name} must be a finite number, got {value!r}")
    if value < 0 or (strict and value == 0):
        raise ValueError(f"Network.{name} must be {'>' if strict else '>='} 0, got {value}")


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

    @property
    def link_model(self) -> type[LinkModel]:
        """The :class:`~llmsim_nb.network.link_model.LinkModel` class :meth:`run` uses.

        :class:`~llmsim_nb.network.fair_share.FairShareLinks` when
        :attr:`congestion` is True, else
        :class:`~llmsim_nb.network.link_model.UnloadedLinks`; read at every run.
        """
        return FairShareLinks if self.congestion else UnloadedLinks

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
        model = self.link_model
        # A link model that shares bandwidth needs to know every transfer's
        # resources; the unloaded one does not, so skip building them.
        congestion = model.congestion

        # ---- one pass over the nodes: validation, durations, successors, accounting
        succ: list[list[int]] = [[] for _ in range(n)]
        indeg = [0] * n
        dur = [0.0] * n
        device = [0] * n
        is_comp = [False] * n
        busy: dict[int, float] = {}
        unit_busy: dict[tuple[int, int], float] = {}
        link_bytes: dict[str, float] = {}
        transfers: dict[int, tuple] = {}    # node -> (kind, payload), see .link_model
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
                    transfers[i] = ("coll", (cost, self.collectives.shape(group).members))
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
                        transfers[i] = ("send", (links, latency, size))
            elif t is _LOAD or t is _STORE:
                dur[i] = size / self.host_bandwidth + self.host_latency
                link_bytes["host"] = link_bytes.get("host", 0.0) + size * mult.get(dev, 1)
                if congestion:
                    transfers[i] = ("host", ("load" if t is _LOAD else "store", size))
            # RECV: zero time of its own.

        start, end = execute(succ, indeg, dur, device, is_comp, model(self, transfers, device))
        start_at = np.asarray(start, dtype=np.float64)
        end_at = np.asarray(end, dtype=np.float64)
        start_at.setflags(write=False)
        end_at.setflags(write=False)
        return GraphSchedule(start_at, end_at, float(end_at.max()), busy, link_bytes, congestion,
                             unit_busy)


# GraphSchedule lives in .schedule; it stays importable from here, where it used to be.
__all__ = ["GraphSchedule", "Network"]
