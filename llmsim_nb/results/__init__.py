"""Results: per-iteration records, the xarray Datasets and files written from them.

- :mod:`.variables`: every variable's units and long name, and how one is made;
- :mod:`.recorder`: the per-iteration record and the buffers a run keeps;
- :mod:`.dataset`: the step and run Datasets (and the names above, importable there).
- :mod:`.metrics`: :func:`summarize` (headline figures, vLLM benchmark_serving
  definitions, goodput under SLOs) and :func:`metric_definitions`.
- :mod:`.files`: the original's TSV reports, per-request CSV, netCDF.
- :mod:`.timeline`: step and run timelines as Chrome / Perfetto trace-event JSON.

Names are imported on first use, so that recording a run needs no xarray
until a Dataset is built (the CLI's summary never builds one).
"""

import importlib

_EXPORTS = {
    "COMPONENTS": "variables", "ITERATION_VARS": "variables",
    "SIMULATION_EFFORT_VARS": "variables", "VARIABLES": "variables", "ArrayResults": "dataset",
    "IterationRecord": "recorder", "Recorder": "recorder", "iteration_dataset": "dataset", "request_variables": "dataset",
    "METRIC_UNITS": "metrics", "metric_definitions": "metrics", "summarize": "metrics",
    "throughput_over_time": "files", "write_outputs": "files",
    "MAX_REQUEST_TRACKS": "timeline", "to_trace_events": "timeline",
    "write_trace_events": "timeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmsim_nb.results' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
