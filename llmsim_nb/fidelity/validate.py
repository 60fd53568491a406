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

import math

import numpy as np
import pandas as pd
import xarray as xr

from .measured_requests import load_measured_requests
from .throughput_curve import MIN_CURVE_INTERVAL as MIN_CURVE_INTERVAL
from .throughput_curve import Curve, load_throughput_curve, simulated_curve


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
