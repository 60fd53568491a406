"""Exact percentiles of a large array without a sorted copy of it.

``np.percentile`` partitions a copy of its input: for the inter-token gaps of
a run of a million requests (one float per output token, half a gigabyte)
that copy was the largest single allocation of ``summarize``. :func:`percentiles`
gives the same floats from passes over fixed-size chunks of the array,
holding at most a few chunks' worth of temporaries:

1. the minimum and maximum;
2. a count of the values in each of :data:`NUM_BINS` equal-width bins between
   them (a value's bin is ``floor((x - lo) * scale)``: monotone in ``x``, so
   each bin is a contiguous run of the sorted values), which locates the bin
   holding each wanted rank and the number of values before it;
3. per such bin, its values are gathered and partitioned when there are at
   most :data:`MAX_GATHER` of them; otherwise the bin's own minimum and
   maximum are taken and, unless they are equal (a run of one repeated value:
   the answer), step 2 repeats inside the bin. Each repeat narrows the range
   by ``NUM_BINS``, and ties end it, so it terminates.

The wanted ranks are numpy's ``'linear'`` method: with ``n`` values the
``q``-th percentile sits at virtual index ``v = (n - 1) * q / 100``, between
the order statistics ``floor(v)`` and ``floor(v) + 1``, and the final
interpolation is ``np.quantile`` of those two values at ``v - floor(v)``
(numpy's own arithmetic), so the result equals ``np.percentile`` bit for bit
(tested on random data with ties).
"""

from __future__ import annotations

import math

import numpy as np

#: Values per chunk of a pass (8 MiB of float64).
CHUNK = 1 << 20
#: Bins per counting pass.
NUM_BINS = 1 << 16
#: Largest bin gathered and partitioned directly.
MAX_GATHER = 1 << 21


def _chunks(values: np.ndarray, lo: float = -math.inf, hi: float = math.inf):
    """``values`` a chunk at a time; only those in ``[lo, hi]`` when bounded."""
    bounded = lo > -math.inf or hi < math.inf
    for start in range(0, len(values), CHUNK):
        c = values[start:start + CHUNK]
        yield c[(c >= lo) & (c <= hi)] if bounded else c


def all_finite(values: np.ndarray) -> bool:
    """Whether every value is finite (one chunk at a time: no full-size mask)."""
    return all(bool(np.isfinite(c).all()) for c in _chunks(values))


def _select(values: np.ndarray, ranks: list[int], lo: float, hi: float,
            below: int, everything: bool = False) -> dict[int, float]:
    """The ``ranks``-th smallest values (0-based) of ``values``, knowing that
    they lie in ``[lo, hi]`` and that ``below`` values are smaller than ``lo``
    (``everything``: ``lo`` and ``hi`` are the extremes of all values)."""
    if lo == hi:  # one repeated value
        return dict.fromkeys(ranks, lo)
    scale = NUM_BINS / (hi - lo)
    if not math.isfinite(scale):  # a range below ~4e-304 wide: one bin, gathered whole
        scale = 0.0
    # A first pass (the extremes of all values) need not filter by range.
    bound = (-math.inf, math.inf) if everything else (lo, hi)
    counts = np.zeros(NUM_BINS, dtype=np.int64)
    for c in _chunks(values, *bound):
        counts += np.bincount(_bins(c, lo, scale), minlength=NUM_BINS)
    cumulative = np.cumsum(counts)
    groups: dict[int, list[int]] = {}  # bin -> the ranks in it
    for r in ranks:
        groups.setdefault(int(np.searchsorted(cumulative, r - below, side="right")), []).append(r)
    before = {j: below + (int(cumulative[j - 1]) if j else 0) for j in groups}
    small = [j for j in groups if counts[j] <= MAX_GATHER or scale == 0.0]
    found: dict[int, float] = {}
    if small:
        picked: dict[int, list[np.ndarray]] = {j: [] for j in small}
        for c in _chunks(values, *bound):
            b = _bins(c, lo, scale)
            for j in small:
                picked[j].append(c[b == j])
        for j in small:
            kth = [r - before[j] for r in groups[j]]
            part = np.partition(np.concatenate(picked[j]), kth)
            found.update(zip(groups[j], part[kth].tolist()))
    for j in (j for j in groups if j not in small):  # a large bin: count inside it
        bin_lo, bin_hi = math.inf, -math.inf
        for c in _chunks(values, *bound):
            mine = c[_bins(c, lo, scale) == j]
            if len(mine):
                bin_lo, bin_hi = min(bin_lo, float(mine.min())), max(bin_hi, float(mine.max()))
        found.update(_select(values, groups[j], bin_lo, bin_hi, before[j]))
    return found


def _bins(chunk: np.ndarray, lo: float, scale: float) -> np.ndarray:
    """Bin of each value of ``chunk`` (all in ``[lo, hi]``): monotone in the value."""
    bins = ((chunk - lo) * scale).astype(np.int64)
    return np.minimum(bins, NUM_BINS - 1, out=bins)


def percentiles(values: np.ndarray, qs: list[float]) -> list[float]:
    """``np.percentile(values, qs).tolist()`` for finite ``values`` (not
    checked here: see :func:`all_finite`), without copying or reordering
    ``values`` when there are more than :data:`MAX_GATHER` of them (fewer are
    handed to ``np.percentile``). NaN for each ``q`` of an empty array. Signed zeros compare
    equal, so where numpy returns 0.0 this may return -0.0 or the reverse
    (never for inter-token gaps: ``x - x`` is +0.0). Values spanning more
    than the largest float (``max - min`` overflows) take ``np.percentile``
    on a copy.

    Parameters
    ----------
    values : numpy.ndarray
        One-dimensional, finite.
    qs : list of float
        Percentiles in ``[0, 100]``.
    """
    n = len(values)
    if not n:
        return [math.nan] * len(qs)
    if n <= MAX_GATHER:  # a copy no larger than one gathered bin: numpy itself
        return np.percentile(values, qs).tolist()
    virtual = [(n - 1) * np.true_divide(q, 100) for q in qs]  # numpy's 'linear' index
    floors = [int(np.floor(v)) for v in virtual]
    ranks = sorted({r for k in floors for r in (k, min(k + 1, n - 1))})
    lo = min(float(c.min()) for c in _chunks(values))
    hi = max(float(c.max()) for c in _chunks(values))
    if not math.isfinite(hi - lo):  # a range wider than the largest float: numpy on a copy
        return np.percentile(values, qs).tolist()
    # The first pass counts between the extremes; nothing is below lo.
    found = _select(values, ranks, lo, hi, 0, everything=True)
    return [float(np.quantile(np.array([found[k], found[min(k + 1, n - 1)]]), float(v - k)))
            for v, k in zip(virtual, floors)]
