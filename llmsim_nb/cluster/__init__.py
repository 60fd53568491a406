"""A serving cluster: instances behind a router, on one clock.

- :mod:`.spec`: :class:`ClusterConfig` (instance groups, router, staleness)
  and its YAML file;
- :mod:`.instance_state`, :mod:`.pool_view`, :mod:`.state_board`: what a router sees of an
  instance, and when;
- :mod:`.router`, :mod:`.routers`: the router base class and registry (as engines
  have), and the registered routers;
- :mod:`.submission`: the checks of submitted requests (order, fit), before anything runs;
- :mod:`.next_events`: every instance's next event, kept while events run in time order;
- :mod:`.disaggregation`: prefill and decode pools, the KV handoff between them;
- :mod:`.cluster`: :class:`Cluster`, ``step()`` / ``run()``;
- :mod:`.results`: the run's Dataset (dims ``iteration``, ``request``, ``instance``).
"""

from .cluster import Cluster
from .instance_state import InstanceState
from .router import ROUTERS, Router, get_router, register_router
from . import routers  # noqa: F401  (registers the built-in routers)
from .spec import (ClusterConfig, InstanceGroup, cluster_config_from_description,
                   cluster_config_from_dict, load_cluster_config)

__all__ = ["ROUTERS", "Cluster", "ClusterConfig", "InstanceGroup", "InstanceState", "Router",
           "cluster_config_from_description", "cluster_config_from_dict", "get_router",
           "load_cluster_config", "register_router"]
