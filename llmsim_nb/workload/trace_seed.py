"""The seed trace formats: TSV / CSV and JSONL with ``input_toks``, ``output_toks``,
``arrival_time_ns``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .trace import MAX_ARRIVAL_S, MAX_TOKENS, TraceError
from .trace_cells import _Columns, _parse_float, _parse_int, _where

SEED_COLUMNS = ("input_toks", "output_toks", "arrival_time_ns")


def _seed_columns(path: Path, cols: list[list[str]], lines: list[int]) -> _Columns:
    """The seed TSV / CSV cells (in :data:`SEED_COLUMNS` order) parsed."""
    names = SEED_COLUMNS
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

