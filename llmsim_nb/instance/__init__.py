"""One serving instance: the iteration loop over the parts the system builder made.

- :class:`Instance` (:mod:`.instance`): ``submit(request)``, ``next_event_at``,
  ``step()``, ``run(until=...)``, ``results()``.
- :class:`Simulator` (:mod:`.simulator`): an instance with a whole trace given
  up front (the original's run).
- :mod:`.chain`: the shortcut that adds up chain graphs without building them.
- :mod:`.usage`: busy time per device and bytes per link, accumulated.
- :mod:`.fast_run`: the ``--fast_run`` reuse cache file around runs.
- :mod:`.checks`: argument checks and the errors of a loop that cannot go on.
"""

from .instance import Instance, SimulationFinished
from .simulator import Simulator

__all__ = ["Instance", "SimulationFinished", "Simulator"]
