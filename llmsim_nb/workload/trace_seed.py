"""The seed trace formats: TSV / CSV and JSONL with ``input_toks``, ``output_toks``,
``arrival_time_ns``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .trace import MAX_ARRIVAL_S, MAX_TOKENS, TraceError
from .trace_cells import _Columns, _parse_float, _parse_int, _where

SEED_COLUMNS = ("input_toks", "output_toks", "arrival_time_ns")


def _seed_columns(path: Path, cols: list[list[str]], lines: Sequence[int]) -> _Columns:
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


_DECODER = json.JSONDecoder(object_pairs_hook=_object_pairs)  # what json.loads would build


def _decode(text: str) -> object:
    """``json.loads(text, object_pairs_hook=_object_pairs)``, with one decoder for all lines."""
    if text.startswith("\ufeff"):  # json.loads refuses it, with its own message
        return json.loads(text, object_pairs_hook=_object_pairs)
    return _DECODER.decode(text)


def _split_jsonl(
    path: Path, numbers: Sequence[int], texts: list[str], limit: int | None
) -> _Columns:
    data = texts if limit is None else texts[:limit]
    lines = numbers if limit is None else numbers[:limit]
    prompt = np.empty(len(data), dtype=np.int64)
    output = np.empty(len(data), dtype=np.int64)
    arrival: list[float | int] = []
    for i, text in enumerate(data):
        try:
            obj = _decode(text)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}: {_where(lines, i)}: invalid JSON ({exc.msg})") from None
        except (ValueError, RecursionError) as exc:  # e.g. a 5000-digit integer, deep nesting
            text_ = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise TraceError(f"{path}: {_where(lines, i)}: invalid JSON ({text_})") from None
        if type(obj) is dict:  # the common case, checked in one go (a _Duplicated is not)
            p = obj.get("input_toks")
            o = obj.get("output_toks")
            a = obj.get("arrival_time_ns")
            if (
                type(p) is int and type(o) is int and (type(a) is int or type(a) is float)
                and -MAX_TOKENS <= p <= MAX_TOKENS and -MAX_TOKENS <= o <= MAX_TOKENS
            ):
                prompt[i], output[i] = p, o
                arrival.append(a)
                continue
        _check_object(path, _where(lines, i), obj, i, prompt, output, arrival)
    kinds = set(map(type, arrival))
    if float not in kinds and max(map(abs, arrival)) < 2**63:  # only ints (never bools)
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


def _check_object(
    path: Path, where: str, obj: object, i: int, prompt: np.ndarray, output: np.ndarray,
    arrival: list[float | int],
) -> None:
    """Row ``i``'s decoded JSON checked key by key (the message for what is wrong) and kept."""
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
