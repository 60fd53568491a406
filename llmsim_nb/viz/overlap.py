"""NPU vs PIM overlap in one iteration: when each compute unit is busy, and when both are.

With PIM, the execution graph places attention's memory-bound operators on a
PIM unit (``node_unit >= 1``) beside the device's own compute (``node_unit ==
0``). Without sub-batch interleaving the two take turns; with it, one
sub-batch's attention on PIM runs while the other's GEMMs run on the NPU. This
module turns one iteration's node schedule into busy intervals per unit and
measures that overlap.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ._axes import get_axes, note, require
from .gantt import MIN_BAR_FRACTION, check_time_unit

_NEEDS = ("node_start_at", "node_end_at", "node_device", "node_unit")


def _merge(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Union of intervals ``[start, end)`` as sorted, disjoint ``(n, 2)`` rows."""
    keep = end > start  # zero-length nodes occupy no time
    if not keep.any():
        return np.zeros((0, 2))
    order = np.argsort(start[keep], kind="stable")
    s, e = start[keep][order], end[keep][order]
    merged = [[s[0], e[0]]]
    for a, b in zip(s[1:], e[1:]):
        if a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return np.array(merged)


def _intersect(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Intersection of two sorted disjoint interval sets (two-pointer sweep)."""
    out, i, j = [], 0, 0
    while i < len(x) and j < len(y):
        lo, hi = max(x[i, 0], y[j, 0]), min(x[i, 1], y[j, 1])
        if hi > lo:
            out.append([lo, hi])
        if x[i, 1] < y[j, 1]:
            i += 1
        else:
            j += 1
    return np.array(out) if out else np.zeros((0, 2))


def npu_pim_intervals(ds: xr.Dataset, device: int | None = None) -> dict[str, np.ndarray]:
    """Busy intervals (s, from the iteration's start) of the NPU and the PIM units.

    Parameters
    ----------
    ds : xarray.Dataset
        What ``Simulator.step()`` returns (per-node ``node_start_at``,
        ``node_end_at``, ``node_device``, ``node_unit`` and ``node_type``).
    device : int, optional
        The device whose units to look at; default the lowest device that has
        a PIM node (the NPU's own device for local PIM).

    Returns
    -------
    dict
        ``"npu"``, ``"pim"`` and ``"both"``: sorted disjoint ``(n, 2)`` arrays of
        ``[start, end)`` in seconds. ``"pim"`` is the union over the device's
        PIM units; ``"both"`` is where the NPU and a PIM unit are busy at once.

    Raises
    ------
    ValueError
        If ``ds`` has no per-node timing, or ``device`` runs no node.
    """
    require(ds, _NEEDS, "npu_pim_intervals")
    start = ds["node_start_at"].values
    end = ds["node_end_at"].values
    dev = ds["node_device"].values
    unit = ds["node_unit"].values
    # Only computation occupies a unit; communication and host transfers use links.
    comp = ds["node_type"].values.astype(str) == "COMP_NODE"
    if device is None:
        pim_devices = dev[comp & (unit >= 1)]
        device = int(pim_devices.min()) if len(pim_devices) else int(dev.min()) if len(dev) \
            else 0
    elif not (dev == device).any():
        raise ValueError(f"device={device} runs no node in this iteration; devices with "
                         f"nodes: {sorted(set(int(d) for d in dev))}")
    on = comp & (dev == device)
    npu = _merge(start[on & (unit == 0)], end[on & (unit == 0)])
    pim = _merge(start[on & (unit >= 1)], end[on & (unit >= 1)])
    return {"npu": npu, "pim": pim, "both": _intersect(npu, pim)}


def overlap_fraction(intervals: dict[str, np.ndarray]) -> float:
    """Share of PIM busy time during which the NPU is busy too (0 if PIM is idle)."""
    pim = float(np.sum(np.diff(intervals["pim"], axis=1))) if len(intervals["pim"]) else 0.0
    both = float(np.sum(np.diff(intervals["both"], axis=1))) if len(intervals["both"]) else 0.0
    return both / pim if pim > 0 else 0.0


def plot_npu_pim_overlap(ds: xr.Dataset, ax=None, device: int | None = None,
                         time_unit: str = "auto"):
    """NPU and PIM busy intervals of one iteration, and where they overlap.

    Parameters
    ----------
    ds : xarray.Dataset
        What ``Simulator.step()`` returns (see :func:`npu_pim_intervals`).
    ax : matplotlib Axes, optional
    device : int, optional
        Passed to :func:`npu_pim_intervals`.
    time_unit : {"auto", "s", "ms", "us", "ns"}
        Unit of the time axis (``"auto"``: as :func:`~llmsim_nb.viz.plot_gantt`).

    Returns
    -------
    matplotlib Axes
        Three rows, top to bottom "NPU", "PIM", "both", each one
        ``broken_barh`` collection in ``ax.collections`` (in that order) whose
        bars are the intervals of :func:`npu_pim_intervals` (one shorter than
        :data:`~llmsim_nb.viz.gantt.MIN_BAR_FRACTION` of the span drawn that
        wide, to stay visible); the title gives
        the overlapped share of PIM time.
    """
    spans = npu_pim_intervals(ds, device)
    ends = [iv[-1, 1] for iv in spans.values() if len(iv)]
    span = float(max(ends)) if ends else 0.0
    time_unit, unit_s = check_time_unit(time_unit, span)
    ax = get_axes(ax, figsize=(8.0, 2.2))
    min_width = MIN_BAR_FRACTION * span / unit_s
    rows = (("npu", "NPU", "C0"), ("pim", "PIM", "C2"), ("both", "both", "C3"))
    for y, (key, _, colour) in enumerate(rows):
        bars = [(a / unit_s, max((b - a) / unit_s, min_width)) for a, b in spans[key]]
        ax.broken_barh(bars, (y - 0.4, 0.8), facecolors=colour)
    ax.xaxis.get_major_formatter().set_useOffset(False)
    if not len(spans["pim"]):
        note(ax, "no PIM nodes in this iteration (pim_type 'none'?)")
    ax.set_yticks(range(len(rows)), [label for _, label, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(f"time from the iteration's start [{time_unit}]")
    ax.set_title(f"NPU vs PIM busy time: {overlap_fraction(spans):.0%} of PIM time overlapped")
    return ax
