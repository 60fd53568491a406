"""Reading measured per-request times: a simple CSV or vLLM's benchmark JSON.

See :mod:`.validate` for the formats and what a bad file gets.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..config.yaml_file import DuplicateKeyError, unique_keys
from ..engines.measurements.csv_table import _open_text, _read_table, _Table

_REQUEST_ALIASES = {"arrival": ("arrival", "arrival_at", "arrival_time"),
                    "first_token": ("first_token", "first_token_at", "first_token_time"),
                    "finish": ("finish", "finished_at", "finish_time")}
#: Token-count columns a measured requests CSV may add, with their smallest allowed value.
_REQUEST_COUNTS = {"num_prompt_tokens": 1, "num_output_tokens": 0}


def _times(table: _Table, column: str, why: str = "") -> np.ndarray:
    """Finite seconds >= 0 of every row of ``column``."""
    out = np.empty(len(table), dtype=np.float64)
    for i in range(len(table)):
        value = table.cell(i, column)
        x = table.number(i, column, value)
        if not math.isfinite(x) or x < 0:
            raise table.fail(i, column, value, f"must be a finite number of seconds >= 0{why}")
        out[i] = x
    return out


def _from_csv(path: Path) -> tuple[pd.DataFrame, _Table]:
    table = _read_table(path, "measured requests file")
    out = {}
    for ours, names in _REQUEST_ALIASES.items():
        found = [n for n in names if n in table.header]
        if not found:
            raise ValueError(f"measured requests {str(path)!r} lack a {ours!r} column (one of "
                             f"{list(names)}); columns: {list(table.header)}")
        if len(found) > 1:
            raise ValueError(f"{path}: columns {found} all give the {ours!r} time; which one is "
                             "meant is ambiguous, keep one")
        out[ours] = _times(table, found[0], " (only finished requests can be compared)")
    for extra, minimum in _REQUEST_COUNTS.items():
        if extra in table.header:
            out[extra] = np.array(table.integers(extra, minimum), dtype=np.float64)
    return pd.DataFrame(out), table


def _real(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_list(path: Path, data: dict, key: str, n: int | None) -> list:
    value = data[key]
    if not isinstance(value, list):
        raise ValueError(f"{path}: key {key!r} = {_short(value)} is not a list; expected one "
                         "item per request")
    if n is not None and len(value) != n:
        raise ValueError(f"{path}: key {key!r} has {len(value)} items but 'ttfts' has {n}; "
                         "the per-request lists must have equal lengths")
    return value


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json_seconds(path: Path, data: dict, key: str, n: int | None,
                  allow_negative: bool = False) -> np.ndarray:
    items = _json_list(path, data, key, n)
    for i, x in enumerate(items):
        if not _real(x) or not math.isfinite(x) or (x < 0 and not allow_negative):
            allowed = "a finite number of seconds" + ("" if allow_negative else " >= 0")
            raise ValueError(f"{path}: key {key!r} item {i} = {_short(x)} is not {allowed}")
    return np.asarray(items, dtype=float)


def _json_counts(path: Path, data: dict, key: str, n: int, minimum: int) -> np.ndarray:
    items = _json_list(path, data, key, n)
    for i, x in enumerate(items):
        if not _real(x) or not math.isfinite(x) or x != math.floor(x) or x < minimum:
            raise ValueError(f"{path}: key {key!r} item {i} = {_short(x)} is not a whole number "
                             f">= {minimum} (token counts are refused, never truncated)")
    return np.asarray(items, dtype=float)


def _from_vllm_json(path: Path, arrivals) -> pd.DataFrame:
    text = _open_text(path, "vLLM benchmark file")
    try:
        data = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON "
                         f"({exc.msg})") from None
    except DuplicateKeyError as exc:
        raise ValueError(f"{path}: duplicate key {exc.key!r}; each key may appear "
                         "once") from None
    except (ValueError, RecursionError) as exc:  # e.g. a 5000-digit number, deep nesting
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: not valid JSON ({reason})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object with the lists 'ttfts', 'itls', "
                         f"'output_lens' (vLLM benchmark_serving), got {type(data).__name__}")
    for key in ("ttfts", "output_lens"):
        if key not in data:
            raise ValueError(f"vLLM benchmark file {str(path)!r} has no {key!r} list")
    ttft = _json_seconds(path, data, "ttfts", None)
    n = len(ttft)
    if n == 0:
        raise ValueError(f"{path}: key 'ttfts' is an empty list (0 requests); nothing to compare")
    output = _json_counts(path, data, "output_lens", n, 0)
    if "start_times" in data:
        arrival = _json_seconds(path, data, "start_times", n, allow_negative=True)
        arrival = arrival - arrival.min()
    elif arrivals is not None:
        arrival = np.asarray(arrivals, dtype=float)
        if arrival.ndim != 1 or len(arrival) != n:
            raise ValueError(f"vLLM benchmark file {str(path)!r} has {n} requests but the "
                             f"trace has {arrival.size} arrivals")
        if not np.all(np.isfinite(arrival)):
            raise ValueError(f"vLLM benchmark file {str(path)!r}: the given arrivals are not "
                             "all finite")
    else:
        raise ValueError(f"vLLM benchmark file {str(path)!r} records no arrival times; pass "
                         "the trace's arrivals (arrivals=trace.arrival_at)")
    if "e2els" in data:
        e2e = _json_seconds(path, data, "e2els", n)
    elif "itls" in data:
        itls = _json_list(path, data, "itls", n)
        for i, gaps in enumerate(itls):
            if not isinstance(gaps, list) or not all(
                    _real(x) and math.isfinite(x) and x >= 0 for x in gaps):
                raise ValueError(f"{path}: key 'itls' item {i} = {_short(gaps)} is not a list "
                                 "of finite numbers of seconds >= 0")
        e2e = ttft + np.array([float(np.sum(x)) for x in itls])
    else:
        raise ValueError(f"vLLM benchmark file {str(path)!r} has neither 'e2els' nor 'itls'")
    frame = {"arrival": arrival, "first_token": arrival + ttft, "finish": arrival + e2e,
             "num_output_tokens": output}
    if "input_lens" in data:
        frame["num_prompt_tokens"] = _json_counts(path, data, "input_lens", n, 1)
    return pd.DataFrame(frame)


def load_measured_requests(path: str | Path, arrivals=None) -> pd.DataFrame:
    """Measured per-request times (seconds): columns ``arrival``, ``first_token``,
    ``finish`` and, when known, ``num_prompt_tokens``, ``num_output_tokens``.

    Parameters
    ----------
    path : str or Path
        A CSV (simple format) or a vLLM ``benchmark_serving`` JSON file.
    arrivals : array-like, optional
        Arrival times (s) for a vLLM JSON that records none (the trace's).

    Raises
    ------
    ValueError
        One line naming the file, the row or key and the value, for any file
        that does not fit (see the module docstring).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"measured requests file {str(path)!r} does not exist")
    table = None
    if path.suffix.lower() == ".json":
        frame = _from_vllm_json(path, arrivals)
    else:
        frame, table = _from_csv(path)
    bad = ~((frame["arrival"] <= frame["first_token"]) & (frame["first_token"] <= frame["finish"]))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        where = (f"line {table.lines[i]} (data row {i}, counting from 0)" if table is not None
                 else f"request {i} (item {i} of the lists)")
        got = ", ".join(f"{k}={float(frame[k].iloc[i])!r}"
                        for k in ("arrival", "first_token", "finish"))
        raise ValueError(f"measured requests {str(path)!r} {where}: needs arrival <= "
                         f"first_token <= finish, got {got}")
    span = float(frame["finish"].max() - frame["arrival"].min())
    if not span > 0:
        raise ValueError(f"measured requests {str(path)!r}: all {len(frame)} requests arrive "
                         "and finish at the same instant (a span of 0 s, e.g. all times 0); "
                         "throughputs and relative errors would be undefined")
    return frame
