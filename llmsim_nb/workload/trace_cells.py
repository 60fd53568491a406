"""Strict reading of trace-file cells: lines, whole numbers, times, value ranges.

The pieces every trace format shares (see :mod:`.loaders` for what is refused):
the file's text split into numbered non-blank lines, cell parsers that refuse
anything but the exact form allowed, the parsed :class:`_Columns` and the
range checks run on them before a :class:`~.trace.Trace` is built.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .trace import MAX_ARRIVAL_S, MAX_TOKENS, TraceError

_INT = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: no '1_000', no '1.0', no other scripts
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NONFINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class _Columns:
    """Parsed, not yet range-checked columns plus what is needed for messages."""

    prompt: np.ndarray  # int64
    output: np.ndarray  # int64
    arrival_ns: np.ndarray  # int64 or float64 nanoseconds
    lines: Sequence[int]  # 1-based file line of each row
    names: tuple[str, str, str]  # column names for prompt, output, arrival
    relative: bool  # rebase arrivals on the first request


def _where(cols_lines: Sequence[int], i: int) -> str:
    return f"row {i + 1} (line {cols_lines[i]})"


def _read_lines(path: Path) -> tuple[Sequence[int], list[str]]:
    """The non-blank lines of ``path``: their 1-based line numbers and their text."""
    if not path.exists():
        raise TraceError(f"{path}: trace file not found")
    if path.is_dir():
        raise TraceError(f"{path}: is a directory, not a trace file")
    if not path.is_file():
        raise TraceError(f"{path}: not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TraceError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TraceError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); a trace file must be text (TSV, CSV or JSONL), not binary or "
            f"compressed data"
        ) from None
    lines = _LINE_BREAK.split(text) if "\r" in text else text.split("\n")
    end = len(lines)
    while end and (not lines[end - 1] or lines[end - 1].isspace()):  # trailing blank lines
        end -= 1
    del lines[end:]
    # A line is blank when ``line.strip()`` is empty, i.e. it is '' or all whitespace.
    if all(lines) and not any(map(str.isspace, lines)):  # the common case: no blank line
        return range(1, end + 1), lines
    kept = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    return [n for n, _ in kept], [line for _, line in kept]


def _plain_digits(values: list[str], max_digits: int) -> np.ndarray | None:
    """``values`` as int64 when every cell is 1 to ``max_digits`` ASCII digits, else None.

    The fast path of the cell parsers: one pass over the joined column instead of a
    regular expression per cell. None means "look at the cells one by one".
    """
    if not values or "" in values:
        return None
    joined = "\n".join(values)
    if (
        not joined.isascii()
        or joined.count("\n") != len(values) - 1  # no cell holds a line break itself
        or joined.encode("ascii").translate(None, b"0123456789\n")
        or max(map(len, values)) > max_digits
    ):
        return None
    out = np.fromstring(joined, dtype=np.int64, sep="\n")
    return out if out.size == len(values) else None


def _parse_int(
    path: Path, column: str, values: list[str], lines: Sequence[int], minimum: int
) -> np.ndarray:
    # Up to 10 digits (< 10**10) fit int64; plain digits are never negative.
    out = _plain_digits(values, 10)
    if out is not None and int(out.max()) <= MAX_TOKENS:
        return out
    return _parse_int_cells(path, column, values, lines, minimum)


def _parse_int_cells(
    path: Path, column: str, values: list[str], lines: Sequence[int], minimum: int
) -> np.ndarray:
    out = np.empty(len(values), dtype=np.int64)
    for i, s in enumerate(values):
        if _INT.fullmatch(s) is None:
            if not s:
                raise TraceError(
                    f"{path}: {_where(lines, i)}: column {column!r} = '' is empty; every "
                    f"request needs a whole number >= {minimum} here (an empty cell is never "
                    f"read as 0)"
                )
            raise TraceError(
                f"{path}: {_where(lines, i)}: column {column!r} = {s!r} is not an integer; "
                f"token counts must be whole numbers"
            )
        # More than 11 characters (sign + 10 digits) is out of range whatever the
        # digits; checking the length first also spares int() a 5,000-digit cell
        # (Python refuses those with a message that names no file).
        v = int(s) if len(s) <= 11 else (MAX_TOKENS + 1 if s[0] != "-" else -MAX_TOKENS - 1)
        shown = s if len(s) <= 24 else f"{s[:20]}... ({len(s)} characters)"
        if v > MAX_TOKENS:
            raise TraceError(
                f"{path}: {_where(lines, i)}: column {column!r} = {shown!r} is too large; token "
                f"counts must be integers from {minimum} to {MAX_TOKENS} (2**31 - 1). Is this "
                f"column really a token count?"
            )
        if v < -MAX_TOKENS:  # smaller negatives are refused by _check_values
            raise TraceError(
                f"{path}: {_where(lines, i)}: column {column!r} = {shown!r} is negative; "
                f"token counts must be integers from {minimum} to {MAX_TOKENS}"
            )
        out[i] = v
    return out


def _parse_float(path: Path, column: str, values: list[str], lines: Sequence[int]) -> np.ndarray:
    # Whole nanoseconds of up to 15 digits (< 2**53): float() of each is exact, so the
    # int64 column below is what the cell-by-cell path returns.
    plain = _plain_digits(values, 15)
    if plain is not None:
        return plain
    if values and all(map(_FLOAT.fullmatch, values)):  # plain decimals: no message to write
        return _integral(np.array(list(map(float, values)), dtype=np.float64))
    return _parse_float_cells(path, column, values, lines)


def _integral(out: np.ndarray) -> np.ndarray:
    """Float nanoseconds as int64 when all are whole numbers below 2**53, else as they are."""
    if np.all(np.isfinite(out)) and np.all(np.abs(out) < 2.0**53) and np.all(out == np.rint(out)):
        return out.astype(np.int64)
    return out


def _parse_float_cells(
    path: Path, column: str, values: list[str], lines: Sequence[int]
) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, s in enumerate(values):
        if _FLOAT.fullmatch(s) is None and _NONFINITE.fullmatch(s) is None:
            if not s:
                raise TraceError(
                    f"{path}: {_where(lines, i)}: column {column!r} = '' is empty; every "
                    f"request needs an arrival time in nanoseconds (an empty cell is never "
                    f"read as 0)"
                )
            raise TraceError(
                f"{path}: {_where(lines, i)}: column {column!r} = {s!r} is not a number; "
                f"expected nanoseconds"
            )
        out[i] = float(s)
    return _integral(out)


def _check_values(path: Path, cols: _Columns) -> None:
    p_name, o_name, a_name = cols.names
    bad = np.flatnonzero(cols.prompt < 1)
    if bad.size:
        i = int(bad[0])
        raise TraceError(
            f"{path}: {_where(cols.lines, i)}: {p_name} = {int(cols.prompt[i])}; "
            f"a request needs at least 1 prompt token (allowed: integers >= 1)"
        )
    bad = np.flatnonzero(cols.output < 0)
    if bad.size:
        i = int(bad[0])
        raise TraceError(
            f"{path}: {_where(cols.lines, i)}: {o_name} = {int(cols.output[i])}; "
            f"output token counts must be integers >= 0"
        )
    if cols.arrival_ns.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(cols.arrival_ns))
        if bad.size:
            i = int(bad[0])
            raise TraceError(
                f"{path}: {_where(cols.lines, i)}: {a_name} = {cols.arrival_ns[i].item()!r}; "
                f"arrival times must be finite"
            )
    if not cols.relative:
        bad = np.flatnonzero(cols.arrival_ns < 0)
        if bad.size:
            i = int(bad[0])
            raise TraceError(
                f"{path}: {_where(cols.lines, i)}: {a_name} = {cols.arrival_ns[i].item()!r}; "
                f"arrival times must be >= 0 ns"
            )
    # Seconds after 0 (seed formats) or after the earliest request (Azure), in float64 so
    # that no int64 difference can wrap around.
    ns = cols.arrival_ns.astype(np.float64)
    seconds = (ns - ns.min() if cols.relative else ns) / 1e9
    bad = np.flatnonzero(seconds >= MAX_ARRIVAL_S)
    if bad.size:
        i = int(bad[0])
        years = seconds[i] / (365.25 * 86400)
        if cols.relative:
            raise TraceError(
                f"{path}: {_where(cols.lines, i)}: {a_name} = {_value_text(cols, i)} is "
                f"{seconds[i]:.3g} s ({years:.3g} years) after the first request; a trace must "
                f"span less than {MAX_ARRIVAL_S:.0e} s (about 3 years). Check the timestamps"
            )
        raise TraceError(
            f"{path}: {_where(cols.lines, i)}: {a_name} = {_value_text(cols, i)} is "
            f"{seconds[i]:.3g} s ({years:.3g} years); arrivals must be below "
            f"{MAX_ARRIVAL_S:.0e} s (about 3 years). This looks like a Unix-epoch timestamp: "
            f"write nanoseconds since the start of the trace (subtract the first arrival)"
        )


def _value_text(cols: _Columns, i: int) -> str:
    v = cols.arrival_ns[i]
    if cols.relative:
        return str(np.datetime64(int(v), "ns"))
    return repr(v.item())

