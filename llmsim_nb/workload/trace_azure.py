"""The Azure LLM inference trace (2023): ``TIMESTAMP,ContextTokens,GeneratedTokens``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .trace import TraceError
from .trace_cells import _Columns, _parse_int, _where

AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_AZURE_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?")
# datetime64[ns] holds 1677-09-21 .. 2262-04-11; outside it numpy wraps around silently.
_AZURE_YEARS = (1678, 2261)


# What _AZURE_TS asks of the first 19 characters: D a digit, S a space or 'T'.
_TEMPLATE = "DDDD-DD-DDSDD:DD:DD"


def _plain_timestamps(values: list[str]) -> bool:
    """Whether every cell fits :data:`_AZURE_TS` with a year in :data:`_AZURE_YEARS`.

    One vectorised pass over the joined column; False also for what merely needs a
    closer look (non-ASCII text), so a False answer means "check the cells one by one".
    """
    n = len(values)
    if not n or "" in values:
        return False
    joined = "\n".join(values)
    if not joined.isascii() or joined.count("\n") != n - 1:
        return False
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    if lengths.min() < 19 or lengths.max() > 29 or np.any(lengths == 20):
        return False
    buf = np.frombuffer(joined.encode("ascii"), dtype=np.uint8)
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    digit = (buf >= ord("0")) & (buf <= ord("9"))
    for pos, want in enumerate(_TEMPLATE):
        at = starts + pos
        if want == "D":
            ok = digit[at]
        elif want == "S":
            ok = (buf[at] == ord(" ")) | (buf[at] == ord("T"))
        else:
            ok = buf[at] == ord(want)
        if not ok.all():
            return False
    fraction = lengths > 19
    if np.any(buf[starts[fraction] + 19] != ord(".")):
        return False
    # Checked so far: 5 non-digits per cell, '.' in those with a fraction, and the n - 1
    # line breaks between cells. Any other non-digit is in a fraction: refused.
    if buf.size - np.count_nonzero(digit) != 6 * n - 1 + np.count_nonzero(fraction):
        return False
    year = sum((buf[starts + k].astype(np.int64) - ord("0")) * 10 ** (3 - k) for k in range(4))
    low, high = _AZURE_YEARS
    return bool(year.min() >= low and year.max() <= high)


def _parse_timestamps(path: Path, column: str, values: list[str], lines: Sequence[int]
                      ) -> np.ndarray:
    if _plain_timestamps(values):
        try:
            return np.array(values, dtype="datetime64[ns]").astype(np.int64)
        except ValueError:  # e.g. February 30th: the cells say which
            pass
    return _parse_timestamp_cells(path, column, values, lines)


def _parse_timestamp_cells(
    path: Path, column: str, values: list[str], lines: Sequence[int]
) -> np.ndarray:
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


def _azure_columns(path: Path, cols: list[list[str]], lines: Sequence[int]) -> _Columns:
    """The Azure cells (in :data:`AZURE_COLUMNS` order) parsed; arrivals still absolute."""
    names = AZURE_COLUMNS
    # Azure: TIMESTAMP, ContextTokens, GeneratedTokens
    arrival = _parse_timestamps(path, names[0], cols[0], lines)
    prompt = _parse_int(path, names[1], cols[1], lines, 1)
    output = _parse_int(path, names[2], cols[2], lines, 0)
    return _Columns(prompt, output, arrival, lines, (names[1], names[2], names[0]), True)
