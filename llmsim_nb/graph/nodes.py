"""Execution-graph nodes in the vocabulary of Chakra execution traces.

An :class:`ExecutionGraph` is what the graph converter builds from an
iteration's operator timings and what ``Network.run`` executes. Node kinds and
collective names follow Chakra (``COMP_NODE``, ``COMM_COLL_NODE`` with
``ALL_REDUCE``..., ``COMM_SEND_NODE`` / ``COMM_RECV_NODE``) plus memory nodes
(``MEM_LOAD_NODE`` / ``MEM_STORE_NODE``) for KV blocks moved to and from host
memory.

Symmetry. Devices that run identical work (the ranks of a tensor-parallel
group when attention heads are sharded) form an equivalence class; the graph
may hold nodes for one *representative* per class and record in
``ExecutionGraph.multiplicity`` how many devices it stands for. A collective
node still names its whole ``group``, so its cost is computed on the real
topology. ``Network.run`` gives the same makespan on the reduced graph as on
the full one (tested on small cases).

Invariants
----------
- Node ids are ``0..len(nodes)-1`` in insertion order, and every dependency
  id is smaller than the node's own id (the graph is built in topological
  order, so it is acyclic by construction).
- ``COMP_NODE``: ``duration >= 0`` seconds on ``device``; ``size == 0``.
- Communication and memory nodes: ``size >= 0`` bytes; their duration is the
  network's to compute.
- ``COMM_SEND_NODE`` on ``device`` pairs with the ``COMM_RECV_NODE`` on
  ``peer`` whose ``peer`` is the sender; the RECV depends on its SEND.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple


class NodeType(str, enum.Enum):
    COMP = "COMP_NODE"
    COMM_COLL = "COMM_COLL_NODE"
    COMM_SEND = "COMM_SEND_NODE"
    COMM_RECV = "COMM_RECV_NODE"
    MEM_LOAD = "MEM_LOAD_NODE"     # host memory -> device (KV reload)
    MEM_STORE = "MEM_STORE_NODE"   # device -> host memory (KV eviction)


class CollectiveType(str, enum.Enum):
    ALL_REDUCE = "ALL_REDUCE"
    ALL_GATHER = "ALL_GATHER"
    REDUCE_SCATTER = "REDUCE_SCATTER"
    ALL_TO_ALL = "ALL_TO_ALL"


class Node(NamedTuple):
    """One node of an execution graph (immutable; a named tuple because a
    graph of a few hundred nodes is built every iteration).

    Attributes
    ----------
    id : int
    name : str
        Human-readable, e.g. ``"L3.attn.mb0"``.
    type : NodeType
    device : int
        Device that runs it (COMP, LOAD/STORE), sends (SEND) or receives (RECV);
        for a collective, the group's representative.
    duration : float
        Seconds of compute (COMP only).
    size : float
        Bytes: the collective's buffer per device, the message of a SEND/RECV,
        the KV bytes of a LOAD/STORE.
    data_deps : tuple of int
        Ids of nodes that must finish first.
    collective : CollectiveType or None
    group : tuple of int
        Devices taking part in a collective.
    peer : int
        The other end of a SEND/RECV (-1 otherwise).
    layer, stage, micro_batch : int
        Where the node belongs (-1 if not applicable).
    op : str
        Operators a COMP node covers (``"input_norm..out_proj"``) or the op a
        communication follows.
    request_ids : tuple of int
        Requests whose attention a COMP node computes (selective batching).
    unit : int
        Compute unit of ``device`` a COMP node runs on: 0 the device's own
        (NPU), 1.. further units that run concurrently with it (a local PIM;
        a channel share of a pooled PIM device).
    """

    id: int
    name: str
    type: NodeType
    device: int
    duration: float = 0.0
    size: float = 0.0
    data_deps: tuple[int, ...] = ()
    collective: CollectiveType | None = None
    group: tuple[int, ...] = ()
    peer: int = -1
    layer: int = -1
    stage: int = -1
    micro_batch: int = -1
    op: str = ""
    request_ids: tuple[int, ...] = ()
    unit: int = 0


@dataclass
class ExecutionGraph:
    """Nodes in topological order, with the devices they may represent.

    Attributes
    ----------
    nodes : list of Node
    num_devices : int
        Devices in the system (not only those with nodes).
    multiplicity : dict of int to int
        For each device that has nodes, how many symmetric devices it stands
        for (1 everywhere in a full graph).
    classes : dict of int to tuple of int
        For each representative, the devices of its equivalence class (itself
        included); ``len(classes[d]) == multiplicity[d]``. Empty if unknown.
    """

    nodes: list[Node] = field(default_factory=list)
    num_devices: int = 1
    multiplicity: dict[int, int] = field(default_factory=dict)
    classes: dict[int, tuple[int, ...]] = field(default_factory=dict)

    def add(self, type: NodeType, name: str, device: int, deps=(), **fields) -> int:
        """Append a node; return its id. Dependencies must already exist."""
        node_id = len(self.nodes)
        # Most nodes have one dependency: skip the sort and the set for them.
        if not isinstance(deps, (list, tuple)):
            deps = list(deps)  # any iterable of ids
        count = len(deps)
        if count == 1:
            deps = (int(deps[0]),)
        elif count:
            deps = tuple(sorted({int(d) for d in deps}))
        else:
            deps = ()
        if deps and (deps[0] < 0 or deps[-1] >= node_id):
            raise ValueError(f"node {name!r} depends on ids {deps} not yet in the graph")
        self.nodes.append(Node(node_id, name, type, device, data_deps=deps, **fields))
        return node_id

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def devices(self) -> list[int]:
        """Devices that own at least one node, ascending."""
        return sorted({n.device for n in self.nodes} | {n.peer for n in self.nodes if n.peer >= 0})

    @property
    def is_reduced(self) -> bool:
        return any(m > 1 for m in self.multiplicity.values())

    def to_networkx(self):
        """A ``networkx.DiGraph`` with node attributes (for drawing and analysis)."""
        import networkx as nx

        g = nx.DiGraph()
        for n in self.nodes:
            g.add_node(n.id, name=n.name, type=n.type.value, device=n.device,
                       duration=n.duration, size=n.size,
                       collective=n.collective.value if n.collective else None,
                       stage=n.stage, layer=n.layer, micro_batch=n.micro_batch, op=n.op)
            g.add_edges_from((d, n.id) for d in n.data_deps)
        return g
