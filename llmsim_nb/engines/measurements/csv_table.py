"""Strict reading of delimited text tables (and DataFrames) cell by cell.

:func:`_read_table` parses a whole file into a :class:`_Table` and refuses bad
structure (not UTF-8, empty, no rows, duplicate columns, ragged rows); the
table's methods then read each cell as text, a number, a positive number, a
bounded integer or a boolean, refusing anything else with one ``ValueError``
line naming the file, the row and line, the column and the value. Used by the
measurement readers (:mod:`.loading`) and by
:mod:`llmsim_nb.fidelity.validate`.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

#: Largest token count (``num_tokens``, ``context``, ``input``, ``kv_cache``) a file may hold.
MAX_TOKENS = 2**31 - 1
#: Largest shape (matrix side, element count, TP degree) a file may hold: exact in float64.
MAX_SHAPE = 2**53
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NONFINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


def _open_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``, or a one-line ValueError naming it."""
    if not path.exists():
        raise ValueError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a directory, expected a file")
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{what} {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                         f"offset {exc.start}); expected a {what} in text form, not binary or "
                         "compressed data") from None


@dataclass(frozen=True)
class _Table:
    """Raw cells of a delimited text file (or a DataFrame), with what messages need."""

    origin: str  # the file path (or "measurements 'name'") that messages start with
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]  # stripped cells; "" is an empty cell
    lines: tuple[int, ...] | None  # 1-based line of each row; None for a DataFrame

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, i: int) -> str:
        return f"row {i + 1} (line {self.lines[i]})" if self.lines else f"row {i + 1}"

    def fail(self, i: int, column: str, value: str, allowed: str) -> ValueError:
        return ValueError(f"{self.origin}: {self.where(i)}: column {column!r} = {value!r} "
                          f"{allowed}")

    def require(self, columns, what: str) -> None:
        missing = [c for c in columns if c not in self.header]
        if missing:
            raise ValueError(f"{self.origin}: missing column(s) {missing} of {what}; found "
                             f"columns {list(self.header)}; required: {list(columns)}")

    def cell(self, i: int, column: str) -> str:
        return self.rows[i][self.header.index(column)]

    def column(self, column: str) -> list[str]:
        j = self.header.index(column)
        return [row[j] for row in self.rows]

    def text(self, i: int, column: str) -> str:
        value = self.cell(i, column)
        if not value:
            raise self.fail(i, column, value, "is empty; every row needs a value here")
        return value

    def number(self, i: int, column: str, value: str | None = None) -> float:
        """Any real number written in decimal notation (NaN and inf included)."""
        value = self.cell(i, column) if value is None else value
        if _NUMBER.fullmatch(value) is None and _NONFINITE.fullmatch(value) is None:
            if not value:
                raise self.fail(i, column, value, "is empty; every row needs a number here "
                                "(an empty cell is never read as 0)")
            raise self.fail(i, column, value, "is not a number")
        return float(value)

    def positive(self, i: int, column: str, unit: str) -> float:
        value = self.cell(i, column)
        x = self.number(i, column, value)
        if not math.isfinite(x) or x <= 0:
            raise self.fail(i, column, value, f"must be a finite number of {unit} > 0")
        return x

    def integer(self, i: int, column: str, minimum: int, maximum: int = MAX_TOKENS,
                what: str = "a whole number") -> int:
        value = self.cell(i, column)
        if _INTEGER.fullmatch(value):
            n = int(value)
        else:
            x = self.number(i, column, value)
            if not math.isfinite(x) or x != math.floor(x) or abs(x) > MAX_SHAPE:
                raise self.fail(i, column, value, f"is not {what}; allowed: integers "
                                f"{minimum} .. {maximum} (fractions are refused, never "
                                "truncated)")
            n = int(x)
        if not minimum <= n <= maximum:
            raise self.fail(i, column, value, f"is out of range; allowed: integers {minimum} "
                            f".. {maximum}")
        return n

    def integers(self, column: str, minimum: int, maximum: int = MAX_TOKENS,
                 what: str = "a whole number") -> list[int]:
        """:meth:`integer` of every row (a fast path for plain integer literals)."""
        j, out = self.header.index(column), []
        for i, row in enumerate(self.rows):
            value = row[j]
            if _INTEGER.fullmatch(value) and minimum <= int(value) <= maximum:
                out.append(int(value))
            else:
                out.append(self.integer(i, column, minimum, maximum, what))
        return out

    def positives(self, column: str, unit: str) -> list[float]:
        """:meth:`positive` of every row."""
        j, out = self.header.index(column), []
        for i, row in enumerate(self.rows):
            value = row[j]
            x = float(value) if _NUMBER.fullmatch(value) else math.nan
            out.append(x if 0 < x < math.inf else self.positive(i, column, unit))
        return out

    def boolean(self, i: int, column: str) -> bool:
        value = self.cell(i, column)
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise self.fail(i, column, value, "is not a boolean; allowed: True, False, 1, 0")


def _read_table(path: Path, what: str, delimiter: str = ",") -> _Table:
    """Parse a delimited text file whole: header, rows, line numbers; refuse bad structure."""
    text = _open_text(path, what)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    line = 0
    try:
        for record in reader:
            first, line = line + 1, reader.line_num
            if len(record) > 1 or (record and record[0].strip()):  # skip blank lines only
                records.append((first, [cell.strip() for cell in record]))
    except csv.Error as exc:
        raise ValueError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
    if not records:
        raise ValueError(f"{path}: file is empty; expected a header line and rows of a {what}")
    (header_line, header), body = records[0], records[1:]
    named = [h for h in header if h]
    duplicates = sorted({h for h in named if named.count(h) > 1})
    if duplicates:
        raise ValueError(f"{path}: line {header_line}: duplicate column(s) {duplicates}")
    if not body:
        raise ValueError(f"{path}: has a header but no data rows (0 rows); a {what} needs at "
                         "least one")
    for k, (n, row) in enumerate(body):
        if len(row) != len(header):
            raise ValueError(f"{path}: row {k + 1} (line {n}): has {len(row)} fields, the "
                             f"header has {len(header)} ({header})")
    return _Table(str(path), tuple(header), tuple(tuple(r) for _, r in body),
                  tuple(n for n, _ in body))


def _frame_cell(value) -> str:
    """A DataFrame value as the text a CSV would hold ("" for a missing value)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value).strip()


def _frame_table(frame: pd.DataFrame, origin: str) -> _Table:
    header = tuple(str(c) for c in frame.columns)
    rows = tuple(tuple(_frame_cell(v) for v in rec) for rec in frame.itertuples(index=False))
    return _Table(origin, header, rows, None)


def _prefixed(table: _Table, i: int, column: str, value: str, exc: ValueError) -> ValueError:
    return ValueError(f"{table.origin}: {table.where(i)}: column {column!r} = {value!r}: {exc}")
