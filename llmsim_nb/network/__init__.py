"""Network / system simulation: topologies, collective costs and graph execution.

The analogue of ASTRA-sim's analytical "Hierarchical" backend in
LLMServingSim: :func:`load_topology` reads the seed network files (or their
presets), :func:`collective_time` prices a collective on a group of devices,
and :meth:`Network.run` executes an
:class:`~llmsim_nb.graph.nodes.ExecutionGraph` and returns a
:class:`GraphSchedule`.

Example
-------
>>> from llmsim_nb.network import Network, default_topology
>>> net = Network(default_topology(npu_num=8, npu_group=2))
"""

from .collectives import (ALGORITHMS, DEFAULT_ALGORITHMS, CollectiveCost, CollectiveModel, Phase,
                          collective_cost, collective_link_bytes, collective_time)
from .network import GraphSchedule, Network
from .topology import (Dimension, LinkId, Topology, default_topology, list_network_presets,
                       load_topology)

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHMS", "CollectiveCost", "CollectiveModel", "Dimension",
           "GraphSchedule", "LinkId", "Network", "Phase", "Topology", "collective_cost",
           "collective_link_bytes", "collective_time", "default_topology",
           "list_network_presets", "load_topology"]
