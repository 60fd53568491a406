"""Results: per-iteration records, the xarray Datasets and files written from them.

- :mod:`.dataset`: the variables (units, long names), the per-iteration
  recorder, the step and run Datasets, :func:`summarize`.
- :mod:`.files`: the original's TSV reports, per-request CSV, netCDF.
"""

from .dataset import (COMPONENTS, ITERATION_VARS, SIMULATION_EFFORT_VARS, VARIABLES,
                      IterationRecord, Recorder, iteration_dataset, request_variables, summarize)
from .files import throughput_over_time, write_outputs

__all__ = ["COMPONENTS", "ITERATION_VARS", "IterationRecord", "Recorder",
           "SIMULATION_EFFORT_VARS", "VARIABLES", "iteration_dataset", "request_variables",
           "summarize", "throughput_over_time", "write_outputs"]
