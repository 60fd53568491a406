"""The Azure LLM inference trace (2023): ``TIMESTAMP,ContextTokens,GeneratedTokens``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .trace import TraceError
from .trace_cells import _Columns, _parse_int, _where

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_AZURE_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?")
# datetime64[ns] holds 1677-09-21 .. 2262-04-11; outside it numpy wraps around silently.
_AZURE_YEARS = (1678, 2261)


def _parse_timestamps(path: Path, column: str, values: list[str], lines: list[int]) -> np.ndarray:
    low, high = _AZURE_YEARS
    for i, s in enumerate(values):
        if _AZURE_TS.fullmatch(s) is None:
            if not s:
                raise TraceError(
                    f"{path}: {_where(lines, i)}: column {column!r} = '' is empty; expected "
                    f"a timestamp 'YYYY-MM-DD HH:MM:SS[.fraction]'"
                )
            raise TraceError(
                f"{path}: {_where(lines, i)}: column {column!r} = {s!r} is not a timestamp; "
                f"expected 'YYYY-MM-DD HH:MM:SS[.fraction]'"
            )
        if not low <= int(s[:4]) <= high:
            raise TraceError(
                f"{path}: {_where(lines, i)}: column {column!r} = {s!r} is not a valid "
                f"date/time: the year must be between {low} and {high} (what nanosecond "
                f"timestamps can hold)"
            )
    try:
        stamps = np.array(values).astype("datetime64[ns]")
    except ValueError:
        for i, s in enumerate(values):
            try:
                np.datetime64(s, "ns")
            except ValueError as exc:
                raise TraceError(
                    f"{path}: {_where(lines, i)}: column {column!r} = {s!r} is not a valid "
                    f"date/time ({exc})"
                ) from None
        raise  # pragma: no cover - vectorised and scalar parsing disagree
    return stamps.astype(np.int64)


def _azure_columns(path: Path, cols: list[list[str]], lines: list[int]) -> _Columns:
    """The Azure cells (in :data:`AZURE_COLUMNS` order) parsed; arrivals still absolute."""
    names = AZURE_COLUMNS
    # Azure: TIMESTAMP, ContextTokens, GeneratedTokens
    arrival = _parse_timestamps(path, names[0], cols[0], lines)
    prompt = _parse_int(path, names[1], cols[1], lines, 1)
    output = _parse_int(path, names[2], cols[2], lines, 0)
    return _Columns(prompt, output, arrival, lines, (names[1], names[2], names[0]), True)
