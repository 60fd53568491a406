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

Extra columns/keys are ignored; column order does not matter. Blank lines are
skipped (line numbers in messages still count them).

What is refused
---------------
A file is read whole and checked before a :class:`Trace` is built; anything
that does not fit raises :class:`TraceError` (a ``ValueError``) with one line
naming the file, the row and line, the column or key, the value and what is
allowed. Nothing is clamped, defaulted, truncated or dropped:

* token counts must be written as whole numbers (``12``; not ``12.0``, ``1.5``,
  ``1e3``, ``1_000`` or an empty cell), ``input_toks`` / ``ContextTokens`` >= 1,
  output counts >= 0, and at most :data:`MAX_TOKENS` (``2**31 - 1``);
* arrivals must be finite, >= 0 and below :data:`MAX_ARRIVAL_S` seconds (about
  3 years; also the span of an Azure trace). Larger values are almost always
  Unix-epoch timestamps, and every later stage buckets simulated time in 0.5-s
  intervals from 0;
* arrivals must be non-decreasing -- a file whose arrivals go backwards is
  refused unless ``load_trace(..., sort=True)`` is asked for (a deliberate
  choice: request ids are file positions, so reordering is never silent);
* a header holding both the seed columns and the Azure columns, duplicate
  column names, rows with the wrong number of fields, duplicate keys in a JSONL
  object, lines that are not JSON objects, a header with no request rows, an
  empty file, bytes that are not UTF-8 text, a missing path or a directory.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .trace import MAX_ARRIVAL_S, MAX_TOKENS, Trace, TraceError

__all__ = ["MAX_ARRIVAL_S", "MAX_TOKENS", "load_trace", "save_trace"]

SEED_COLUMNS = ("input_toks", "output_toks", "arrival_time_ns")
AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_AZURE_TS = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?")
# datetime64[ns] holds 1677-09-21 .. 2262-04-11; outside it numpy wraps around silently.
_AZURE_YEARS = (1678, 2261)
_INT = re.compile(r"[+-]?[0-9]+")  # ASCII digits only: no '1_000', no '1.0', no other scripts
_FLOAT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NONFINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
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


def _split_delimited(
    path: Path, rows: list[tuple[int, str]], delimiter: str, limit: int | None
) -> _Columns:
    header_line, header_text = rows[0]
    header = [h.strip() for h in header_text.split(delimiter)]
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise TraceError(f"{path}: line {header_line}: duplicate column(s) {duplicates}")
    has_azure, has_seed = set(AZURE_COLUMNS) <= set(header), set(SEED_COLUMNS) <= set(header)
    if has_azure and has_seed:
        raise TraceError(
            f"{path}: line {header_line}: the header holds both the seed trace columns "
            f"{list(SEED_COLUMNS)} and the Azure trace columns {list(AZURE_COLUMNS)}; which "
            f"of them describe the requests is ambiguous, keep only one set"
        )
    if has_azure:
        names, relative = AZURE_COLUMNS, True
    elif has_seed:
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
        raise TraceError(
            f"{path}: has a header but no request rows (0 requests); a trace needs at least "
            f"1 request"
        )
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
        prompt = _parse_int(path, names[1], cols[1], lines, 1)
        output = _parse_int(path, names[2], cols[2], lines, 0)
        return _Columns(prompt, output, arrival, lines, (names[1], names[2], names[0]), True)
    prompt = _parse_int(path, names[0], cols[0], lines, 1)
    output = _parse_int(path, names[1], cols[1], lines, 0)
    arrival = _parse_float(path, names[2], cols[2], lines)
    return _Columns(prompt, output, arrival, lines, names, False)


class _Duplicated(dict):
    """A JSON object that named some key more than once (see ``_object_pairs``)."""

    duplicates: dict[str, list[object]]


def _object_pairs(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    values: dict[str, list[object]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    out = _Duplicated(obj)
    out.duplicates = {k: v for k, v in values.items() if len(v) > 1}
    return out


def _split_jsonl(path: Path, rows: list[tuple[int, str]], limit: int | None) -> _Columns:
    data = rows if limit is None else rows[:limit]
    prompt = np.empty(len(data), dtype=np.int64)
    output = np.empty(len(data), dtype=np.int64)
    arrival: list[float | int] = []
    lines = [n for n, _ in data]
    for i, (n, text) in enumerate(data):
        where = _where(lines, i)
        try:
            obj = json.loads(text, object_pairs_hook=_object_pairs)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}: {where}: invalid JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # e.g. a 5000-digit integer, deep nesting
            text_ = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TraceError(f"{path}: {where}: invalid JSON ({text_})") from None
        if not isinstance(obj, dict):
            raise TraceError(f"{path}: {where}: expected a JSON object, got {type(obj).__name__}")
        if isinstance(obj, _Duplicated):
            key, values = next(iter(obj.duplicates.items()))
            raise TraceError(
                f"{path}: {where}: duplicate key {key!r} (values "
                f"{', '.join(repr(v) for v in values)}); each key may appear once per line"
            )
        missing = [k for k in SEED_COLUMNS if k not in obj]
        if missing:
            raise TraceError(
                f"{path}: {where}: missing key(s) {missing}; found keys {list(obj)}. "
                f"Expected {list(SEED_COLUMNS)}"
            )
        for key, target, minimum in (("input_toks", prompt, 1), ("output_toks", output, 0)):
            v = obj[key]
            if isinstance(v, bool) or not isinstance(v, int):
                raise TraceError(
                    f"{path}: {where}: key {key!r} = {v!r} is not an integer; "
                    f"token counts must be whole numbers"
                )
            if not -MAX_TOKENS <= v <= MAX_TOKENS:
                raise TraceError(
                    f"{path}: {where}: key {key!r} = {v!r} is out of range; token counts "
                    f"must be integers from {minimum} to {MAX_TOKENS} (2**31 - 1)"
                )
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
        try:
            arr = np.array(arrival, dtype=np.float64)
        except OverflowError:  # an integer beyond float range (>= 1e309)
            i = next(j for j, v in enumerate(arrival) if isinstance(v, int) and abs(v) > 1e308)
            raise TraceError(
                f"{path}: {_where(lines, i)}: key 'arrival_time_ns' has {len(str(arrival[i]))} "
                f"digits; arrivals must be below {MAX_ARRIVAL_S:.0e} s"
            ) from None
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
        (a ``ValueError``) for a missing or empty file, a directory, bytes
        that are not UTF-8 text, a header without rows, missing columns (the
        message lists the columns found) or the columns of two formats at
        once, empty cells, non-integer or out-of-range token counts
        (``input_toks`` / ``ContextTokens`` must be >= 1, output counts >= 0
        -- zero output tokens is allowed and means a prefill-only request --
        and none above :data:`MAX_TOKENS`), non-finite, negative or huge
        arrivals (>= :data:`MAX_ARRIVAL_S` s, e.g. Unix-epoch nanoseconds),
        unparseable timestamps, JSONL lines that are not objects or repeat a
        key, and unsorted arrivals unless ``sort=True``. Messages are one
        line naming the file, the row and line, the column and the offending
        value. See the module docstring.
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

