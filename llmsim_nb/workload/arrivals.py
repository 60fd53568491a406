"""Arrival processes: random request arrival times in seconds."""

from __future__ import annotations

import numpy as np

from ._checks import check_int, check_positive, check_rng

__all__ = ["poisson_arrivals", "gamma_arrivals"]


def _from_gaps(gaps: np.ndarray) -> np.ndarray:
    """First arrival at 0 s, then the cumulative sum of the gaps."""
    out = np.empty(gaps.size + 1, dtype=np.float64)
    out[0] = 0.0
    np.cumsum(gaps, out=out[1:])
    return out


def poisson_arrivals(rng: np.random.Generator, num_requests: int, rate: float) -> np.ndarray:
    """Arrival times of a Poisson process.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    num_requests : int
        Number of arrivals, ``>= 1``.
    rate : float
        Mean arrival rate in requests per second, ``> 0``.

    Returns
    -------
    numpy.ndarray of float64
        Non-decreasing arrival times in seconds. The first request arrives at
        0 s; the ``num_requests - 1`` gaps are exponential with mean ``1/rate``.
    """
    rng = check_rng("poisson_arrivals", rng)
    n = check_int("poisson_arrivals", "num_requests", num_requests, 1)
    rate = check_positive("poisson_arrivals", "rate", rate)
    return _from_gaps(rng.exponential(1.0 / rate, size=n - 1))


def gamma_arrivals(
    rng: np.random.Generator, num_requests: int, rate: float, cv: float
) -> np.ndarray:
    """Arrival times with Gamma-distributed inter-arrival gaps.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    num_requests : int
        Number of arrivals, ``>= 1``.
    rate : float
        Mean arrival rate in requests per second, ``> 0``.
    cv : float
        Coefficient of variation (std / mean) of the gaps, ``>= 0``. ``cv = 1``
        gives a Poisson process, ``cv > 1`` burstier traffic, ``cv < 1`` more
        regular traffic and ``cv = 0`` evenly spaced arrivals.

    Returns
    -------
    numpy.ndarray of float64
        Non-decreasing arrival times in seconds, the first at 0 s. Gaps have
        shape ``1/cv**2`` and scale ``cv**2/rate`` (mean ``1/rate``).
    """
    rng = check_rng("gamma_arrivals", rng)
    n = check_int("gamma_arrivals", "num_requests", num_requests, 1)
    rate = check_positive("gamma_arrivals", "rate", rate)
    cv = check_positive("gamma_arrivals", "cv", cv, allow_zero=True)
    if cv == 0.0:
        return _from_gaps(np.full(n - 1, 1.0 / rate))
    shape = 1.0 / cv**2
    return _from_gaps(rng.gamma(shape, 1.0 / (rate * shape), size=n - 1))
