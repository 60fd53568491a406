"""A Gantt chart of one iteration: every execution-graph node on its device or link."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._axes import get_axes, legend_outside, note, require

#: Row kind of each node type, in the order rows appear under a device.
ROW_KINDS = {"COMP_NODE": "compute", "COMM_COLL_NODE": "network", "COMM_SEND_NODE": "network",
             "COMM_RECV_NODE": "network", "MEM_STORE_NODE": "host link",
             "MEM_LOAD_NODE": "host link"}
_KIND_ORDER = ("compute", "network", "host link")
_COLOURS = {"COMP_NODE": "C0", "COMM_COLL_NODE": "C1", "COMM_SEND_NODE": "C2",
            "COMM_RECV_NODE": "C4", "MEM_STORE_NODE": "C3", "MEM_LOAD_NODE": "C5"}
_LABELS = {"COMP_NODE": "compute", "COMM_COLL_NODE": "collective", "COMM_SEND_NODE": "send",
           "COMM_RECV_NODE": "receive", "MEM_STORE_NODE": "KV store to host",
           "MEM_LOAD_NODE": "KV load from host"}


def gantt_rows(ds: xr.Dataset) -> list[tuple[int, str]]:
    """The chart's rows, top to bottom: ``(device, kind)`` for every pair with a node.

    A device's compute, its network traffic (collectives, sends, receives) and
    its host link (KV eviction and reload) are separate rows because they run
    at the same time.
    """
    require(ds, ("node_start_at", "node_end_at", "node_device"), "gantt_rows")
    pairs = {(int(d), ROW_KINDS[str(t)]) for d, t in
             zip(ds["node_device"].values, ds["node_type"].values)}
    return sorted(pairs, key=lambda p: (p[0], _KIND_ORDER.index(p[1])))


#: Seconds per tick unit of the Gantt charts' time axes.
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
#: A bar narrower than this fraction of the drawn time span is drawn this wide
#: (at ~700 px of axes, about 2 px), so that a short node (a collective of a few
#: microseconds beside milliseconds of compute) stays visible.
MIN_BAR_FRACTION = 0.003
#: Drawing order: later types lie on top where bars of one row overlap.
_Z_ORDER = {"COMP_NODE": 2, "MEM_STORE_NODE": 2, "MEM_LOAD_NODE": 2, "COMM_SEND_NODE": 3,
            "COMM_RECV_NODE": 3, "COMM_COLL_NODE": 4}


def time_unit_for(span: float) -> str:
    """The largest of s, ms, us, ns in which ``span`` seconds is at least 1 (ns below)."""
    for unit in ("s", "ms", "us"):
        if span >= TIME_UNITS[unit]:
            return unit
    return "ns"


def check_time_unit(time_unit: str, span: float) -> tuple[str, float]:
    """``(unit, seconds per unit)`` for ``time_unit`` (``"auto"``: :func:`time_unit_for`)."""
    if time_unit == "auto":
        time_unit = time_unit_for(span)
    if time_unit not in TIME_UNITS:
        raise ValueError(f"time_unit={time_unit!r} is not one of {['auto', *TIME_UNITS]}")
    return time_unit, TIME_UNITS[time_unit]


def visible_spans(start: np.ndarray, end: np.ndarray, min_width: float) -> list[tuple]:
    """``(start, width)`` bars of ``[start, end)``, each at least ``min_width`` wide."""
    return list(zip(start, np.maximum(end - start, min_width)))


def plot_gantt(ds: xr.Dataset, ax=None, time_unit: str = "auto"):
    """Every execution-graph node of one iteration as a bar on its device's row.

    Parameters
    ----------
    ds : xarray.Dataset
        What ``Simulator.step()`` returns: dimension ``node`` with
        ``node_start_at``, ``node_end_at``, ``node_device`` and the
        ``node_type`` coordinate (``Simulator.run()`` keeps no per-node timing).
    ax : matplotlib Axes, optional
    time_unit : {"auto", "s", "ms", "us", "ns"}
        Unit of the time axis; ``"auto"`` picks the one in which the
        iteration lasts 1 to 1000 (:func:`time_unit_for`).

    Returns
    -------
    matplotlib Axes
        One ``broken_barh`` collection per (row, node type) in
        ``ax.collections``; row labels are the y tick labels ("NPU 0 compute"...).
        A bar shorter than :data:`MIN_BAR_FRACTION` of the iteration is drawn
        that wide so it stays visible (its start is exact); collectives are
        drawn on top of sends and receives, and those on top of compute.
        With symmetric devices simulated once, only the representative
        devices appear.
    """
    if "node_start_at" not in ds.variables:
        raise ValueError("plot_gantt needs the Dataset of Simulator.step() (variables "
                         "node_start_at, node_end_at, node_device); run() keeps no per-node "
                         "timing")
    start = ds["node_start_at"].values
    end = ds["node_end_at"].values
    span = float(end.max() - min(start.min(), 0.0)) if len(end) else 0.0
    time_unit, unit_s = check_time_unit(time_unit, span)
    rows = gantt_rows(ds)
    ax = get_axes(ax, figsize=(8.0, 1.2 + 0.45 * max(len(rows), 1)))
    start, end = start / unit_s, end / unit_s
    min_width = MIN_BAR_FRACTION * span / unit_s
    device = ds["node_device"].values
    types = ds["node_type"].values.astype(str)
    if not rows:
        note(ax, "no graph nodes")
    seen = set()
    for y, (dev, kind) in enumerate(rows):
        for t in _COLOURS:
            if ROW_KINDS[t] != kind:
                continue
            sel = (device == dev) & (types == t)
            if not sel.any():
                continue
            # No white edges: on a bar a few pixels wide they would hide it.
            ax.broken_barh(visible_spans(start[sel], end[sel], min_width), (y - 0.4, 0.8),
                           facecolors=_COLOURS[t], linewidth=0, zorder=_Z_ORDER[t],
                           label=None if t in seen else _LABELS[t])
            seen.add(t)
    ax.set_yticks(range(len(rows)), [f"NPU {d} {k}" for d, k in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    if span > 0:
        ax.set_xlim(min(float(start.min()), 0.0), float(end.max()) + min_width)
    ax.xaxis.get_major_formatter().set_useOffset(False)
    ax.set_xlabel(f"time from the iteration's start [{time_unit}]")
    it = int(ds["iteration"].values[0]) if "iteration" in ds.coords and ds.sizes.get(
        "iteration", 0) else None
    ax.set_title("Execution graph schedule" + (f", iteration {it}" if it is not None else ""))
    legend_outside(ax)
    return ax
