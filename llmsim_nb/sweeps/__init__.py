"""Design-space sweeps: every point a full simulation, in Dask workers.

- :mod:`.sweep`: :func:`sweep` (axes or points -> one Dataset).
- :mod:`.cluster_sweep`: :func:`cluster_sweep` (cluster shapes -> one Dataset).
- :mod:`.execution`: what both share (running points, result files, failures).
- :mod:`.spec`: the sweep YAML file.
- :mod:`.checks`: what a sweep refuses before it runs (repeated axis values,
  values that are the same setting once read, unguarded script code).
"""

from .cluster_sweep import cluster_sweep, run_cluster_point
from .sweep import SweepWarning, run_point, sweep

__all__ = ["SweepWarning", "cluster_sweep", "run_cluster_point", "run_point", "sweep"]
