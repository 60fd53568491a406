"""Error bands on serving metrics: the calibration's residual spread, propagated.

:func:`error_band` answers "how sure is this prediction?" for TTFT, TPOT, E2E
and throughput. It runs the configuration once as is (the *point* prediction)
and ``num_runs`` more times with the engine wrapped in a
:class:`~llmsim_nb.engines.scaled.ScaledEngine`: in each re-run every op kind's
latency is multiplied by one factor ``exp(r)``, ``r`` drawn from that kind's
residuals ``log(measured / predicted)`` (a :class:`ResidualTable`). The band is
the ``quantiles`` (p10 / p50 / p90 by default) of each metric over the re-runs.

Why one factor per kind per re-run, not a draw per op: the residuals are a
*systematic* model error. The same GEMM shape is off by the same amount every
time it runs (the data are medians of repeated timings), and shapes of one kind
share the parameters that were fitted, so errors within a kind are strongly
correlated; drawing per op would average them away over the thousands of ops of
a run and give a band far too narrow. Kinds have separate fitted parameters, so
they are drawn independently of each other. Why not one run at p10 and one at
p90 of every kind: that assumes every kind is off in the same direction at once,
a band wider than the data support; and a metric need not be monotone in a
kind's factor (a slower prefill batches more decodes).

Draws are Latin-hypercube (:meth:`ResidualTable.draw`) from an explicit
``numpy.random.Generator(seed)``: the same config, trace and seed give the same
band. ``num_runs`` defaults to 16: with one draw in each sixteenth of every
kind's distribution, p10 and p90 are interpolated between the 2nd and 3rd
(14th and 15th) of 16 ordered runs, and the cost stays at 17 runs
(``bench/bench_error_band.py`` measures the band's noise against 4-64 runs:
at 16 its width is within 1.5 points of 64 runs'). What the band
does not cover: any part without residuals (kinds the table lacks, e.g.
attention in ``a100-vidur``; collectives; host and serving-stack time), and the
error of carrying a device's fit to another device. It is the op-level model's
uncertainty, not a confidence interval of everything.
"""

from __future__ import annotations

import dataclasses
import math
from numbers import Integral
from typing import Callable

import numpy as np
import pandas as pd
import xarray as xr

from ..config import SimConfig
from ..engines.scaled import RESIDUAL_KINDS, ScaledEngine
from ..instance.simulator import Simulator
from ..results.dataset import variable
from ..results.files import THROUGHPUT_INTERVAL, throughput_over_time
from ..results.metrics import METRIC_UNITS, summarize
from .residuals import ResidualTable, check_quantiles, get_residuals, residuals_for_hardware

#: Metrics a band is reported for (keys of ``summarize`` / ``request_metrics``).
BAND_METRICS = ("ttft_mean", "tpot_mean", "e2e_mean", "request_throughput",
                "output_throughput", "generation_throughput")
#: Default number of perturbed re-runs (see the module docstring).
DEFAULT_NUM_RUNS = 16
DEFAULT_QUANTILES = (0.1, 0.5, 0.9)


def _table(residuals, config: SimConfig) -> ResidualTable:
    if residuals is None:
        return residuals_for_hardware(config.hardware)
    if isinstance(residuals, str):
        return get_residuals(residuals)
    if isinstance(residuals, ResidualTable):
        return residuals
    raise ValueError(f"residuals must be a table name, a ResidualTable or None, got "
                     f"{type(residuals).__name__}")


def _curves(ds: xr.Dataset, interval: float, num_buckets: int) -> np.ndarray:
    """Prompt and generation tokens/s per bucket, zero-padded to ``num_buckets``."""
    out = np.zeros((2, num_buckets))
    _, prompt, generation = throughput_over_time(ds, interval)
    out[0, :len(prompt)], out[1, :len(generation)] = prompt, generation
    return out


def error_band(config: SimConfig, *, trace=None, residuals=None,
               num_runs: int = DEFAULT_NUM_RUNS, quantiles=DEFAULT_QUANTILES, seed: int = 0,
               metrics: Callable[[xr.Dataset], dict] | None = None,
               interval: float = THROUGHPUT_INTERVAL) -> xr.Dataset:
    """The p10-p90 (by default) band of serving metrics from op-level residuals.

    Parameters
    ----------
    config : SimConfig
        The configuration to predict.
    trace : Trace, optional
        As for :class:`~llmsim_nb.instance.simulator.Simulator`; every run
        serves the same trace.
    residuals : str or ResidualTable, optional
        A table name of ``presets/residuals.yaml`` or a table; default: the
        stored table that names ``config.hardware``.
    num_runs : int
        Perturbed re-runs (>= 1); the cost is ``num_runs + 1`` simulations.
    quantiles : sequence of float
        Strictly increasing, in [0, 1].
    seed : int
        Seeds the ``numpy.random.Generator`` of the residual draws.
    metrics : callable, optional
        ``ds -> dict`` of figures (default :func:`~llmsim_nb.results.metrics.summarize`;
        ``llmsim validate`` passes the measured files' definitions). The band is
        made of its :data:`BAND_METRICS`.
    interval : float
        Bucket of the throughput-over-time band (seconds).

    Returns
    -------
    xarray.Dataset
        Per metric ``m``: ``m`` over ``quantile``, ``m_point`` (the unperturbed
        prediction) and ``m_runs`` over ``run``; ``residual_factor`` over
        (``run``, ``kind``); ``prompt_throughput_band`` and
        ``generation_throughput_band`` over (``quantile``, ``time``, the
        bucket ends). ``attrs``: ``residuals`` (table name), ``residual_source``,
        ``unperturbed_kinds``, ``num_runs``, ``seed``.

    Raises
    ------
    ValueError
        Bad ``num_runs``, ``quantiles``, ``seed`` or ``residuals`` (before any run).
    """
    if isinstance(num_runs, bool) or not isinstance(num_runs, Integral) or num_runs < 1:
        raise ValueError(f"num_runs must be an integer >= 1, got {num_runs!r}")
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    quantiles = check_quantiles(quantiles)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or \
            not math.isfinite(interval) or interval <= 0:
        raise ValueError(f"interval must be a finite number of seconds > 0, got {interval!r}")
    table = _table(residuals, config)
    metrics = summarize if metrics is None else metrics
    draws = table.draw(np.random.default_rng(int(seed)), int(num_runs))

    point_sim = Simulator(config, trace)
    point_ds = point_sim.run()
    base = getattr(point_sim.engine, "inner", point_sim.engine)  # below the reuse cache
    runs = [point_ds]
    # A perturbed engine keeps the spec, so its timings must never reach the
    # fast_run cache file keyed by that spec: re-runs keep their cache in memory.
    perturbed = dataclasses.replace(config, fast_run=False) if config.fast_run else config
    for r in range(num_runs):
        engine = ScaledEngine(base, {k: float(v[r]) for k, v in draws.items()})
        runs.append(Simulator(perturbed, point_sim.trace, engine=engine).run())
    figures = [metrics(ds) for ds in runs]
    num_buckets = max(len(throughput_over_time(ds, interval)[0]) for ds in runs)
    curves = np.stack([_curves(ds, interval, num_buckets) for ds in runs[1:]])

    data = {}
    for name in BAND_METRICS:
        units, text = METRIC_UNITS[name]
        # NaN where ``metrics`` lacks the figure (request_metrics has no
        # generation_throughput); band_table leaves such rows out.
        values = np.array([float(f.get(name, math.nan)) for f in figures[1:]])
        band = np.quantile(values, quantiles) if np.all(np.isfinite(values)) else \
            np.full(len(quantiles), math.nan)
        data[name] = xr.Variable(("quantile",), band,
                                 {"units": units, "long_name": f"band quantile of {text}"})
        data[f"{name}_point"] = xr.Variable((), float(figures[0].get(name, math.nan)),
                                            {"units": units, "long_name": f"point prediction "
                                                                          f"of {text}"})
        data[f"{name}_runs"] = xr.Variable(("run",), values,
                                           {"units": units, "long_name": f"{text}, per "
                                                                         "perturbed run"})
    data["residual_factor"] = variable("residual_factor", ("run", "kind"), np.array(
        [[draws[k][r] for k in table.kinds] for r in range(num_runs)]).reshape(
            num_runs, len(table.kinds)))
    for i, name in enumerate(("prompt_throughput_band", "generation_throughput_band")):
        data[name] = variable(name, ("quantile", "time"),
                              np.quantile(curves[:, i, :], quantiles, axis=0))
    return xr.Dataset(data, coords={
        "quantile": ("quantile", np.array(quantiles), {"units": "1",
                                                       "long_name": "band probability"}),
        "run": ("run", np.arange(num_runs), {"units": "1", "long_name": "perturbed re-run"}),
        "kind": ("kind", np.array(table.kinds, dtype=object),
                 {"units": "1", "long_name": "op kind of the residuals"}),
        "time": ("time", interval * np.arange(1, num_buckets + 1),
                 {"units": "s", "long_name": "end of the throughput bucket"})},
        attrs={"residuals": table.name, "residual_source": table.source,
               "unperturbed_kinds": ", ".join(k for k in RESIDUAL_KINDS
                                                if k not in table.kinds),
               "num_runs": int(num_runs), "seed": int(seed), "interval": float(interval)})


def band_table(band: xr.Dataset, measured: dict | None = None) -> pd.DataFrame:
    """One row per metric: point, band quantiles and, with ``measured``, whether
    the measured value lies within the band's outer quantiles (``inside``; None
    where nothing was measured). Metrics without a point prediction are left out."""
    rows = []
    for name in BAND_METRICS:
        if not math.isfinite(float(band[f"{name}_point"])):
            continue
        row = {"metric": name, "units": band[name].attrs["units"],
               "point": float(band[f"{name}_point"])}
        for q, v in zip(band["quantile"].values, band[name].values):
            row[f"p{100 * q:g}"] = float(v)
        if measured is not None:
            value = float(measured.get(name, math.nan))
            lo, hi = float(band[name].values[0]), float(band[name].values[-1])
            row["measured"] = value
            row["inside"] = bool(lo <= value <= hi) if math.isfinite(value) else None
        rows.append(row)
    return pd.DataFrame(rows).set_index("metric")


__all__ = ["BAND_METRICS", "DEFAULT_NUM_RUNS", "DEFAULT_QUANTILES", "band_table", "error_band"]
