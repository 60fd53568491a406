"""Strict reading of trace-file cells: lines, whole numbers, times, value ranges.

The pieces every trace format shares (see :mod:`.loaders` for what is refused):
the file's text split into numbered non-blank lines, cell parsers that refuse
anything but the exact form allowed, the parsed :class:`_Columns` and the
range checks run on them before a :class:`~.trace.Trace` is built.
"""

from __future__ import annotations

import re
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
    lines: list[int]  # 1-based file line of each row
    names: tuple[str, str, str]  # column names for prompt, output, arrival
    relative: bool  # rebase arrivals on the first request


def _where(cols_lines: list[int], i: int) -> str:
    return f"row {i + 1} (line {cols_lines[i]})"


def _read_lines(path: Path) -> list[tuple[int, str]]:
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
    lines = _LINE_BREAK.split(text)
    return [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]


def _parse_int(
    path: Path, column: str, values: list[str], lines: list[int], minimum: int
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
        v = int(s)
        if v > MAX_TOKENS:
            raise TraceError(
                f"{path}: {_where(lines, i)}: column {column!r} = {s!r} is too large; token "
                f"counts must be integers from {minimum} to {MAX_TOKENS} (2**31 - 1). Is this "
                f"column really a token count?"
            )
        if v < -MAX_TOKENS:  # smaller negatives are refused by _check_values
            raise TraceError(
                f"{path}: {_where(lines, i)}: column {column!r} = {s!r} is negative; "
                f"token counts must be integers from {minimum} to {MAX_TOKENS}"
            )
        out[i] = v
    return out


def _parse_float(path: Path, column: str, values: list[str], lines: list[int]) -> np.ndarray:
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
    if np.all(np.isfinite(out)) and np.all(np.abs(out) < 2.0**53) and np.all(out == np.rint(out)):
        return out.astype(np.int64)
    return out



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

