"""The paged KV cache: usage and evictions over time, and the block table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from ._axes import get_axes, legend_outside, note, require, si_ticks

#: Default most blocks drawn by :func:`plot_block_table` (a 256 x 256 grid).
MAX_TABLE_BLOCKS = 65536


def plot_kv_usage(ds: xr.Dataset, ax=None):
    """KV-cache usage after each iteration and the evictions it caused.

    Parameters
    ----------
    ds : xarray.Dataset
        A run Dataset with ``t_end``, ``kv_usage`` and ``num_evicted`` along
        ``iteration``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
        ``ax.lines[0]`` is usage (fraction of blocks, 0..1) against iteration
        end time. Iterations that evicted are marked on it (``ax.lines[1]``)
        and the cumulative eviction count is on a twin axis on the right.
    """
    require(ds, ("t_end", "kv_usage", "num_evicted"), "plot_kv_usage")
    ax = get_axes(ax)
    t = ds["t_end"].values
    usage = ds["kv_usage"].values
    evicted = ds["num_evicted"].values
    if len(t):
        ax.plot(t, usage, color="C2", label="KV usage")
        hit = evicted > 0
        ax.plot(t[hit], usage[hit], "v", color="C3", markersize=5,
                label=f"evicting iterations ({int(hit.sum())})")
        twin = ax.twinx()
        twin.plot(t, np.cumsum(evicted), color="C3", linestyle=":", linewidth=1)
        twin.set_ylabel("evictions (cumulative)", color="C3")
        # At least 0..1, so that a run without evictions shows no fractional counts.
        twin.set_ylim(0, max(1.0, 1.05 * float(np.sum(evicted))))
        twin.yaxis.get_major_locator().set_params(integer=True)
        si_ticks(twin.yaxis)
    else:
        note(ax, "no iterations yet")
    ax.set_ylim(0, 1.05)
    si_ticks(ax.xaxis, "s")
    ax.set_xlabel("simulated time")
    ax.set_ylabel("KV blocks in use [fraction]")
    ax.set_title("KV cache usage and evictions")
    legend_outside(ax, above=True)  # the twin axis holds the right side
    return ax


def block_owner_grid(table: Mapping[int, Sequence[int]], num_blocks: int,
                     width: int | None = None, max_blocks: int = MAX_TABLE_BLOCKS
                     ) -> np.ndarray:
    """The request holding each block, laid out row by row (-1 = free or padding).

    Parameters
    ----------
    table : mapping of request id to block ids
        ``KVCacheManager.block_table()``.
    num_blocks : int
        Blocks in the pool.
    width : int, optional
        Blocks per row; default ``ceil(sqrt(shown blocks))``.
    max_blocks : int
        Show blocks ``0 .. max_blocks - 1`` at most (a pool can hold millions).

    Returns
    -------
    ndarray of int64, shape ``(rows, width)``
        ``grid.flat[b]`` is the request holding block ``b``.

    Raises
    ------
    ValueError
        If a block id is outside the pool or held by two requests (the cache's
        invariant says neither can happen).
    """
    if isinstance(num_blocks, bool) or not isinstance(num_blocks, (int, np.integer)) \
            or num_blocks < 1:
        raise ValueError(f"num_blocks must be an integer >= 1, got {num_blocks!r}")
    if isinstance(max_blocks, bool) or not isinstance(max_blocks, (int, np.integer)) \
            or max_blocks < 1:
        raise ValueError(f"max_blocks must be an integer >= 1, got {max_blocks!r}")
    shown = min(int(num_blocks), int(max_blocks))
    if width is None:
        width = math.ceil(math.sqrt(shown))
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be an integer >= 1, got {width!r}")
    owner = np.full(math.ceil(shown / width) * width, -1, dtype=np.int64)
    for rid, ids in table.items():
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= num_blocks):
            raise ValueError(f"request {rid} holds block ids outside 0..{num_blocks - 1}")
        ids = ids[ids < shown]
        if (owner[ids] != -1).any() or len(np.unique(ids)) != len(ids):
            raise ValueError(f"request {rid} holds a block that another request holds")
        owner[ids] = rid
    return owner.reshape(-1, width)


def plot_block_table(table, num_blocks: int | None = None, ax=None, width: int | None = None,
                     max_blocks: int = MAX_TABLE_BLOCKS):
    """The KV block table as a heat map: each cell a block, coloured by its request.

    Parameters
    ----------
    table : KVCacheManager or mapping of request id to block ids
        A cache (``sim.kv_cache``; its ``block_table()`` and ``num_blocks`` are
        read) or a table such as ``sim.kv_cache.block_table()``.
    num_blocks : int, optional
        Blocks in the pool; required with a mapping.
    ax : matplotlib Axes, optional
    width, max_blocks
        See :func:`block_owner_grid`. The title says when only the first
        ``max_blocks`` blocks are shown.

    Returns
    -------
    matplotlib Axes
        ``ax.images[0]`` holds ``owner mod 20`` per block (masked where free):
        20 colours cycle over request ids. Block ``b`` is row
        ``b // width``, column ``b % width``.
    """
    if hasattr(table, "block_table"):
        if num_blocks is None:
            num_blocks = table.num_blocks
        table = table.block_table()
    if num_blocks is None:
        raise ValueError("plot_block_table needs num_blocks with a table mapping "
                         "(or pass the KVCacheManager itself)")
    ax = get_axes(ax, figsize=(5.0, 5.0))
    import matplotlib as mpl

    grid = block_owner_grid(table, num_blocks, width, max_blocks)
    # with_extremes returns a copy: the registered colormap stays untouched.
    cmap = mpl.colormaps["tab20"].with_extremes(bad="0.93")  # free blocks
    # Twenty colours cycle over request ids: neighbours in admission order differ.
    colour = np.ma.masked_less(np.where(grid >= 0, grid % 20, -1), 0)
    ax.imshow(colour, cmap=cmap, vmin=0, vmax=19, interpolation="nearest", aspect="equal")
    used = int((grid >= 0).sum())
    title = f"KV block table: {used} of {num_blocks} blocks held by {len(table)} requests"
    if num_blocks > max_blocks:
        title += f"\n(first {max_blocks} blocks shown)"
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(f"block id mod {grid.shape[1]}")
    ax.set_ylabel(f"block id // {grid.shape[1]}")
    return ax
