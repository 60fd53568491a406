"""Prompt and generation throughput over simulated time."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..results.files import THROUGHPUT_INTERVAL, throughput_over_time
from ._axes import get_axes, note, require


def plot_throughput(ds: xr.Dataset, ax=None, interval: float = THROUGHPUT_INTERVAL):
    """Prompt and generation tokens/s per interval of simulated time.

    The same buckets as ``llmsim run --output`` writes (the original's 0.5 s,
    :func:`llmsim_nb.results.files.throughput_over_time`): an iteration's tokens count
    in the interval its end falls in.

    Parameters
    ----------
    ds : xarray.Dataset
        A run Dataset (``Simulator.run()`` / ``results()``) with ``t_end``,
        ``num_prefill_tokens`` and ``num_decode_tokens`` along ``iteration``.
    ax : matplotlib Axes, optional
        Where to draw; a new figure if None.
    interval : float
        Bucket length in seconds.

    Returns
    -------
    matplotlib Axes
        Two step patches (``ax.patches``): prompt, then generation, with
        edges ``0, interval, 2 interval...`` and values in tokens/s.
    """
    require(ds, ("t_end", "num_prefill_tokens", "num_decode_tokens"), "plot_throughput")
    ax = get_axes(ax)
    ends, prompt, generation = throughput_over_time(ds, interval)
    if len(ends):
        edges = np.concatenate([[0.0], ends])
        ax.stairs(prompt, edges, label="prompt", color="C0", linewidth=1.5)
        ax.stairs(generation, edges, label="generation", color="C1", linewidth=1.5)
        ax.legend(loc="upper right")
    else:
        note(ax, "no iterations yet")
    ax.set_xlabel("simulated time [s]")
    ax.set_ylabel("throughput [tokens/s]")
    ax.set_title(f"Throughput ({interval:g} s buckets)")
    return ax
