"""Fidelity: measured data, calibration of engines against it, validation of runs.

- :mod:`.measurements`: measured operator timings (our CSV, Vidur, LLMServingSim 2.0).
- :mod:`.calibration`: :func:`calibrate` fits an engine's efficiencies.
- :mod:`.validate`: compares a simulated run with measured requests and curves.
"""

from .calibration import Calibration, calibrate
from .measurements import Measurements, load_measurements
from .validate import compare_curves, compare_requests, load_measured_requests

__all__ = ["Calibration", "Measurements", "calibrate", "compare_curves", "compare_requests",
           "load_measured_requests", "load_measurements"]
