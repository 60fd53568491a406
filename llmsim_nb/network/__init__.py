"""Network / system simulation: topologies, collective costs and graph execution.

The analogue of ASTRA-sim's analytical "Hierarchical" backend in
LLMServingSim: :func:`load_topology` reads the seed network files (or their
presets), :func:`collective_time` prices a collective on a group of devices,
and :meth:`Network.run` executes an
:class:`~llmsim_nb.graph.nodes.ExecutionGraph` and returns a
:class:`GraphSchedule`.

Modules
-------
- :mod:`.topology`: the topology data model (numbering, routing, links);
- :mod:`.topology_files`: presets, the default and :func:`load_topology`, with the
  formats in :mod:`.topology_json` (ASTRA-sim) and :mod:`.topology_yaml` (ours) and
  strict parsing (duplicate keys, typed values) in :mod:`.topology_parsing`;
- :mod:`.interconnect`: GPU interconnect presets (NVLink, PCIe);
- :mod:`.groups`, :mod:`.phases`, :mod:`.collectives`: collective groups,
  per-dimension algorithms and the hierarchical collective cost;
- :mod:`.network`: :class:`Network`, which prices and runs a graph;
- :mod:`.event_loop`: the one discrete-event loop behind :meth:`Network.run`;
- :mod:`.link_model`, :mod:`.fair_share`: how concurrent transfers share
  links (:class:`UnloadedLinks`, :class:`FairShareLinks`);
- :mod:`.schedule`: :class:`GraphSchedule`, the result of a run.

Example
-------
>>> from llmsim_nb.network import Network, default_topology
>>> net = Network(default_topology(npu_num=8, npu_group=2))
"""

from .alpha_beta import CollectiveLatency
from .collectives import CollectiveCost, CollectiveModel, collective_cost, collective_link_bytes, \
    collective_time
from .fair_share import FairShareLinks
from .link_model import LinkModel, UnloadedLinks
from .network import Network
from .phases import ALGORITHMS, DEFAULT_ALGORITHMS, Phase
from .schedule import GraphSchedule
from .topology import Dimension, LinkId, Topology
from .topology_files import default_topology, list_network_presets, load_topology

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHMS", "CollectiveCost", "CollectiveLatency",
           "CollectiveModel", "Dimension",
           "FairShareLinks", "GraphSchedule", "LinkId", "LinkModel", "Network", "Phase",
           "Topology", "UnloadedLinks", "collective_cost", "collective_link_bytes",
           "collective_time", "default_topology", "list_network_presets", "load_topology"]
