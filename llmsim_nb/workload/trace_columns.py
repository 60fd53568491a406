"""The checked columns of a :class:`~.trace.Trace`, its error type and its bounds.

Split from :mod:`.trace` so that modules the trace depends on (such as
:mod:`.content`) can raise :class:`TraceError` without importing the trace.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_ARRIVAL_S", "MAX_PRIORITY", "MAX_TOKENS", "MIN_PRIORITY", "TraceError",
           "UnsortedTraceError"]


#: Largest token count a request may hold (fits an int32; no real prompt is near it).
MAX_TOKENS = 2**31 - 1
#: Arrivals (seconds after 0) must be below this: about 3.2 years. Unix-epoch
#: nanoseconds of any date after March 1973 exceed it, and the results' 0.5-s
#: throughput buckets over such a span would not fit in memory.
MAX_ARRIVAL_S = 1e8
#: Smallest and largest scheduling priority of a request (int64; lower is served first).
MIN_PRIORITY = -(2**63)
MAX_PRIORITY = 2**63 - 1


class TraceError(ValueError):
    """A trace (file or in-memory arrays) is malformed.

    The message names the source, the field or column, the offending value
    (with its row when known) and what is allowed.
    """


class UnsortedTraceError(TraceError):
    """A trace file's arrivals go backwards (``load_trace(..., sort=True)`` sorts them)."""


def _int_column(name: str, values: object, minimum: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise TraceError(f"Trace.{name} must be a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TraceError(
            f"Trace.{name} must have an integer dtype (int64), got dtype {arr.dtype}"
        )
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise TraceError(f"Trace.{name} has values that do not fit in int64")
    arr = arr.astype(np.int64, copy=True)
    bad = np.flatnonzero(arr < minimum)
    if bad.size:
        i = int(bad[0])
        raise TraceError(
            f"Trace.{name}[{i}] = {int(arr[i])}; must be >= {minimum}"
        )
    bad = np.flatnonzero(arr > MAX_TOKENS)
    if bad.size:
        i = int(bad[0])
        raise TraceError(
            f"Trace.{name}[{i}] = {int(arr[i])}; must be <= {MAX_TOKENS} (2**31 - 1) tokens"
        )
    arr.setflags(write=False)
    return arr


def _arrival_column(values: object) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise TraceError(f"Trace.arrival_at must be a 1-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "iuf":
        raise TraceError(
            f"Trace.arrival_at must have a real dtype (float64 seconds), got dtype {arr.dtype}"
        )
    arr = arr.astype(np.float64, copy=True)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        raise TraceError(f"Trace.arrival_at[{i}] = {float(arr[i])!r}; must be finite seconds")
    bad = np.flatnonzero(arr < 0.0)
    if bad.size:
        i = int(bad[0])
        raise TraceError(f"Trace.arrival_at[{i}] = {float(arr[i])!r}; must be >= 0 seconds")
    bad = np.flatnonzero(arr >= MAX_ARRIVAL_S)
    if bad.size:
        i = int(bad[0])
        raise TraceError(
            f"Trace.arrival_at[{i}] = {float(arr[i])!r} s; must be below {MAX_ARRIVAL_S:g} s "
            f"(about 3 years): is it a Unix-epoch timestamp? Subtract the first arrival")
    bad = np.flatnonzero(np.diff(arr) < 0.0)
    if bad.size:
        i = int(bad[0]) + 1
        raise TraceError(
            f"Trace.arrival_at[{i}] = {float(arr[i])!r} is earlier than arrival_at[{i - 1}] = "
            f"{float(arr[i - 1])!r}; arrivals must be non-decreasing"
        )
    arr.setflags(write=False)
    return arr


def _priority_column(values: object) -> np.ndarray:
    """The ``priority`` column checked: 1-D integers that fit int64, as a read-only copy."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise TraceError(f"Trace.priority must be a 1-D array or None, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise TraceError(f"Trace.priority must have an integer dtype (int64; not bool), got "
                         f"dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > MAX_PRIORITY:
        i = int(np.argmax(arr > MAX_PRIORITY))
        raise TraceError(f"Trace.priority[{i}] = {int(arr[i])}; must fit int64 "
                         f"({MIN_PRIORITY} to {MAX_PRIORITY})")
    arr = arr.astype(np.int64, copy=True)
    arr.setflags(write=False)
    return arr
