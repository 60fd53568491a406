"""The prefix cache: hit rate over simulated time."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._axes import get_axes, legend_outside, needs_matplotlib, require, si_ticks

#: Default number of lookup iterations the rolling hit rate sums over.
HIT_RATE_WINDOW = 16
_NEEDS = ("t_end", "num_prefix_query_tokens", "num_prefix_cached_tokens")


def prefix_hit_rate_over_time(ds: xr.Dataset, window: int = HIT_RATE_WINDOW
                              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token-weighted prefix-cache hit rates at each iteration that made lookups.

    Parameters
    ----------
    ds : xarray.Dataset
        A run Dataset with ``t_end``, ``num_prefix_query_tokens`` and
        ``num_prefix_cached_tokens`` along ``iteration``.
    window : int
        The rolling rate sums over this many consecutive lookup iterations
        (iterations with ``num_prefix_query_tokens > 0``), the current one
        last (fewer at the start).

    Returns
    -------
    t_end, rolling, cumulative : ndarray of float64
        Per lookup iteration, in iteration order: its end time (s); cached
        over looked-up tokens of the window; and of the run so far.
        Empty when no iteration made a lookup.

    Raises
    ------
    ValueError
        If ``window`` is not an integer >= 1, or ``ds`` lacks a variable.
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise ValueError(f"window must be an integer >= 1 (lookup iterations), got {window!r}")
    require(ds, _NEEDS, "prefix_hit_rate_over_time")
    query = np.asarray(ds["num_prefix_query_tokens"].values, dtype=np.float64)
    looked = query > 0
    query = query[looked]
    cached = np.asarray(ds["num_prefix_cached_tokens"].values, dtype=np.float64)[looked]
    t = np.asarray(ds["t_end"].values, dtype=np.float64)[looked]
    cum_query, cum_cached = np.cumsum(query), np.cumsum(cached)

    def windowed(cum: np.ndarray) -> np.ndarray:
        out = cum.copy()
        out[window:] -= cum[:-window]  # token counts: exact in float64
        return out

    return t, windowed(cum_cached) / windowed(cum_query), cum_cached / cum_query


@needs_matplotlib
def plot_prefix_hit_rate(ds: xr.Dataset, ax=None, window: int = HIT_RATE_WINDOW):
    """Prefix-cache hit rate over simulated time: rolling and cumulative.

    Both are token-weighted (cached tokens over looked-up tokens, not a mean
    of per-iteration rates), as :func:`prefix_hit_rate_over_time` computes
    them; the cumulative rate ends at ``summarize(ds)["prefix_hit_rate"]``.

    Parameters
    ----------
    ds : xarray.Dataset
        A run Dataset of a run with prefix caching (``t_end``,
        ``num_prefix_query_tokens``, ``num_prefix_cached_tokens`` along
        ``iteration``).
    ax : matplotlib Axes, optional
        Where to draw; a new figure if None.
    window : int
        Lookup iterations the rolling rate sums over.

    Returns
    -------
    matplotlib Axes
        ``ax.lines[0]``: the rolling rate, ``ax.lines[1]``: the cumulative
        rate, both against the lookup iterations' end times (s), 0..1.

    Raises
    ------
    ValueError
        If ``ds`` made no prefix-cache lookup (every ``num_prefix_query_tokens``
        is 0: a run without prefix caching), lacks a variable, or ``window``
        is not an integer >= 1.
    """
    t, rolling, cumulative = prefix_hit_rate_over_time(ds, window)
    if not len(t):
        raise ValueError("plot_prefix_hit_rate: the Dataset has no prefix-cache lookups "
                         "(num_prefix_query_tokens is 0 in every iteration); run with prefix "
                         "caching on")
    ax = get_axes(ax)
    ax.plot(t, rolling, color="C0", label=f"rolling ({window} lookup iterations)")
    ax.plot(t, cumulative, color="C3", linestyle="--", label="cumulative")
    ax.set_ylim(0, 1.05)
    si_ticks(ax.xaxis, "s")
    ax.set_xlabel("simulated time")
    ax.set_ylabel("hit rate [fraction of tokens]")
    ax.set_title("Prefix-cache hit rate")
    legend_outside(ax)
    return ax


__all__ = ["HIT_RATE_WINDOW", "plot_prefix_hit_rate", "prefix_hit_rate_over_time"]
