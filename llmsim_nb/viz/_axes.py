"""Shared helpers of the plotting functions (matplotlib is imported lazily here)."""

from __future__ import annotations

import xarray as xr


def get_axes(ax=None, figsize: tuple[float, float] = (7.0, 3.0)):
    """``ax`` itself, or the Axes of a new figure of ``figsize`` inches.

    A new figure goes through ``matplotlib.pyplot`` so that notebooks show it;
    code that must not touch pyplot's global state (the dashboard) passes its
    own Axes.
    """
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def require(ds: xr.Dataset, names: tuple[str, ...], what: str) -> None:
    """Raise a ValueError naming the variables ``what`` needs that ``ds`` lacks."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ValueError(f"{what} needs the variable(s) {missing} in the Dataset; "
                         f"it has {sorted(str(v) for v in ds.data_vars)}")


def note(ax, text: str) -> None:
    """Write ``text`` in the middle of an empty plot (nothing to draw yet)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
