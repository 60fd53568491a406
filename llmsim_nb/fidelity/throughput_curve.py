"""Throughput over time: the :class:`Curve`, read from a file or from a run.

See :mod:`.validate` for the file formats and what a bad file gets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..engines.measurements.csv_table import _read_table, _Table
from ..results.files import THROUGHPUT_INTERVAL, throughput_over_time
from .measured_requests import _times

#: Shortest curve interval accepted: the simulated curve is bucketed at the same interval.
MIN_CURVE_INTERVAL = 1e-3


@dataclass(frozen=True)
class Curve:
    """Throughput over time: ``start`` of each interval (s), prompt and generation
    tokens per second in it."""

    start: np.ndarray
    prompt: np.ndarray
    generation: np.ndarray
    interval: float = THROUGHPUT_INTERVAL


_CURVE_COLUMNS = ("time_duration", "prompt_throughput", "generation_throughput")


def load_throughput_curve(path: str | Path) -> Curve:
    """A throughput curve from the original's Fig. 6 CSV (``time duration`` = interval
    start) or our ``-throughput.tsv`` (``time_duration`` = interval end).

    Times must be finite, increase in even steps (the interval, at least
    :data:`MIN_CURVE_INTERVAL` s) and start at 0 (interval starts) or at one
    interval (interval ends); throughputs must be finite and >= 0, and not all
    zero. Anything else is a one-line ``ValueError`` (see the module docstring).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"throughput curve {str(path)!r} does not exist")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    raw = _read_table(path, "throughput curve", sep)
    names = tuple(c.replace(" ", "_") for c in raw.header)
    duplicates = sorted({c for c in names if c and names.count(c) > 1})
    if duplicates:
        raise ValueError(f"{path}: columns {list(raw.header)} name {duplicates} twice")
    table = _Table(raw.origin, names, raw.rows, raw.lines)
    if not set(_CURVE_COLUMNS) <= set(names):
        raise ValueError(f"throughput curve {str(path)!r} needs columns "
                         f"{sorted(_CURVE_COLUMNS)}, has {list(names)}")
    t = _times(table, "time_duration")
    values = {}
    for name in _CURVE_COLUMNS[1:]:
        out = np.empty(len(table))
        for i in range(len(table)):
            value = table.cell(i, name)
            x = table.number(i, name, value)
            if not math.isfinite(x) or x < 0:
                raise table.fail(i, name, value, "must be a finite number of tokens/s >= 0")
            out[i] = x
        values[name] = out
    steps = np.diff(t)
    back = np.flatnonzero(steps <= 0)
    if back.size:
        i = int(back[0]) + 1
        raise table.fail(i, "time_duration", table.cell(i, "time_duration"),
                         f"does not increase (after {table.cell(i - 1, 'time_duration')!r}); "
                         "times must increase in even steps")
    interval = float(np.median(steps)) if len(t) > 1 else THROUGHPUT_INTERVAL
    if interval < MIN_CURVE_INTERVAL:
        raise ValueError(f"{path}: the time_duration step is {interval!r} s; intervals must be "
                         f">= {MIN_CURVE_INTERVAL} s (the simulated curve is bucketed the same)")
    uneven = np.flatnonzero(np.abs(steps - steps[0]) > 1e-3 * steps[0]) if len(steps) else []
    if len(uneven):
        i = int(uneven[0]) + 1
        raise table.fail(i, "time_duration", table.cell(i, "time_duration"),
                         f"is {steps[i - 1]:g} s after the previous row, but the first step is "
                         f"{steps[0]:g} s; times must increase in even steps (no missing or "
                         "extra rows)")
    if t[0] != 0 and not math.isclose(t[0], interval, rel_tol=1e-3):
        raise table.fail(0, "time_duration", table.cell(0, "time_duration"),
                         f"must be 0 (times are interval starts) or {interval:g} (interval "
                         "ends); a curve must begin at the start of the run")
    prompt, generation = values["prompt_throughput"], values["generation_throughput"]
    if not (prompt.any() or generation.any()):
        raise ValueError(f"{path}: prompt and generation throughput are 0 in all {len(t)} "
                         "intervals; errors relative to an all-zero curve are undefined")
    start = t if t[0] == 0 else t - interval  # interval ends (ours) -> starts
    return Curve(start, prompt, generation, interval)


def simulated_curve(ds: xr.Dataset, interval: float = THROUGHPUT_INTERVAL) -> Curve:
    """The throughput curve of a run Dataset."""
    ends, prompt, generation = throughput_over_time(ds, interval)
    return Curve(ends - interval, prompt, generation, interval)
