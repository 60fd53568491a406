"""Measured operator timings: the tables the ``profiled`` engine and calibration read.

- :mod:`.loading`: :func:`load_measurements` (the format from the file) and the schema.
- :mod:`.rows`: the data model (:class:`Measurement`, :class:`Measurements`).
- :mod:`.ours`, :mod:`.vidur`, :mod:`.llmcompass`, :mod:`.perf_model`: one format each.
- :mod:`.csv_table`: the strict CSV reader they share (and ``fidelity`` uses).
"""

from .loading import (ATTENTION, Measurement, Measurements, from_rows, load_llmcompass,
                      load_measurements, load_perf_model, load_vidur)

__all__ = ["ATTENTION", "Measurement", "Measurements", "from_rows", "load_llmcompass",
           "load_measurements", "load_perf_model", "load_vidur"]
