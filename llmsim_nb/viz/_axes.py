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
