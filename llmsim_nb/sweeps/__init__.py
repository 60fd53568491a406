"""Design-space sweeps: every point a full simulation, in Dask workers.

- :mod:`.sweep`: :func:`sweep` (axes or points -> one Dataset).
- :mod:`.spec`: the sweep YAML file.
"""

from .sweep import SweepWarning, run_point, sweep

__all__ = ["SweepWarning", "run_point", "sweep"]
