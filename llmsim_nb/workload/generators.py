"""Synthetic workloads: arrivals x length distributions -> :class:`Trace`.

Building blocks live in :mod:`.arrivals` (arrival processes) and
:mod:`.lengths` (length distributions and the shipped empirical tables); they
are re-exported here. :func:`constant_arrivals` (evenly spaced arrivals, the
``llmsim run --arrival constant`` process) is defined here.

Shipped data and how to regenerate it
-------------------------------------
``llmsim_nb/data/sharegpt_lengths.csv``, ``llmsim_nb/data/alpaca_lengths.csv``
and ``llmsim_nb/data/default_trace.tsv`` are produced by
``bench/derive_length_tables.py`` from the seed traces in
``../shared/data/traces`` (relative to the repository root)::

    cd <repo> && python bench/derive_length_tables.py

The script is deterministic: rerunning it reproduces the files byte for byte.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

from ._checks import check_int, check_positive, check_rng
from ._data import data_file
from .arrivals import gamma_arrivals, poisson_arrivals
from .lengths import (
    Empirical,
    Fixed,
    LengthDistribution,
    Uniform,
    alpaca_like,
    sharegpt_like,
)
from .loaders import load_trace
from .trace import Trace

__all__ = [
    "poisson_arrivals",
    "gamma_arrivals",
    "constant_arrivals",
    "LengthDistribution",
    "Fixed",
    "Uniform",
    "Empirical",
    "sharegpt_like",
    "alpaca_like",
    "synthetic_trace",
    "default_trace",
    "DEFAULT_TRACE_SEED",
    "DEFAULT_TRACE_RATE",
    "DEFAULT_TRACE_REQUESTS",
]

DEFAULT_TRACE_SEED = 0
DEFAULT_TRACE_RATE = 10.0  # requests per second
DEFAULT_TRACE_REQUESTS = 100
_ARRIVALS = ("poisson", "gamma")


def constant_arrivals(rng: np.random.Generator, num_requests: int, rate: float) -> np.ndarray:
    """Evenly spaced arrival times: request ``i`` arrives at ``i / rate`` seconds.

    Parameters
    ----------
    rng : numpy.random.Generator
        Checked but unused: nothing is random, so no number is drawn (a trace
        generator's later draws are the same as with no arrival draws at all).
    num_requests : int
        Number of arrivals, ``>= 1``.
    rate : float
        Arrival rate in requests per second, ``> 0``.

    Returns
    -------
    numpy.ndarray of float64
        ``0, 1/rate, 2/rate, ...``, each computed as ``i / rate`` (no
        accumulated rounding): at rate 4, exactly ``0, 0.25, 0.5, 0.75, ...``.
    """
    check_rng("constant_arrivals", rng)
    n = check_int("constant_arrivals", "num_requests", num_requests, 1)
    rate = check_positive("constant_arrivals", "rate", rate)
    return np.arange(n, dtype=np.float64) / rate


def synthetic_trace(
    rng: np.random.Generator,
    num_requests: int,
    rate: float,
    prompt: LengthDistribution | None = None,
    output: LengthDistribution | None = None,
    arrival: str = "poisson",
    cv: float = 1.0,
) -> Trace:
    """Generate a random workload.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness. Draw order: arrivals, then prompt
        lengths, then output lengths.
    num_requests : int
        Number of requests, ``>= 1``.
    rate : float
        Mean arrival rate in requests per second, ``> 0``.
    prompt, output : LengthDistribution, optional
        Distributions of prompt and output token counts (objects with
        ``sample(rng, n)``). Default: :func:`sharegpt_like`. Prompt samples
        must be ``>= 1``.
    arrival : {"poisson", "gamma"}, optional
        Arrival process, see :func:`poisson_arrivals` / :func:`gamma_arrivals`.
    cv : float, optional
        Coefficient of variation of the gaps; only meaningful for
        ``arrival="gamma"`` (``"poisson"`` requires ``cv == 1``).

    Returns
    -------
    Trace
        First request at 0 s; ``source`` describes the generator settings.

    Raises
    ------
    ValueError
        For invalid arguments (a ``TraceError`` if sampled prompts are 0).
    """
    rng = check_rng("synthetic_trace", rng)
    n = check_int("synthetic_trace", "num_requests", num_requests, 1)
    rate = check_positive("synthetic_trace", "rate", rate)
    cv = check_positive("synthetic_trace", "cv", cv, allow_zero=True)
    if arrival not in _ARRIVALS:
        raise ValueError(f"synthetic_trace: arrival must be one of {_ARRIVALS}, got {arrival!r}")
    if arrival == "poisson" and cv != 1.0:
        raise ValueError(
            f"synthetic_trace: cv = {cv} only applies to arrival='gamma'; "
            f"a Poisson process has cv = 1"
        )
    if prompt is None or output is None:
        default_prompt, default_output = sharegpt_like()
        prompt = default_prompt if prompt is None else prompt
        output = default_output if output is None else output
    for name, dist in (("prompt", prompt), ("output", output)):
        if not isinstance(dist, LengthDistribution):
            raise ValueError(
                f"synthetic_trace: {name} must have a sample(rng, n) method "
                f"(e.g. Fixed, Uniform, Empirical), got {type(dist).__name__}"
            )
    if arrival == "poisson":
        times = poisson_arrivals(rng, n, rate)
    else:
        times = gamma_arrivals(rng, n, rate, cv)
    prompts = np.asarray(prompt.sample(rng, n))
    outputs = np.asarray(output.sample(rng, n))
    spec = f"arrival={arrival}" + (f", cv={cv:g}" if arrival == "gamma" else "")
    return Trace(
        times,
        prompts,
        outputs,
        source=f"synthetic(n={n}, rate={rate:g}/s, {spec}, prompt={prompt!r}, output={output!r})",
    )


@lru_cache(maxsize=1)
def default_trace() -> Trace:
    """The packaged default workload (what ``llmsim run`` simulates without arguments).

    100 requests with ShareGPT-like lengths (:func:`sharegpt_like`) arriving
    as a Poisson process of 10 requests/s, generated with
    ``synthetic_trace(numpy.random.default_rng(0), 100, 10.0)``.

    It is shipped as ``llmsim_nb/data/default_trace.tsv`` (seed TSV format,
    written by ``bench/derive_length_tables.py``) rather than regenerated on
    each call, so it stays identical even if a future NumPy changes its random
    streams. The result is cached; a ``Trace`` is immutable, so sharing it is
    safe.

    Returns
    -------
    Trace
    """
    resource = data_file("default_trace.tsv")
    with resources.as_file(resource) as path:
        trace = load_trace(path)
    return Trace(
        trace.arrival_at,
        trace.num_prompt_tokens,
        trace.num_output_tokens,
        source=(
            "llmsim_nb/data/default_trace.tsv (seed 0, Poisson 10 req/s, "
            "100 ShareGPT-like requests)"
        ),
    )
