"""Fidelity: measured data, calibration of engines against it, validation of runs.

- Measured operator timings (our CSV, Vidur, LLMServingSim 2.0) are read by
  :mod:`llmsim_nb.engines.measurements`, below the engines, since the
  ``profiled`` engine times ops from them; re-exported here.
- :mod:`.calibration`: :func:`calibrate` fits an engine's efficiencies.
- :mod:`.validate`: compares a simulated run with measured requests and curves.
"""

from ..engines.measurements import Measurements, load_measurements
from .calibration import Calibration, calibrate
from .validate import compare_curves, compare_requests, load_measured_requests

__all__ = ["Calibration", "Measurements", "calibrate", "compare_curves", "compare_requests",
           "load_measured_requests", "load_measurements"]
