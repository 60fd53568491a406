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
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..results.files import THROUGHPUT_INTERVAL, throughput_over_time

_REQUEST_ALIASES = {"arrival": ("arrival", "arrival_at", "arrival_time"),
                    "first_token": ("first_token", "first_token_at", "first_token_time"),
                    "finish": ("finish", "finished_at", "finish_time")}


def _from_csv(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path)
    out = {}
    for ours, names in _REQUEST_ALIASES.items():
        found = [n for n in names if n in frame.columns]
        if not found:
            raise ValueError(f"measured requests {str(path)!r} lack a {ours!r} column (one of "
                             f"{list(names)}); columns: {list(frame.columns)}")
        out[ours] = frame[found[0]].astype(float).to_numpy()
    for extra in ("num_prompt_tokens", "num_output_tokens"):
        if extra in frame.columns:
            out[extra] = frame[extra].astype(float).to_numpy()
    return pd.DataFrame(out)


def _from_vllm_json(path: Path, arrivals) -> pd.DataFrame:
    data = json.loads(path.read_text())
    for key in ("ttfts", "output_lens"):
        if key not in data:
            raise ValueError(f"vLLM benchmark file {str(path)!r} has no {key!r} list")
    ttft = np.asarray(data["ttfts"], dtype=float)
    n = len(ttft)
    if "start_times" in data:
        arrival = np.asarray(data["start_times"], dtype=float)
        arrival = arrival - arrival.min()
    elif arrivals is not None:
        arrival = np.asarray(arrivals, dtype=float)
        if len(arrival) != n:
            raise ValueError(f"vLLM benchmark file {str(path)!r} has {n} requests but the "
                             f"trace has {len(arrival)} arrivals")
    else:
        raise ValueError(f"vLLM benchmark file {str(path)!r} records no arrival times; pass "
                         "the trace's arrivals (arrivals=trace.arrival_at)")
    if "e2els" in data:
        e2e = np.asarray(data["e2els"], dtype=float)
    elif "itls" in data:
        e2e = ttft + np.array([float(np.sum(x)) for x in data["itls"]])
    else:
        raise ValueError(f"vLLM benchmark file {str(path)!r} has neither 'e2els' nor 'itls'")
    frame = {"arrival": arrival, "first_token": arrival + ttft, "finish": arrival + e2e,
             "num_output_tokens": np.asarray(data["output_lens"], dtype=float)}
    if "input_lens" in data:
        frame["num_prompt_tokens"] = np.asarray(data["input_lens"], dtype=float)
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
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"measured requests file {str(path)!r} does not exist")
    frame = _from_vllm_json(path, arrivals) if path.suffix.lower() == ".json" \
        else _from_csv(path)
    bad = ~((frame["arrival"] <= frame["first_token"]) & (frame["first_token"] <= frame["finish"]))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(f"measured requests {str(path)!r} row {i}: needs arrival <= "
                         f"first_token <= finish, got {frame.iloc[i].to_dict()}")
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


def compare_requests(measured: pd.DataFrame, simulated: pd.DataFrame | xr.Dataset
                     ) -> pd.DataFrame:
    """Measured and simulated serving metrics side by side, with relative error
    ``simulated / measured - 1``."""
    if isinstance(simulated, xr.Dataset):
        simulated = simulated_requests(simulated)
    m, s = request_metrics(measured), request_metrics(simulated)
    rows = [(k, m[k], s.get(k, math.nan)) for k in m if k not in ("num_requests",)]
    table = pd.DataFrame(rows, columns=["metric", "measured", "simulated"]).set_index("metric")
    table["error"] = table["simulated"] / table["measured"] - 1.0
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


def load_throughput_curve(path: str | Path) -> Curve:
    """A throughput curve from the original's Fig. 6 CSV (``time duration`` = interval
    start) or our ``-throughput.tsv`` (``time_duration`` = interval end)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"throughput curve {str(path)!r} does not exist")
    sep = "\t" if path.suffix.lower() == ".tsv" else ","
    frame = pd.read_csv(path, sep=sep)
    frame.columns = [c.strip().replace(" ", "_") for c in frame.columns]
    need = {"time_duration", "prompt_throughput", "generation_throughput"}
    if not need <= set(frame.columns):
        raise ValueError(f"throughput curve {str(path)!r} needs columns {sorted(need)}, has "
                         f"{list(frame.columns)}")
    t = frame["time_duration"].to_numpy(dtype=float)
    interval = float(np.median(np.diff(t))) if len(t) > 1 else THROUGHPUT_INTERVAL
    start = t if t[0] == 0 else t - interval  # interval ends (ours) -> starts
    return Curve(start, frame["prompt_throughput"].to_numpy(dtype=float),
                 frame["generation_throughput"].to_numpy(dtype=float), interval)


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
    """
    if not math.isclose(measured.interval, simulated.interval, rel_tol=1e-6):
        raise ValueError(f"curves have different intervals: measured {measured.interval} s, "
                         f"simulated {simulated.interval} s")
    out = {}
    n = max(len(measured.start), len(simulated.start))
    for name in ("prompt", "generation"):
        m, s = getattr(measured, name), getattr(simulated, name)
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
