"""Exact percentiles without a sorted copy: the floats np.percentile gives."""

from __future__ import annotations

import numpy as np
import pytest

import llmsim_nb.results.quantiles as quantiles
from llmsim_nb.results.quantiles import all_finite, percentiles

QS = [0, 12.5, 50, 90, 99, 99.9, 100]


def _samples(rng):
    for trial in range(200):
        n = int(rng.integers(1, 400))
        kind = trial % 5
        if kind == 0:
            yield rng.random(n)
        elif kind == 1:  # few distinct values, many ties
            yield rng.integers(0, 4, n) * 0.01
        elif kind == 2:  # one repeated value
            yield np.full(n, 0.3)
        elif kind == 3:  # heavy tails over many decades
            yield np.exp(rng.normal(0.0, 5.0, n))
        else:  # two adjacent floats in bulk and a few others
            yield np.concatenate([np.ones(n), np.full(n, np.nextafter(1.0, 2.0)),
                                  rng.random(3)])


# Tiny chunks, bins and gathers force every path: several chunks per pass, a
# rank in a bin too large to gather (a pass inside it), a run of ties.
@pytest.mark.parametrize("chunk,bins,gather", [(1 << 20, 1 << 16, 1 << 21), (7, 4, 3),
                                               (64, 2, 1), (5, 3, 10)])
def test_percentiles_are_numpys_floats(monkeypatch, chunk, bins, gather):
    monkeypatch.setattr(quantiles, "CHUNK", chunk)
    monkeypatch.setattr(quantiles, "NUM_BINS", bins)
    monkeypatch.setattr(quantiles, "MAX_GATHER", gather)
    rng = np.random.default_rng(11)
    for values in _samples(rng):
        before = values.copy()
        assert percentiles(values, QS) == np.percentile(values, QS).tolist()
        assert np.array_equal(values, before)  # neither copied nor reordered in place


def test_hand_computed_percentiles_and_the_empty_array():
    # n = 5: the median is the third value; p90 at index 3.6: 4 + 0.6 * (10 - 4).
    median, p90 = percentiles(np.array([10.0, 1.0, 4.0, 2.0, 3.0]), [50, 90])
    assert median == 3.0 and p90 == pytest.approx(4.0 + 0.6 * 6.0, rel=1e-15)
    assert all(np.isnan(percentiles(np.zeros(0), [50, 99])))


def test_a_range_wider_than_the_largest_float_and_negative_values(monkeypatch):
    # A small gather bound, so that these few values take the chunked passes
    # (with numpy's own bound they would be handed to np.percentile at once).
    monkeypatch.setattr(quantiles, "MAX_GATHER", 2)
    monkeypatch.setattr(quantiles, "CHUNK", 2)
    values = np.array([-1e308, 0.0, 1e308, 5.0, -3.0])
    assert percentiles(values, QS) == np.percentile(values, QS).tolist()
    values = -np.arange(1.0, 50.0) ** 3
    assert percentiles(values, QS) == np.percentile(values, QS).tolist()


def test_all_finite_reads_every_chunk(monkeypatch):
    monkeypatch.setattr(quantiles, "CHUNK", 3)
    values = np.arange(10.0)
    assert all_finite(values)
    values[9] = np.nan
    assert not all_finite(values)
    values[9], values[4] = 1.0, np.inf
    assert not all_finite(values)
