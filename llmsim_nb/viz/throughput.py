"""Prompt and generation throughput over simulated time."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from ..results.files import THROUGHPUT_INTERVAL, throughput_over_time
from ._axes import get_axes, legend_outside, note, require, si_ticks

#: Most buckets :func:`throughput_interval` gives a plot (a bar per few pixels).
MAX_PLOT_BUCKETS = 200
#: A bucket spans at least this many typical (median) iterations, so that a
#: bucket's rate is an average, not 0 or 2x depending on whether an iteration
#: ended in it.
MIN_ITERATIONS_PER_BUCKET = 4


def nice_step(x: float) -> float:
    """The smallest number of the 1-2-5 series (..., 0.5, 1, 2, 5, 10, ...) that is >= ``x``."""
    if not math.isfinite(x) or x <= 0:
        raise ValueError(f"nice_step needs a finite number > 0, got {x!r}")
    exponent = math.floor(math.log10(x))
    # Built from decimal text, so that 0.2 is the float nearest 0.2 (not 2 * 0.1 rounded);
    # the tolerance keeps an x that already is a 1-2-5 value.
    steps = [float(f"{m}e{exponent}") for m in (1, 2, 5)] + [float(f"1e{exponent + 1}")]
    return next(step for step in steps if step >= x * (1 - 1e-12))


def throughput_interval(ds: xr.Dataset, max_buckets: int = MAX_PLOT_BUCKETS) -> float:
    """A bucket width (s) for plotting ``ds``'s throughput, sized to the run's length.

    The smallest 1-2-5 step (:func:`nice_step`) that both splits ``0 .. last
    iteration end`` into at most ``max_buckets`` buckets and spans
    :data:`MIN_ITERATIONS_PER_BUCKET` median iteration durations. A long run
    gets 80-200 buckets (an hour: 20 s buckets, 180 of them), not 7,200 of the
    files' 0.5 s; a run of few iterations gets fewer, wider buckets. A run
    without iterations gets the files' :data:`THROUGHPUT_INTERVAL`.
    """
    if isinstance(max_buckets, bool) or not isinstance(max_buckets, (int, np.integer)) \
            or max_buckets < 1:
        raise ValueError(f"max_buckets must be an integer >= 1, got {max_buckets!r}")
    require(ds, ("t_end",), "throughput_interval")
    t_end = np.asarray(ds["t_end"].values, dtype=np.float64)
    if not len(t_end) or not np.max(t_end) > 0:
        return THROUGHPUT_INTERVAL
    floor = float(np.max(t_end)) / max_buckets
    if "t_start" in ds.variables:
        durations = t_end - np.asarray(ds["t_start"].values, dtype=np.float64)
        if (durations > 0).any():
            floor = max(floor, MIN_ITERATIONS_PER_BUCKET * float(np.median(
                durations[durations > 0])))
    return nice_step(floor)


def plot_throughput(ds: xr.Dataset, ax=None, interval: float | None = None,
                    band: xr.Dataset | None = None):
    """Prompt and generation tokens/s per interval of simulated time.

    Bucketed as ``llmsim run --output`` writes its table
    (:func:`llmsim_nb.results.files.throughput_over_time`): an iteration's
    tokens count in the interval its end falls in. The files use the
    original's 0.5 s; the plot's default width follows the run's length
    (:func:`throughput_interval`), so an hour is ~180 readable bars.

    Parameters
    ----------
    ds : xarray.Dataset
        A run Dataset (``Simulator.run()`` / ``results()``) with ``t_end``,
        ``num_prefill_tokens`` and ``num_decode_tokens`` along ``iteration``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure if None.
    interval : float, optional
        Bucket length in seconds, honoured as given; default the ``band``'s
        interval with a band, else :func:`throughput_interval` of ``ds``.
    band : xarray.Dataset, optional
        An error band of the same configuration
        (:func:`llmsim_nb.fidelity.error_band.error_band`, same ``interval``):
        its outer quantiles (p10-p90 by default) of each curve are drawn as
        shaded steps behind the lines.

    Returns
    -------
    matplotlib Axes
        Two step patches (``ax.patches``): prompt, then generation, with
        edges ``0, interval, 2 interval...`` and values in tokens/s; with a
        ``band``, two filled step patches after them (prompt, generation),
        each from the lowest to the highest band quantile.
    """
    require(ds, ("t_end", "num_prefill_tokens", "num_decode_tokens"), "plot_throughput")
    if interval is None:
        interval = (float(band.attrs["interval"]) if band is not None and "interval" in
                    band.attrs else throughput_interval(ds))
    if band is not None and not np.isclose(band.attrs.get("interval", np.nan), interval):
        raise ValueError(f"plot_throughput: band was made with interval="
                         f"{band.attrs.get('interval')!r} s, the plot uses {interval!r} s")
    ax = get_axes(ax)
    ends, prompt, generation = throughput_over_time(ds, interval)
    if len(ends):
        edges = np.concatenate([[0.0], ends])
        ax.stairs(prompt, edges, label="prompt", color="C0", linewidth=1.5)
        ax.stairs(generation, edges, label="generation", color="C1", linewidth=1.5)
        if band is not None:
            _draw_band(ax, band)
        legend_outside(ax)
        ax.set_xlim(0.0, edges[-1])
        ax.set_ylim(bottom=0.0)
    else:
        note(ax, "no iterations yet")
    si_ticks(ax.xaxis, "s")
    si_ticks(ax.yaxis)
    ax.set_xlabel("simulated time")
    ax.set_ylabel("throughput [tokens/s]")
    ax.set_title(f"Throughput ({interval:g} s buckets)")
    return ax


def _draw_band(ax, band: xr.Dataset) -> None:
    """Shade each curve's band between its lowest and highest quantile."""
    edges = np.concatenate([[0.0], band["time"].values])
    low, high = band["quantile"].values[0], band["quantile"].values[-1]
    for name, color in (("prompt", "C0"), ("generation", "C1")):
        values = band[f"{name}_throughput_band"].values
        ax.stairs(values[-1], edges, baseline=values[0], fill=True, color=color, alpha=0.25,
                  label=f"{name} p{100 * low:g}-p{100 * high:g}")
