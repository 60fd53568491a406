"""Power over time per device (a run with ``power`` on, docs/power.md)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._axes import get_axes, legend_outside, require, si_ticks

#: Most devices drawn one line each (a bigger instance is drawn as min / mean / max).
MAX_DEVICE_LINES = 8


def power_over_time(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Step-function breakpoints of each device's power: ``(t, watts)`` with ``t`` of
    shape (2 n,) (each iteration's start and end) and ``watts`` (2 n, devices)."""
    require(ds, ("t_start", "t_end", "device_power"), "power_over_time")
    start, end = ds["t_start"].values, ds["t_end"].values
    power = ds["device_power"].values
    t = np.column_stack([start, end]).ravel()
    return t, np.repeat(power, 2, axis=0)


def plot_power(ds: xr.Dataset, ax=None):
    """Average power of each device per iteration, against simulated time.

    Parameters
    ----------
    ds : xarray.Dataset
        A run Dataset with ``device_power`` (``power`` on).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        One line per device (up to :data:`MAX_DEVICE_LINES`; more are drawn as
        min, mean and max), flat over each iteration. Between iterations the
        devices idle (the gaps are not drawn).
    """
    t, watts = power_over_time(ds)
    ax = get_axes(ax)
    if len(t):
        if watts.shape[1] <= MAX_DEVICE_LINES:
            for d in range(watts.shape[1]):
                ax.plot(t, watts[:, d], linewidth=1, label=f"device {d}")
        else:
            for name, values in (("max", watts.max(axis=1)), ("mean", watts.mean(axis=1)),
                                 ("min", watts.min(axis=1))):
                ax.plot(t, values, linewidth=1, label=f"{name} over devices")
        legend_outside(ax)
    ax.set_xlabel("simulated time")
    ax.set_ylabel("power (W)")
    si_ticks(ax.xaxis, "s")
    ax.set_title("device power per iteration")
    return ax


__all__ = ["MAX_DEVICE_LINES", "plot_power", "power_over_time"]
