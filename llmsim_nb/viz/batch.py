"""What each iteration's batch is made of: prefill tokens and decode tokens."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._axes import get_axes, legend_outside, note, require, si_ticks


def plot_batch_composition(ds: xr.Dataset, ax=None):
    """Prefill and decode tokens of every iteration, stacked.

    Under iteration-level scheduling a batch mixes prompt tokens (a request's
    prefill, or a chunk of it) with one decode token per running request; this
    shows the mix change from iteration to iteration.

    Parameters
    ----------
    ds : xarray.Dataset
        A run (or step) Dataset with ``num_prefill_tokens`` and
        ``num_decode_tokens`` along ``iteration``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        Two filled step patches (``ax.patches``): prefill from 0, decode stacked
        on it (baseline = prefill); edges are iteration numbers ``i - 0.5``.
    """
    require(ds, ("num_prefill_tokens", "num_decode_tokens"), "plot_batch_composition")
    ax = get_axes(ax)
    prefill = ds["num_prefill_tokens"].values.astype(np.float64)
    decode = ds["num_decode_tokens"].values.astype(np.float64)
    if len(prefill):
        its = ds["iteration"].values if "iteration" in ds.coords else np.arange(len(prefill))
        edges = np.concatenate([its - 0.5, [its[-1] + 0.5]])
        # One patch per series (not one bar per iteration) keeps long runs fast.
        ax.stairs(prefill, edges, baseline=0.0, fill=True, color="C0", label="prefill tokens")
        ax.stairs(prefill + decode, edges, baseline=prefill, fill=True, color="C1",
                  label="decode tokens")
        legend_outside(ax)
        ax.set_xlim(edges[0], edges[-1])
        ax.set_ylim(bottom=0.0)
    else:
        note(ax, "no iterations yet")
    ax.xaxis.get_major_locator().set_params(integer=True)
    si_ticks(ax.yaxis)
    ax.set_xlabel("iteration")
    ax.set_ylabel("tokens in the batch")
    ax.set_title("Batch composition")
    return ax
