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
* **Mooncake FAST'25 JSONL** (a first line with ``hash_ids`` and
  ``input_length``) and **CC trace sessions** (a ``trace_*.json`` document, or a
  folder of them) -- read by :func:`.trace_mooncake.load_mooncake_trace` and
  :func:`.trace_mooncake.load_cc_trace`, with request content.

Seed TSV / CSV / JSONL files may also carry each request's content (prompt
segments, output id, cache salt; columns ``segment_ids``, ``segment_lengths``,
``output_id``, ``cache_salt``): see :mod:`.trace_content_io`. :func:`save_trace`
writes them for a trace with content, so the round trip is exact. They may
also carry each request's scheduling priority (column or key ``priority``, an
integer that fits int64; lower is served first): see :mod:`.trace_priority_io`.
A file without it gives ``Trace.priority`` None; :func:`save_trace` writes it
exactly when the trace has a priority column.

A bare name that is not a file in the working directory may name a trace
shipped with the package (``load_trace("sharegpt-like-100")``; see
:mod:`.packaged` and :func:`list_packaged_traces`); a local file always wins.

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
from collections.abc import Sequence
from importlib import resources
from itertools import repeat
from pathlib import Path

import numpy as np

from .content import PromptContent
from .packaged import list_packaged_traces, packaged_trace_file, unknown_trace_hint
from .trace import MAX_ARRIVAL_S, MAX_TOKENS, Trace, TraceError
from .trace_azure import AZURE_COLUMNS, _azure_columns
from .trace_cells import _check_values, _Columns, _read_lines, _value_text, _where
from .trace_columns import UnsortedTraceError
from .trace_content_io import (CONTENT_COLUMNS, content_cells, content_from_cells,
                               content_from_jsonl, content_header, content_json)
from .trace_mooncake import detect_prefix_trace, load_cc_trace, load_mooncake_trace
from .trace_priority_io import PRIORITY_COLUMN, priority_from_cells, priority_from_jsonl
from .trace_seed import SEED_COLUMNS, _seed_columns, _split_jsonl

__all__ = ["MAX_ARRIVAL_S", "MAX_TOKENS", "UnsortedTraceError", "list_packaged_traces",
           "load_trace", "save_trace"]

_JSONL_SUFFIXES = {".jsonl", ".ndjson"}
_DELIMITERS = {".tsv": "\t", ".csv": ","}


def _split_delimited(
    path: Path, numbers: Sequence[int], texts: list[str], delimiter: str, limit: int | None
) -> tuple[_Columns, dict[str, list[str]]]:
    header_line, header_text = numbers[0], texts[0]
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
    end = None if limit is None else 1 + limit
    data, lines = texts[1:end], numbers[1:end]
    if not data:
        raise TraceError(
            f"{path}: has a header but no request rows (0 requests); a trace needs at least "
            f"1 request"
        )
    width = len(header)
    # A row has len(text.split(delimiter)) == text.count(delimiter) + 1 fields.
    counts = np.fromiter(map(str.count, data, repeat(delimiter)), dtype=np.int64, count=len(data))
    bad = np.flatnonzero(counts != width - 1)
    if bad.size:
        i = int(bad[0])
        raise TraceError(
            f"{path}: row {i + 1} (line {lines[i]}): has {int(counts[i]) + 1} fields, "
            f"the header has {width} ({header})"
        )
    # Every row has exactly ``width`` fields, so the split of all rows joined by the
    # delimiter holds row r's field j at r * width + j.
    fields = delimiter.join(data).split(delimiter)
    cols = [list(map(str.strip, fields[header.index(c)::width])) for c in names]
    extra = content_header(path, header_line, header)
    extra += (PRIORITY_COLUMN,) if PRIORITY_COLUMN in header else ()
    content = {c: list(map(str.strip, fields[header.index(c)::width])) for c in extra}
    if relative:
        return _azure_columns(path, cols, lines), content
    return _seed_columns(path, cols, lines), content


def load_trace(path: str | Path, *, sort: bool = False, limit: int | None = None) -> Trace:
    """Load a workload trace file, or a packaged trace by name, into a :class:`Trace`.

    Parameters
    ----------
    path : str or pathlib.Path
        Trace file: seed TSV, CSV or JSONL with columns ``input_toks``,
        ``output_toks``, ``arrival_time_ns`` (and optionally the content
        columns and ``priority``), the Azure LLM inference trace CSV
        (``TIMESTAMP,ContextTokens,GeneratedTokens``), a Mooncake JSONL trace or
        a CC trace session file or folder. See the module docstring for
        details. Or the name of a packaged trace, with or without its
        extension (``"sharegpt-like-100"``; see :func:`list_packaged_traces`): a bare name that is not a file in the
        working directory is looked up among them. **A local file always
        wins**: if ``path`` exists it is read, even when a packaged trace has
        the same name.
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
        With ``priority`` when the file has that column or key (else None).
        Arrivals in seconds. Seed/CSV/JSONL arrivals are kept absolute; Azure
        arrivals are relative to the earliest request (the first row, since
        unsorted files are refused unless ``sort=True``).

    Raises
    ------
    TraceError
        (a ``ValueError``) for a missing file (for a bare name that is no
        packaged trace either, the message lists the packaged names and the
        closest ones), an empty file, a directory, bytes
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
    given = path
    path = Path(path)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise TraceError(f"{path}: limit must be None or an integer >= 1, got {limit!r}")
    if not isinstance(sort, bool):
        raise TraceError(f"{path}: sort must be True or False, got {sort!r}")
    if not path.exists():
        packaged = packaged_trace_file(given)
        if packaged is None:
            hint = unknown_trace_hint(given)
            if hint:
                raise TraceError(f"{path}: trace file not found{hint}")
        else:
            name, resource = packaged
            with resources.as_file(resource) as real:
                trace = _load(Path(real), sort, limit)
            return Trace(trace.arrival_at, trace.num_prompt_tokens, trace.num_output_tokens,
                         source=f"{name} (packaged: llmsim_nb/data/{resource.name})",
                         content=trace.content, priority=trace.priority)
    if path.is_dir() and any(path.glob("trace_*.json")):
        return _load_cc(path, limit)
    return _load(path, sort, limit)


def _load_cc(path: Path, limit: int | None) -> Trace:
    if limit is not None:
        raise TraceError(f"{path}: limit={limit} is not supported for CC trace sessions (their "
                         f"requests are sorted by arrival across sub-agents and sessions); use "
                         f"load_trace(path).head({limit})")
    return load_cc_trace(path)


def _load(path: Path, sort: bool, limit: int | None) -> Trace:
    numbers, texts = _read_lines(path)
    if not texts:
        raise TraceError(
            f"{path}: file is empty; expected a header line such as "
            f"{chr(9).join(SEED_COLUMNS)!r} followed by request rows"
        )
    first = texts[0].lstrip()
    kind = detect_prefix_trace(path, first)
    if kind == "mooncake":
        return load_mooncake_trace(path, limit=limit, sort=sort)
    if kind == "cc":
        return _load_cc(path, limit)
    content_cells_: dict[str, list[str]] = {}
    if path.suffix.lower() in _JSONL_SUFFIXES or first.startswith("{"):
        cols = _split_jsonl(path, numbers, texts, limit)
        jsonl = True
    else:
        header = texts[0]
        if "\t" in header:
            delimiter = "\t"
        elif "," in header:
            delimiter = ","
        else:
            delimiter = _DELIMITERS.get(path.suffix.lower(), "\t")
        cols, content_cells_ = _split_delimited(path, numbers, texts, delimiter, limit)
        jsonl = False
    _check_values(path, cols)
    content: PromptContent | None = None
    priority: np.ndarray | None = None
    if jsonl:
        content = content_from_jsonl(path, cols.lines, texts[:len(cols.lines)], cols.prompt)
        priority = priority_from_jsonl(path, cols.lines, texts[:len(cols.lines)])
    else:
        if PRIORITY_COLUMN in content_cells_:
            priority = priority_from_cells(path, content_cells_.pop(PRIORITY_COLUMN), cols.lines)
        if content_cells_:
            content = content_from_cells(path, content_cells_, cols.lines, cols.prompt)

    arrival = cols.arrival_ns
    prompt, output = cols.prompt, cols.output
    backwards = np.flatnonzero(np.diff(arrival) < 0)
    if backwards.size:
        if not sort:
            i = int(backwards[0]) + 1
            raise UnsortedTraceError(
                f"{path}: {_where(cols.lines, i)}: {cols.names[2]} goes backwards "
                f"({_value_text(cols, i)} after {_value_text(cols, i - 1)}); arrivals must be "
                f"non-decreasing. Pass sort=True to sort the requests by arrival (stable)"
            )
        order = np.argsort(arrival, kind="stable")
        arrival, prompt, output = arrival[order], prompt[order], output[order]
        content = None if content is None else content.take(order)
        priority = None if priority is None else priority[order]
    if cols.relative:
        arrival = arrival - arrival[0]
    seconds = arrival.astype(np.float64) / 1e9
    return Trace(seconds, prompt, output, source=str(path), content=content, priority=priority)


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
        rounded to whole nanoseconds; a trace with ``content`` also gets the
        columns (JSONL: keys) ``segment_ids``, ``segment_lengths`` (in TSV / CSV
        space-separated integers, in JSONL lists), ``output_id`` and
        ``cache_salt``; a trace with ``priority`` also gets the column (key)
        ``priority``. An existing file is overwritten.

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
        if trace.priority is not None:
            body[0] += sep + PRIORITY_COLUMN
            body[1:] = [f"{row}{sep}{q}" for row, q in zip(body[1:], trace.priority.tolist())]
        if trace.content is not None:
            body[0] += sep + sep.join(CONTENT_COLUMNS)
            body[1:] = [sep.join((row, *map(str, cells))) for row, cells in
                        zip(body[1:], content_cells(trace.content))]
    elif suffix in _JSONL_SUFFIXES:
        body = [
            json.dumps({"input_toks": p, "output_toks": o, "arrival_time_ns": t})
            for p, o, t in zip(prompt, output, ns)
        ]
        if trace.priority is not None:
            body = [f'{row[:-1]}, "{PRIORITY_COLUMN}": {q}}}' for row, q in
                    zip(body, trace.priority.tolist())]
        if trace.content is not None:
            body = [f"{row[:-1]}, {extra}}}" for row, extra in
                    zip(body, content_json(trace.content))]
    else:
        raise TraceError(
            f"save_trace: {path}: unsupported extension {path.suffix!r}; "
            f"use '.tsv', '.csv' or '.jsonl'"
        )
    path.write_text("\n".join(body) + "\n", encoding="utf-8")
    return path

