"""The system: what one serving instance is made of, and the builder that assembles it.

- :mod:`.builder`: :func:`build_instance` (config -> :class:`InstanceParts`)
  and :func:`choose_topology`.
- :mod:`.memory_plan`: weights, activation reserve and KV cache per device.
- :mod:`.pim`: where the PIM devices are and the KV cache they hold.
"""

from .builder import InstanceParts, build_instance, choose_topology
from .memory_plan import MemoryPlan
from .pim import PIMSystem

__all__ = ["InstanceParts", "MemoryPlan", "PIMSystem", "build_instance", "choose_topology"]
