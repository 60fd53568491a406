"""Request scheduling priority (:attr:`~.trace.Trace.priority`) in the seed trace files.

A seed TSV / CSV / JSONL trace may give each request a scheduling priority for
vLLM's ``scheduling_policy="priority"`` (lower is served first) in one more
column or key, ``priority``: an integer that fits int64 (any sign), written as
a whole number (``3``, ``-2``; not ``3.0``, ``1e3``, ``true`` or an empty
cell). A file without it gives a trace whose ``priority`` is None (every
request 0); a TSV / CSV header or a first JSONL line that has it needs it in
every row. A bad cell is refused with one line naming the file, the row and
line, the column or key, the value and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .trace_cells import _plain_digits, _where
from .trace_columns import MAX_PRIORITY, MIN_PRIORITY, TraceError
from .trace_seed import _decode

__all__ = ["PRIORITY_COLUMN", "priority_from_cells", "priority_from_jsonl"]

PRIORITY_COLUMN = "priority"
_INT = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: no '1_000', no '1.0'
_MAX_CHARS = len(str(MIN_PRIORITY))  # a sign and 19 digits
_ALLOWED = f"must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY} (int64; lower is served " \
           f"first)"


def _shown(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}... ({len(text)} characters)"


def priority_from_cells(path: Path, cells: list[str], lines: Sequence[int]) -> np.ndarray:
    """The ``priority`` cells of a TSV / CSV file (stripped), parsed and checked.

    Parameters
    ----------
    path : pathlib.Path
        The file, for messages.
    cells : list of str
        One cell per request row.
    lines : sequence of int
        The 1-based file line of each row, for messages.

    Returns
    -------
    numpy.ndarray
        ``int64``, one entry per row.

    Raises
    ------
    TraceError
        For an empty cell, one that is not a whole number, or one outside int64.
    """
    plain = _plain_digits(cells, 18)  # up to 18 digits: below 10**18, inside int64
    if plain is not None:
        return plain
    out = np.empty(len(cells), dtype=np.int64)
    for i, cell in enumerate(cells):
        if not cell:
            raise TraceError(f"{path}: {_where(lines, i)}: column {PRIORITY_COLUMN!r} = '' is "
                             f"empty; {_ALLOWED} (an empty cell is never read as 0)")
        # Leading zeros dropped and the length checked first: that spares int() a
        # 5,000-digit cell (Python refuses those with a message that names no file).
        digits = cell.lstrip("+-").lstrip("0") or "0"
        value = None
        if _INT.fullmatch(cell) is not None and len(digits) < _MAX_CHARS:
            value = -int(digits) if cell[0] == "-" else int(digits)
        if value is None or not MIN_PRIORITY <= value <= MAX_PRIORITY:
            raise TraceError(f"{path}: {_where(lines, i)}: column {PRIORITY_COLUMN!r} = "
                             f"{_shown(cell)!r}; {_ALLOWED}")
        out[i] = value
    return out


def priority_from_jsonl(path: Path, numbers: Sequence[int], texts: list[str]
                        ) -> np.ndarray | None:
    """The ``priority`` keys of a seed JSONL file's rows (``texts`` already read as requests).

    Parameters
    ----------
    path : pathlib.Path
        The file, for messages.
    numbers : sequence of int
        The 1-based file line of each row, for messages.
    texts : list of str
        The rows' JSON text, each already checked to be one JSON object.

    Returns
    -------
    numpy.ndarray or None
        ``int64``, one entry per row; None when row 1 has no ``priority`` key
        (and no other row has one).

    Raises
    ------
    TraceError
        If row 1 has the key and a later row does not, or the other way round,
        or a value is not a JSON integer inside int64 (``true``, ``1.0``,
        ``"1"`` and ``null`` are refused).
    """
    first = _decode(texts[0])
    if PRIORITY_COLUMN not in first:
        for i, text in enumerate(texts):
            if f'"{PRIORITY_COLUMN}"' in text and PRIORITY_COLUMN in _decode(text):
                raise TraceError(f"{path}: {_where(numbers, i)}: has key {PRIORITY_COLUMN!r} "
                                 f"but row 1 has none; either every row has it or none")
        return None
    out = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        obj = first if i == 0 else _decode(text)
        if PRIORITY_COLUMN not in obj:
            raise TraceError(f"{path}: {_where(numbers, i)}: missing key {PRIORITY_COLUMN!r}; "
                             f"row 1 has it, so every row needs it")
        value = obj[PRIORITY_COLUMN]
        if type(value) is not int or not MIN_PRIORITY <= value <= MAX_PRIORITY:
            raise TraceError(f"{path}: {_where(numbers, i)}: key {PRIORITY_COLUMN!r} = "
                             f"{_shown(repr(value))}; {_ALLOWED}")
        out[i] = value
    return out
