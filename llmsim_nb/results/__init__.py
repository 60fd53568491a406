"""Results: per-iteration records, the xarray Datasets and files written from them.

- :mod:`.dataset`: the variables (units, long names), the per-iteration
  recorder, the step and run Datasets, :func:`summarize`.
- :mod:`.files`: the original's TSV reports, per-request CSV, netCDF.
- :mod:`.timeline`: step and run timelines as Chrome / Perfetto trace-event JSON.
"""

from .dataset import (COMPONENTS, ITERATION_VARS, SIMULATION_EFFORT_VARS, VARIABLES,
                      IterationRecord, Recorder, iteration_dataset, request_variables, summarize)
from .files import throughput_over_time, write_outputs
from .timeline import MAX_REQUEST_TRACKS, to_trace_events, write_trace_events

__all__ = ["COMPONENTS", "ITERATION_VARS", "IterationRecord", "MAX_REQUEST_TRACKS", "Recorder",
           "SIMULATION_EFFORT_VARS", "VARIABLES", "iteration_dataset", "request_variables",
           "summarize", "throughput_over_time", "to_trace_events", "write_outputs",
           "write_trace_events"]
