"""Design-space sweeps: every point a full simulation, in Dask workers.

- :mod:`.sweep`: :func:`sweep` (axes or points -> one Dataset).
- :mod:`.spec`: the sweep YAML file.
- :mod:`.checks`: what a sweep refuses before it runs (repeated axis values,
  values that are the same setting once read, unguarded script code).
"""

from .sweep import SweepWarning, run_point, sweep

__all__ = ["SweepWarning", "run_point", "sweep"]
