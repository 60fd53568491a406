"""Cumulative distributions of per-request latencies."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._axes import get_axes, note, require

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

    The x axis is logarithmic (a TPOT is milliseconds, an end-to-end latency
    seconds) unless a value is 0.

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
    drawn, positive = 0, True
    for i, name in enumerate(metrics):
        x, y = latency_cdf(ds[name].values)
        if len(x):
            ax.step(x, y, where="post", color=f"C{i}",
                    label=f"{_LABELS.get(name, name)} (n={len(x)})")
            drawn += 1
            positive = positive and bool(x[0] > 0)
    if drawn:
        if positive:  # a zero latency cannot go on a log axis: stay linear then
            ax.set_xscale("log")
        ax.legend(loc="lower right")
    else:
        note(ax, "no finished requests yet")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("latency [s]")
    ax.set_ylabel("fraction of requests")
    ax.set_title("Request latency CDF")
    return ax
