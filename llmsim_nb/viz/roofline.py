"""The roofline of a block's operators on an engine."""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..models.ops import OpBlock
from ._axes import get_axes, legend_outside


def _inner(engine):
    """The engine that does the timing (a reuse wrapper only caches it)."""
    while hasattr(engine, "inner"):
        engine = engine.inner
    return engine


def roofline_points(engine, block: OpBlock) -> xr.Dataset:
    """Where each operator of ``block`` sits on ``engine``'s roofline.

    Parameters
    ----------
    engine : Engine
        Any engine; one that has ``dram_bytes(op)`` (the NPU engines) is
        charged its real DRAM traffic (minimum bytes plus tiling re-reads),
        otherwise the op's minimum bytes are used.
    block : OpBlock
        E.g. ``template.instantiate(batch)[1]``, the decoder block.

    Returns
    -------
    xarray.Dataset
        Along ``op``: ``flops`` (FLOP), ``dram_bytes`` (B), ``intensity``
        (FLOP/B), ``latency``, ``compute_latency``, ``memory_latency`` (s, summed
        over instances), ``attained`` (FLOP/s = flops / latency) and
        ``memory_bound`` (memory time > compute time); coordinate ``kind``.
        Attributes ``peak_matmul_flops``, ``peak_vector_flops`` and
        ``memory_bandwidth`` where the engine's spec has them.
    """
    timing = engine.simulate(block)
    inner = _inner(engine)
    flops, traffic, lat, comp, mem = (np.zeros(len(block.ops)) for _ in range(5))
    for i, (op, t) in enumerate(zip(block.ops, timing.ops)):
        flops[i] = op.total_flops
        traffic[i] = (float(np.sum(inner.dram_bytes(op))) if hasattr(inner, "dram_bytes")
                      else op.total_bytes)
        lat[i], comp[i], mem[i] = t.total, t.compute_latency.sum(), t.memory_latency.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        intensity = np.where(traffic > 0, flops / traffic, np.inf)
        attained = np.where(lat > 0, flops / lat, 0.0)
    unit = {"flops": "FLOP", "dram_bytes": "B", "intensity": "FLOP/B", "latency": "s",
            "compute_latency": "s", "memory_latency": "s", "attained": "FLOP/s",
            "memory_bound": "1"}
    values = {"flops": flops, "dram_bytes": traffic, "intensity": intensity, "latency": lat,
              "compute_latency": comp, "memory_latency": mem, "attained": attained,
              "memory_bound": mem > comp}
    spec = inner.spec
    attrs = {name: float(getattr(spec, name)) for name in
             ("peak_matmul_flops", "peak_vector_flops", "memory_bandwidth")
             if hasattr(spec, name)}
    attrs.update(engine=engine.name, block=block.name)
    return xr.Dataset({k: ("op", v, {"units": unit[k]}) for k, v in values.items()},
                      coords={"op": list(block.op_names),
                              "kind": ("op", [op.kind.value for op in block.ops])},
                      attrs=attrs)


def plot_roofline(points: xr.Dataset, ax=None):
    """The roofline: attainable FLOP/s against arithmetic intensity, ops as points.

    Parameters
    ----------
    points : xarray.Dataset
        From :func:`roofline_points`.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        Log-log. Roofs (``min(peak, intensity x bandwidth)``) for the systolic
        array and the vector unit when the engine reports them; one marker per
        op with work, filled for compute-bound ops and hollow for memory-bound
        ones (``ax.collections[0]`` compute-bound, ``[1]`` memory-bound).
    """
    ax = get_axes(ax, figsize=(8.5, 4.5))  # the legend takes the right 2.5 in
    work = (points["flops"].values > 0) & np.isfinite(points["intensity"].values)
    x = points["intensity"].values[work]
    y = points["attained"].values[work]
    names = points["op"].values[work]
    bound = points["memory_bound"].values[work]
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.scatter(x[~bound], y[~bound], color="C0", zorder=3, label="compute-bound op")
    ax.scatter(x[bound], y[bound], facecolors="none", edgecolors="C3", zorder=3,
               label="memory-bound op")
    # Ops close together (same half decade of intensity and quarter decade of FLOP/s) share
    # one label at the leftmost of them instead of overprinting each other.
    groups: dict[tuple[float, float], list[tuple[float, float, str]]] = {}
    for xi, yi, name in zip(x, y, names):
        key = (np.floor(np.log10(xi) * 2), np.floor(np.log10(yi) * 4))
        groups.setdefault(key, []).append((float(xi), float(yi), str(name)))
    right = max((min(m[0] for m in g) for g in groups.values()), default=0.0)
    for members in groups.values():
        xi, yi, _ = min(members)
        last = xi == right and len(groups) > 1  # the rightmost label goes left of its point
        ax.annotate(", ".join(m[2] for m in members), (xi, yi), textcoords="offset points",
                    xytext=(-6, 5) if last else (6, 5), ha="right" if last else "left",
                    fontsize=7)
    bw = points.attrs.get("memory_bandwidth")
    if bw and len(x):
        lo, hi = float(x.min()) / 3, float(x.max()) * 3
        for key, style, label in (("peak_matmul_flops", "-", "systolic array"),
                                  ("peak_vector_flops", "--", "vector unit")):
            peak = points.attrs.get(key)
            if not peak:
                continue
            ridge = peak / bw  # intensity where the memory roof meets the compute roof
            xs = np.array([lo, min(max(ridge, lo), hi), hi])
            ax.plot(xs, np.minimum(peak, xs * bw), style, color="0.3", linewidth=1,
                    label=f"{label} roof ({peak / 1e12:.3g} TFLOP/s, ridge {ridge:.3g} FLOP/B)")
    ax.set_xlabel("arithmetic intensity [FLOP/B of DRAM traffic]")
    ax.set_ylabel("attained [FLOP/s]")
    ax.set_title(f"Roofline: {points.attrs.get('block', 'block')} on "
                 f"{points.attrs.get('engine', 'engine')}")
    legend_outside(ax, fontsize=7)
    return ax
