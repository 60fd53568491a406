"""Validation: compare a simulated run with measurements of the same trace.

Two kinds of measurement are compared:

*Per-request results* (:func:`load_measured_requests`): the arrival, first
token and finish time of every request, from

- a simple CSV with columns ``arrival``, ``first_token``, ``finish`` in seconds
  (``arrival_at`` / ``first_token_at`` / ``finished_at`` are accepted too, as
  written by ``llmsim run --output``), and optional ``num_prompt_tokens`` /
  ``num_output_tokens``; or
- the JSON that vLLM's ``benchmarks/benchmark_serving.py --save-result``
  writes (``ttfts``, ``itls``, ``input_lens``, ``output_lens``, and, when
  present, ``e2els`` / ``start_times``). That file does not record arrival
  times, so they are taken from the trace (``arrivals=``) in request order.

From these :func:`request_metrics` derives the serving metrics (request and
token throughput, mean / p50 / p90 / p99 TTFT, TPOT and E2E latency) and
:func:`compare_requests` puts measured and simulated side by side with the
relative error of each.

*Throughput over time* (:func:`load_throughput_curve`): prompt and generation
tokens per second in fixed intervals (the original's Fig. 6 format, ``time
duration, prompt throughput, generation throughput``, or our
``-throughput.tsv``). :func:`compare_curves` aligns a measured and a simulated
curve interval by interval and reports the error of each curve's mean (the
average throughput over the run) and the interval-by-interval error
(``sum |sim - meas| / sum meas``).

Bad files
---------
Both loaders read the whole file before anything is simulated and refuse what
does not fit with one ``ValueError`` line naming the file, the row (line) or
JSON key and item, and the value: a missing path or a directory, bytes that
are not UTF-8 text, an empty file, a header with no rows, missing, duplicated
or ambiguous columns (``arrival`` and ``arrival_at`` both present), empty
cells, text, NaN, infinite or negative times and throughputs, fractional token
counts, requests whose times are out of order, a run whose span is 0 s
(everything at one instant, e.g. an all-zero file), an all-zero curve, a curve
whose times do not increase in even steps from 0 (or from one interval); and
for the JSON, invalid JSON, a value that is not an object, duplicate keys,
missing keys, lists of unequal length, and items that are not numbers (strings,
``null``, booleans, ``NaN``).

A relative error against a measured value of 0 (or one the file cannot give,
such as TPOT with no request of more than one output token) is *undefined*:
:func:`compare_requests` and :func:`compare_curves` return NaN for it, never
``inf``, and ``compare_requests`` says why in its ``note`` column.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..engines.measurements import _open_text, _read_table, _Table
from ..results.files import THROUGHPUT_INTERVAL, throughput_over_time

_REQUEST_ALIASES = {"arrival": ("arrival", "arrival_at", "arrival_time"),
                    "first_token": ("first_token", "first_token_at", "first_token_time"),
                    "finish": ("finish", "finished_at", "finish_time")}
#: Token-count columns a measured requests CSV may add, with their smallest allowed value.
_REQUEST_COUNTS = {"num_prompt_tokens": 1, "num_output_tokens": 0}
#: Shortest curve interval accepted: the simulated curve is bucketed at the same interval.
MIN_CURVE_INTERVAL = 1e-3


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


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


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
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {exc.lineno} column {exc.colno}: not valid JSON "
                         f"({exc.msg})") from None
    except _DuplicateKey as exc:
        raise ValueError(f"{path}: duplicate key {exc.args[0]!r}; each key may appear "
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


def simulated_requests(ds: xr.Dataset) -> pd.DataFrame:
    """The same columns as :func:`load_measured_requests`, from a run Dataset."""
    return pd.DataFrame({"arrival": ds["arrival_at"].values,
                         "first_token": ds["first_token_at"].values,
                         "finish": ds["finished_at"].values,
                         "num_prompt_tokens": ds["num_prompt_tokens"].values.astype(float),
                         "num_output_tokens": ds["num_output_tokens"].values.astype(float)})


def request_metrics(frame: pd.DataFrame) -> dict[str, float]:
    """Serving metrics of per-request times (seconds; throughputs per second).

    TPOT of a request is ``(finish - first_token) / (output_tokens - 1)`` over
    requests with more than one output token (needs ``num_output_tokens``).
    Throughput is over the span from the first arrival to the last finish.
    """
    done = frame[np.isfinite(frame["finish"])]
    span = float(done["finish"].max() - frame["arrival"].min()) if len(done) else math.nan
    ttft = (done["first_token"] - done["arrival"]).to_numpy()
    e2e = (done["finish"] - done["arrival"]).to_numpy()
    out = {"num_requests": float(len(frame)), "num_finished": float(len(done)),
           "duration": span, "request_throughput": len(done) / span if span else math.nan}
    if "num_output_tokens" in done:
        tokens = done["num_output_tokens"].to_numpy()
        out["output_throughput"] = float(tokens.sum()) / span if span else math.nan
        many = tokens > 1
        tpot = ((done["finish"] - done["first_token"]).to_numpy()[many] / (tokens[many] - 1))
    else:
        tpot = np.array([])
    for name, values in (("ttft", ttft), ("tpot", tpot), ("e2e", e2e)):
        values = values[np.isfinite(values)]
        out[f"{name}_mean"] = float(values.mean()) if len(values) else math.nan
        for q in (50, 90, 99):
            out[f"{name}_p{q}"] = float(np.percentile(values, q)) if len(values) else math.nan
    return out


def _undefined(measured: float, simulated: float) -> str:
    """Why ``simulated / measured - 1`` is undefined ("" when it is defined)."""
    if not math.isfinite(measured):
        return "undefined: the measurements do not give this metric"
    if measured == 0:
        return "undefined: the measured value is 0"
    if not math.isfinite(simulated):
        return "undefined: the simulation does not give this metric"
    return ""


def compare_requests(measured: pd.DataFrame, simulated: pd.DataFrame | xr.Dataset
                     ) -> pd.DataFrame:
    """Measured and simulated serving metrics side by side, with relative error
    ``simulated / measured - 1``.

    Where that error is undefined (the measured value is 0 or NaN, or the
    simulated one is NaN) ``error`` is NaN, never ``inf``, and ``note`` says
    why; ``note`` is ``""`` elsewhere.
    """
    if isinstance(simulated, xr.Dataset):
        simulated = simulated_requests(simulated)
    m, s = request_metrics(measured), request_metrics(simulated)
    rows = [(k, m[k], s.get(k, math.nan)) for k in m if k not in ("num_requests",)]
    table = pd.DataFrame(rows, columns=["metric", "measured", "simulated"]).set_index("metric")
    note = [_undefined(a, b) for a, b in zip(table["measured"], table["simulated"])]
    defined = np.array([not x for x in note])
    with np.errstate(divide="ignore", invalid="ignore"):
        error = table["simulated"] / table["measured"] - 1.0
    table["error"] = error.where(defined, math.nan)
    table["note"] = note
    return table


# ------------------------------------------------------------------ curves
@dataclass(frozen=True)
class Curve:
    """Throughput over time: ``start`` of each interval (s), prompt and generation
    tokens per second in it."""

    start: np.ndarray
    prompt: np.ndarray
    generation: np.ndarray
    interval: float = THROUGHPUT_INTERVAL


_CURVE_COLUMNS = ("time_duration", "prompt_throughput", "generation_throughput")


def load_throughput_curve(path: str | Path) -> Curve:
    """A throughput curve from the original's Fig. 6 CSV (``time duration`` = interval
    start) or our ``-throughput.tsv`` (``time_duration`` = interval end).

    Times must be finite, increase in even steps (the interval, at least
    :data:`MIN_CURVE_INTERVAL` s) and start at 0 (interval starts) or at one
    interval (interval ends); throughputs must be finite and >= 0, and not all
    zero. Anything else is a one-line ``ValueError`` (see the module docstring).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"throughput curve {str(path)!r} does not exist")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    raw = _read_table(path, "throughput curve", sep)
    names = tuple(c.replace(" ", "_") for c in raw.header)
    duplicates = sorted({c for c in names if c and names.count(c) > 1})
    if duplicates:
        raise ValueError(f"{path}: columns {list(raw.header)} name {duplicates} twice")
    table = _Table(raw.origin, names, raw.rows, raw.lines)
    if not set(_CURVE_COLUMNS) <= set(names):
        raise ValueError(f"throughput curve {str(path)!r} needs columns "
                         f"{sorted(_CURVE_COLUMNS)}, has {list(names)}")
    t = _times(table, "time_duration")
    values = {}
    for name in _CURVE_COLUMNS[1:]:
        out = np.empty(len(table))
        for i in range(len(table)):
            value = table.cell(i, name)
            x = table.number(i, name, value)
            if not math.isfinite(x) or x < 0:
                raise table.fail(i, name, value, "must be a finite number of tokens/s >= 0")
            out[i] = x
        values[name] = out
    steps = np.diff(t)
    back = np.flatnonzero(steps <= 0)
    if back.size:
        i = int(back[0]) + 1
        raise table.fail(i, "time_duration", table.cell(i, "time_duration"),
                         f"does not increase (after {table.cell(i - 1, 'time_duration')!r}); "
                         "times must increase in even steps")
    interval = float(np.median(steps)) if len(t) > 1 else THROUGHPUT_INTERVAL
    if interval < MIN_CURVE_INTERVAL:
        raise ValueError(f"{path}: the time_duration step is {interval!r} s; intervals must be "
                         f">= {MIN_CURVE_INTERVAL} s (the simulated curve is bucketed the same)")
    uneven = np.flatnonzero(np.abs(steps - steps[0]) > 1e-3 * steps[0]) if len(steps) else []
    if len(uneven):
        i = int(uneven[0]) + 1
        raise table.fail(i, "time_duration", table.cell(i, "time_duration"),
                         f"is {steps[i - 1]:g} s after the previous row, but the first step is "
                         f"{steps[0]:g} s; times must increase in even steps (no missing or "
                         "extra rows)")
    if t[0] != 0 and not math.isclose(t[0], interval, rel_tol=1e-3):
        raise table.fail(0, "time_duration", table.cell(0, "time_duration"),
                         f"must be 0 (times are interval starts) or {interval:g} (interval "
                         "ends); a curve must begin at the start of the run")
    prompt, generation = values["prompt_throughput"], values["generation_throughput"]
    if not (prompt.any() or generation.any()):
        raise ValueError(f"{path}: prompt and generation throughput are 0 in all {len(t)} "
                         "intervals; errors relative to an all-zero curve are undefined")
    start = t if t[0] == 0 else t - interval  # interval ends (ours) -> starts
    return Curve(start, prompt, generation, interval)


def simulated_curve(ds: xr.Dataset, interval: float = THROUGHPUT_INTERVAL) -> Curve:
    """The throughput curve of a run Dataset."""
    ends, prompt, generation = throughput_over_time(ds, interval)
    return Curve(ends - interval, prompt, generation, interval)


def compare_curves(measured: Curve, simulated: Curve) -> dict[str, float]:
    """Errors of a simulated throughput curve against a measured one.

    Returns ``{prompt,generation}_mean_error`` (relative error of the curve's
    mean over its own intervals, i.e. of the average throughput over the run),
    ``{prompt,generation}_interval_error`` (``sum |sim - meas| / sum meas`` over
    intervals, the shorter curve padded with zeros) and ``duration_error``.
    The errors of a throughput that is 0 in every measured interval are
    undefined and returned as NaN (never ``inf``). Curves without intervals are
    refused.
    """
    if not math.isclose(measured.interval, simulated.interval, rel_tol=1e-6):
        raise ValueError(f"curves have different intervals: measured {measured.interval} s, "
                         f"simulated {simulated.interval} s")
    for label, curve in (("measured", measured), ("simulated", simulated)):
        if len(curve.start) == 0:
            raise ValueError(f"the {label} curve has no intervals; nothing to compare")
    out = {}
    n = max(len(measured.start), len(simulated.start))
    for name in ("prompt", "generation"):
        m, s = getattr(measured, name), getattr(simulated, name)
        if not np.any(m):  # 0 everywhere: relative errors undefined
            out[f"{name}_mean_error"] = out[f"{name}_interval_error"] = math.nan
            continue
        out[f"{name}_mean_error"] = float(s.mean() / m.mean() - 1.0)
        mp, sp = np.zeros(n), np.zeros(n)
        mp[:len(m)], sp[:len(s)] = m, s
        out[f"{name}_interval_error"] = float(np.abs(sp - mp).sum() / mp.sum())
    out["duration_error"] = float(len(simulated.start) / len(measured.start) - 1.0)
    return out


def curves_side_by_side(measured: Curve, simulated: Curve) -> pd.DataFrame:
    """One row per interval: measured and simulated prompt / generation throughput."""
    n = max(len(measured.start), len(simulated.start))
    start = np.arange(n) * measured.interval

    def pad(x):
        out = np.zeros(n)
        out[:len(x)] = x
        return out

    return pd.DataFrame({"start": start, "prompt_measured": pad(measured.prompt),
                         "prompt_simulated": pad(simulated.prompt),
                         "generation_measured": pad(measured.generation),
                         "generation_simulated": pad(simulated.generation)}).set_index("start")


__all__ = ["Curve", "compare_curves", "compare_requests", "curves_side_by_side",
           "load_measured_requests", "load_throughput_curve", "request_metrics",
           "simulated_curve", "simulated_requests"]
