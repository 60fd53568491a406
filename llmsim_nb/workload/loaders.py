"""Reading and writing workload trace files.

Supported formats (detected from the extension and the header line):

* **seed TSV** -- tab separated, header ``input_toks  output_toks  arrival_time_ns``;
  arrivals are absolute nanoseconds and kept as they are (converted to seconds).
* **CSV** -- the same three columns, comma separated.
* **JSONL** (``.jsonl`` / ``.ndjson``, or any file whose first line starts with
  ``{``) -- one JSON object per line with the keys ``input_toks``,
  ``output_toks``, ``arrival_time_ns``.
* **Azure LLM inference trace (2023)** -- CSV with header
  ``TIMESTAMP,ContextTokens,GeneratedTokens``; timestamps such as
  ``2023-11-16 18:15:46.6805900`` (up to 9 fractional digits). Arrivals are made
  relative to the first request.

Extra columns/keys are ignored; column order does not matter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .trace import Trace, TraceError

__all__ = ["load_trace", "save_trace"]

SEED_COLUMNS = ("input_toks", "output_toks", "arrival_time_ns")
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_AZURE_TS = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?")
_JSONL_SUFFIXES = {".jsonl", ".ndjson"}
_DELIMITERS = {".tsv": "\t", ".csv": ","}


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
    if not path.is_file():
        raise TraceError(f"{path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: not UTF-8 text ({exc})") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _parse_int(path: Path, column: str, values: list[str], lines: list[int]) -> np.ndarray:
    out = np.empty(len(values), dtype=np.int64)
    for i, s in enumerate(values):
        try:
            out[i] = int(s)
        except (ValueError, OverflowError):
            raise TraceError(
                f"{path}: {_where(lines, i)}: column {column!r} = {s!r} is not an integer; "
                f"token counts must be whole numbers"
            ) from None
    return out


def _parse_float(path: Path, column: str, values: list[str], lines: list[int]) -> np.ndarray:
    out = np.empty(len(values), dtype=np.float64)
    for i, s in enumerate(values):
        try:
            out[i] = float(s)
        except ValueError:
            raise TraceError(
                f"{path}: {_where(lines, i)}: column {column!r} = {s!r} is not a number; "
                f"expected nanoseconds"
            ) from None
    if np.all(np.isfinite(out)) and np.all(np.abs(out) < 2.0**53) and np.all(out == np.rint(out)):
        return out.astype(np.int64)
    return out


def _parse_timestamps(path: Path, column: str, values: list[str], lines: list[int]) -> np.ndarray:
    for i, s in enumerate(values):
        if _AZURE_TS.fullmatch(s) is None:
            raise TraceError(
                f"{path}: {_where(lines, i)}: column {column!r} = {s!r} is not a timestamp; "
                f"expected 'YYYY-MM-DD HH:MM:SS[.fraction]'"
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


def _split_delimited(
    path: Path, rows: list[tuple[int, str]], delimiter: str, limit: int | None
) -> _Columns:
    header_line, header_text = rows[0]
    header = [h.strip() for h in header_text.split(delimiter)]
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise TraceError(f"{path}: line {header_line}: duplicate column(s) {duplicates}")
    if set(AZURE_COLUMNS) <= set(header):
        names, relative = AZURE_COLUMNS, True
    elif set(SEED_COLUMNS) <= set(header):
        names, relative = SEED_COLUMNS, False
    else:
        expected = AZURE_COLUMNS if set(AZURE_COLUMNS) & set(header) else SEED_COLUMNS
        missing = [c for c in expected if c not in header]
        raise TraceError(
            f"{path}: missing column(s) {missing}; found columns {header}. Expected either "
            f"{list(SEED_COLUMNS)} or the Azure trace columns {list(AZURE_COLUMNS)}"
        )
    data = rows[1:] if limit is None else rows[1 : 1 + limit]
    if not data:
        raise TraceError(f"{path}: has a header but no request rows")
    idx = [header.index(c) for c in names]
    width = len(header)
    lines: list[int] = []
    cols: list[list[str]] = [[], [], []]
    for n, text in data:
        fields = text.split(delimiter)
        if len(fields) != width:
            raise TraceError(
                f"{path}: row {len(lines) + 1} (line {n}): has {len(fields)} fields, "
                f"the header has {width} ({header})"
            )
        lines.append(n)
        for c, j in zip(cols, idx):
            c.append(fields[j].strip())
    if relative:
        # Azure: TIMESTAMP, ContextTokens, GeneratedTokens
        arrival = _parse_timestamps(path, names[0], cols[0], lines)
        prompt = _parse_int(path, names[1], cols[1], lines)
        output = _parse_int(path, names[2], cols[2], lines)
        return _Columns(prompt, output, arrival, lines, (names[1], names[2], names[0]), True)
    prompt = _parse_int(path, names[0], cols[0], lines)
    output = _parse_int(path, names[1], cols[1], lines)
    arrival = _parse_float(path, names[2], cols[2], lines)
    return _Columns(prompt, output, arrival, lines, names, False)


def _split_jsonl(path: Path, rows: list[tuple[int, str]], limit: int | None) -> _Columns:
    data = rows if limit is None else rows[:limit]
    prompt = np.empty(len(data), dtype=np.int64)
    output = np.empty(len(data), dtype=np.int64)
    arrival: list[float | int] = []
    lines = [n for n, _ in data]
    for i, (n, text) in enumerate(data):
        where = _where(lines, i)
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}: {where}: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise TraceError(f"{path}: {where}: expected a JSON object, got {type(obj).__name__}")
        missing = [k for k in SEED_COLUMNS if k not in obj]
        if missing:
            raise TraceError(
                f"{path}: {where}: missing key(s) {missing}; found keys {list(obj)}. "
                f"Expected {list(SEED_COLUMNS)}"
            )
        for key, target in (("input_toks", prompt), ("output_toks", output)):
            v = obj[key]
            if isinstance(v, bool) or not isinstance(v, int):
                raise TraceError(
                    f"{path}: {where}: key {key!r} = {v!r} is not an integer; "
                    f"token counts must be whole numbers"
                )
            if not -(2**63) <= v < 2**63:
                raise TraceError(f"{path}: {where}: key {key!r} = {v!r} does not fit in int64")
            target[i] = v
        v = obj["arrival_time_ns"]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TraceError(
                f"{path}: {where}: key 'arrival_time_ns' = {v!r} is not a number; "
                f"expected nanoseconds"
            )
        arrival.append(v)
    if all(isinstance(v, int) for v in arrival) and all(abs(v) < 2**63 for v in arrival):
        arr = np.array(arrival, dtype=np.int64)
    else:
        arr = np.array(arrival, dtype=np.float64)
    return _Columns(prompt, output, arr, lines, SEED_COLUMNS, False)


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


def load_trace(path: str | Path, *, sort: bool = False, limit: int | None = None) -> Trace:
    """Load a workload trace file into a :class:`Trace`.

    Parameters
    ----------
    path : str or pathlib.Path
        Trace file: seed TSV, CSV or JSONL with columns ``input_toks``,
        ``output_toks``, ``arrival_time_ns``, or the Azure LLM inference trace
        CSV (``TIMESTAMP,ContextTokens,GeneratedTokens``). See the module
        docstring for details.
    sort : bool, optional
        Policy for arrivals that are out of order. By default (``False``) the
        file is refused with a ``TraceError`` naming the first row whose
        arrival is earlier than its predecessor's. With ``sort=True`` the
        requests are sorted by arrival time with a *stable* sort (ties keep
        file order) and request ids are the sorted positions.
    limit : int or None, optional
        Read at most the first ``limit`` request rows of the file (in file
        order, before any sorting); rows after them are not validated. A file
        with fewer rows is read whole. ``None`` reads everything.

    Returns
    -------
    Trace
        Arrivals in seconds. Seed/CSV/JSONL arrivals are kept absolute; Azure
        arrivals are relative to the earliest request (the first row, since
        unsorted files are refused unless ``sort=True``).

    Raises
    ------
    TraceError
        (a ``ValueError``) for a missing or empty file, a header without
        rows, missing columns (the message lists the columns found),
        non-integer or out-of-range token counts (``input_toks`` /
        ``ContextTokens`` must be >= 1, output counts >= 0 -- zero output
        tokens is allowed and means a prefill-only request), non-finite or
        negative arrivals, unparseable timestamps, and unsorted arrivals
        unless ``sort=True``. Messages name the file, the row and line, the
        column and the offending value.
    """
    path = Path(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise TraceError(f"{path}: limit must be None or an integer >= 1, got {limit!r}")
    if not isinstance(sort, bool):
        raise TraceError(f"{path}: sort must be True or False, got {sort!r}")
    rows = _read_lines(path)
    if not rows:
        raise TraceError(
            f"{path}: file is empty; expected a header line such as "
            f"{chr(9).join(SEED_COLUMNS)!r} followed by request rows"
        )
    first = rows[0][1].lstrip()
    if path.suffix.lower() in _JSONL_SUFFIXES or first.startswith("{"):
        cols = _split_jsonl(path, rows, limit)
    else:
        header = rows[0][1]
        if "\t" in header:
            delimiter = "\t"
        elif "," in header:
            delimiter = ","
        else:
            delimiter = _DELIMITERS.get(path.suffix.lower(), "\t")
        cols = _split_delimited(path, rows, delimiter, limit)
    _check_values(path, cols)

    arrival = cols.arrival_ns
    prompt, output = cols.prompt, cols.output
    backwards = np.flatnonzero(np.diff(arrival) < 0)
    if backwards.size:
        if not sort:
            i = int(backwards[0]) + 1
            raise TraceError(
                f"{path}: {_where(cols.lines, i)}: {cols.names[2]} goes backwards "
                f"({_value_text(cols, i)} after {_value_text(cols, i - 1)}); arrivals must be "
                f"non-decreasing. Pass sort=True to sort the requests by arrival (stable)"
            )
        order = np.argsort(arrival, kind="stable")
        arrival, prompt, output = arrival[order], prompt[order], output[order]
    if cols.relative:
        arrival = arrival - arrival[0]
    seconds = arrival.astype(np.float64) / 1e9
    return Trace(seconds, prompt, output, source=str(path))


def _value_text(cols: _Columns, i: int) -> str:
    v = cols.arrival_ns[i]
    if cols.relative:
        return str(np.datetime64(int(v), "ns"))
    return repr(v.item())


def save_trace(trace: Trace, path: str | Path) -> Path:
    """Write ``trace`` in the seed's format so :func:`load_trace` reads it back.

    Parameters
    ----------
    trace : Trace
        The trace to write.
    path : str or pathlib.Path
        Destination; the extension picks the layout: ``.tsv`` (seed format,
        tab separated), ``.csv`` (comma separated) or ``.jsonl``. Columns are
        ``input_toks``, ``output_toks``, ``arrival_time_ns`` with arrivals
        rounded to whole nanoseconds. An existing file is overwritten.

    Returns
    -------
    pathlib.Path
        The written path.

    Raises
    ------
    TraceError
        If ``trace`` is not a Trace or the extension is not supported.
    """
    path = Path(path)
    if not isinstance(trace, Trace):
        raise TraceError(f"save_trace: expected a Trace, got {type(trace).__name__}")
    suffix = path.suffix.lower()
    ns = np.rint(trace.arrival_at * 1e9).astype(np.int64).tolist()
    prompt = trace.num_prompt_tokens.tolist()
    output = trace.num_output_tokens.tolist()
    if suffix in _DELIMITERS:
        sep = _DELIMITERS[suffix]
        body = [sep.join(SEED_COLUMNS)]
        body += [f"{p}{sep}{o}{sep}{t}" for p, o, t in zip(prompt, output, ns)]
    elif suffix in _JSONL_SUFFIXES:
        body = [
            json.dumps({"input_toks": p, "output_toks": o, "arrival_time_ns": t})
            for p, o, t in zip(prompt, output, ns)
        ]
    else:
        raise TraceError(
            f"save_trace: {path}: unsupported extension {path.suffix!r}; "
            f"use '.tsv', '.csv' or '.jsonl'"
        )
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path

