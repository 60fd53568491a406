"""Shared helpers of the plotting functions (matplotlib is imported lazily here).

matplotlib is an optional dependency (the ``notebooks`` extra): importing
:mod:`llmsim_nb.viz` never loads it, and a plotting function called without it
raises one :class:`ImportError` saying which extra to install (:func:`pyplot`).
"""

from __future__ import annotations

import functools
import importlib
import sys

import xarray as xr

INSTALL_HINT = "pip install 'llmsim_nb[notebooks]'"


def matplotlib_module(name: str = "matplotlib.pyplot", what: str | None = None):
    """Import and return ``name`` (a matplotlib module).

    When matplotlib is not installed, raise ``ImportError("<what> needs
    matplotlib: pip install 'llmsim_nb[notebooks]'")``; ``what`` defaults to
    the calling function's name. Any other import failure (a broken install)
    propagates unchanged.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if not (exc.name or "").split(".")[0] == "matplotlib":
            raise
        if what is None:
            what = f"llmsim_nb.viz.{sys._getframe(1).f_code.co_name}"
        raise ImportError(f"{what} needs matplotlib: {INSTALL_HINT}",
                          name="matplotlib") from exc


def pyplot(what: str | None = None):
    """``matplotlib.pyplot``, or the ImportError of :func:`matplotlib_module`."""
    if what is None:
        what = f"llmsim_nb.viz.{sys._getframe(1).f_code.co_name}"
    return matplotlib_module("matplotlib.pyplot", what)


def needs_matplotlib(func):
    """Decorate a plotting function that imports matplotlib itself, so that it
    first raises the ImportError of :func:`matplotlib_module` when matplotlib
    is missing."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        matplotlib_module("matplotlib", f"llmsim_nb.viz.{func.__name__}")
        return func(*args, **kwargs)
    return wrapper


def get_axes(ax=None, figsize: tuple[float, float] = (7.0, 3.0)):
    """``ax`` itself, or the Axes of a new figure of ``figsize`` inches.

    A new figure goes through ``matplotlib.pyplot`` so that notebooks show it;
    code that must not touch pyplot's global state (the dashboard) passes its
    own Axes (then pyplot is not imported). Without matplotlib, raises the
    ImportError naming the calling plot function and the extra to install.
    """
    if ax is not None:
        return ax
    plt = pyplot(f"llmsim_nb.viz.{sys._getframe(1).f_code.co_name}")
    # Constrained layout makes room for the labels and for legends outside the axes.
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def legend_outside(ax, above: bool = False, **kwargs) -> None:
    """A legend outside the axes, never over the data: right of it, or ``above`` it.

    Right of the axes, top-aligned; ``above`` puts it in one row over the
    axes and lifts the title over it (for a plot whose right side holds a twin
    axis). Constrained layout (figures of :func:`get_axes`) makes room for it;
    on a figure without a layout engine (which would cut it off) the legend
    goes inside the axes where it hides the least data.
    """
    handles, _ = ax.get_legend_handles_labels()
    if not handles:
        return
    if ax.figure.get_layout_engine() is None:
        ax.legend(**{"loc": "best", "fontsize": 8, **kwargs})
    elif above:
        ax.legend(**{"loc": "lower left", "bbox_to_anchor": (0.0, 1.02), "ncols": len(handles),
                     "fontsize": 8, "frameon": False, "borderaxespad": 0.0, **kwargs})
        ax.set_title(ax.get_title(), pad=22)  # one 8 pt legend row + the 2 % gap, in points
    else:
        ax.legend(**{"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "fontsize": 8,
                     "frameon": False, "borderaxespad": 0.0, **kwargs})


def si_ticks(axis, unit: str = "") -> None:
    """Label ``axis`` (``ax.xaxis`` / ``ax.yaxis``) with SI prefixes: ``2 ms``, ``150 k``.

    matplotlib's default ScalarFormatter writes tiny or huge ranges as small
    numbers plus a separate offset / ``1e-6`` multiplier text at the axis end,
    which is easy to miss; an engineering formatter puts the scale in every
    label. Linear axes only (a log axis keeps its decade labels).
    Seconds of 1 and more stay plain seconds (``3600 s``, not ``3.6 ks``).
    """
    ticker = matplotlib_module("matplotlib.ticker", "llmsim_nb.viz")
    sep = "\N{THIN SPACE}"
    eng = ticker.EngFormatter(unit=unit, sep=sep)
    if axis.axis_name == "x":
        # SI labels ("3500 s") are twice matplotlib's assumed tick label width: fewer ticks.
        axis.set_major_locator(ticker.MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
    if unit == "s":
        axis.set_major_formatter(ticker.FuncFormatter(
            lambda x, pos: f"{x:g}{sep}s" if abs(x) >= 1 else eng(x, pos)))
    else:
        axis.set_major_formatter(eng)


def require(ds: xr.Dataset, names: tuple[str, ...], what: str) -> None:
    """Raise a ValueError naming the variables ``what`` needs that ``ds`` lacks."""
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise ValueError(f"{what} needs the variable(s) {missing} in the Dataset; "
                         f"it has {sorted(str(v) for v in ds.data_vars)}")


def note(ax, text: str) -> None:
    """Write ``text`` in the middle of an empty plot (nothing to draw yet)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="0.4")
