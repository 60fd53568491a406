"""Cumulative distributions of per-request latencies."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._axes import get_axes, legend_outside, matplotlib_module, note, require, si_ticks

LATENCY_METRICS = ("ttft", "tpot", "e2e_latency")
_LABELS = {"ttft": "TTFT", "tpot": "TPOT", "e2e_latency": "E2E", "queueing_delay": "queueing"}


def latency_cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical CDF of the finite ``values``: sorted values and ``i / n``.

    Requests that have not reached a point (NaN) are left out: the CDF is over
    the requests that have a value.
    """
    v = np.sort(np.asarray(values, dtype=np.float64)[np.isfinite(values)])
    return v, np.arange(1, len(v) + 1) / max(len(v), 1)


def plot_latency_cdf(ds: xr.Dataset, ax=None, metrics: tuple[str, ...] = LATENCY_METRICS):
    """CDFs of request latencies (TTFT, TPOT and end-to-end by default).

    The x axis is logarithmic when the values span a decade or more (a TPOT
    is milliseconds, an end-to-end latency seconds) and none is 0, linear
    otherwise; ticks carry SI prefixes (``200 µs``, ``5 ms``).

    Parameters
    ----------
    ds : xarray.Dataset
        Any Dataset with the ``metrics`` along ``request`` (a run Dataset).
    ax : matplotlib Axes, optional
    metrics : tuple of str
        Per-request variables, seconds.

    Returns
    -------
    matplotlib Axes
        One step line per metric with finite values, in ``metrics`` order,
        labelled with the metric and its count.
    """
    require(ds, tuple(metrics), "plot_latency_cdf")
    ax = get_axes(ax)
    drawn, low, high = 0, np.inf, -np.inf
    for i, name in enumerate(metrics):
        x, y = latency_cdf(ds[name].values)
        if len(x):
            ax.step(x, y, where="post", color=f"C{i}",
                    label=f"{_LABELS.get(name, name)} (n={len(x)})")
            drawn += 1
            low, high = min(low, float(x[0])), max(high, float(x[-1]))
    if drawn:
        _latency_axis(ax, low, high)
        legend_outside(ax)
    else:
        note(ax, "no finished requests yet")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("latency [s]")
    ax.set_ylabel("fraction of requests")
    ax.set_title("Request latency CDF")
    return ax


def _latency_axis(ax, low: float, high: float) -> None:
    """Log x from ``low`` to ``high`` s when they span a decade (and low > 0), else linear.

    Log ticks are at 1-2-5 steps over up to three decades and at decades
    beyond (never the default's crowded 2..9 labels), all with SI prefixes.
    """
    if not (low > 0 and high >= 10 * low):  # a zero cannot go on a log axis
        si_ticks(ax.xaxis, "s")
        return
    ticker = matplotlib_module("matplotlib.ticker", "llmsim_nb.viz.plot_latency_cdf")
    ax.set_xscale("log")
    subs = (1.0, 2.0, 5.0) if np.log10(high / low) <= 3 else (1.0,)
    ax.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
    ax.xaxis.set_minor_locator(ticker.LogLocator(base=10, subs=np.arange(2, 10)))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    si_ticks(ax.xaxis, "s")
