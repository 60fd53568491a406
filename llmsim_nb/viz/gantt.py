"""A Gantt chart of one iteration: every execution-graph node on its device or link."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._axes import get_axes, note, require

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


def plot_gantt(ds: xr.Dataset, ax=None, time_unit: str = "ms"):
    """Every execution-graph node of one iteration as a bar on its device's row.

    Parameters
    ----------
    ds : xarray.Dataset
        What ``Simulator.step()`` returns: dimension ``node`` with
        ``node_start_at``, ``node_end_at``, ``node_device`` and the
        ``node_type`` coordinate (``Simulator.run()`` keeps no per-node timing).
    ax : matplotlib Axes, optional
    time_unit : {"s", "ms", "us"}
        Unit of the time axis.

    Returns
    -------
    matplotlib Axes
        One ``BrokenBarHCollection``/``PolyCollection`` per (row, node type) in
        ``ax.collections``; row labels are the y tick labels ("NPU 0 compute"...).
        With symmetric devices simulated once, only the representative
        devices appear.
    """
    scale = {"s": 1.0, "ms": 1e3, "us": 1e6}
    if time_unit not in scale:
        raise ValueError(f"time_unit={time_unit!r} is not one of {list(scale)}")
    if "node_start_at" not in ds.variables:
        raise ValueError("plot_gantt needs the Dataset of Simulator.step() (variables "
                         "node_start_at, node_end_at, node_device); run() keeps no per-node "
                         "timing")
    rows = gantt_rows(ds)
    ax = get_axes(ax, figsize=(8.0, 1.0 + 0.45 * max(len(rows), 1)))
    f = scale[time_unit]
    start = ds["node_start_at"].values * f
    end = ds["node_end_at"].values * f
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
            spans = list(zip(start[sel], np.maximum(end[sel] - start[sel], 0.0)))
            ax.broken_barh(spans, (y - 0.4, 0.8), facecolors=_COLOURS[t], edgecolor="white",
                           linewidth=0.3, label=None if t in seen else _LABELS[t])
            seen.add(t)
    ax.set_yticks(range(len(rows)), [f"NPU {d} {k}" for d, k in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(f"time from the iteration's start [{time_unit}]")
    it = int(ds["iteration"].values[0]) if "iteration" in ds.coords and ds.sizes.get(
        "iteration", 0) else None
    ax.set_title("Execution graph schedule" + (f", iteration {it}" if it is not None else ""))
    if seen:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return ax
