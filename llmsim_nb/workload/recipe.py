"""WorkloadRecipe: the ``llmsim run`` workload flags as a typed, checked value.

``llmsim run --num_requests 200 --arrival gamma --cv 2 --rate 5 --lengths
uniform:32,512,1,128 --seed 3`` generates its trace with::

    WorkloadRecipe.from_flags(num_requests=200, arrival="gamma", cv=2.0, rate=5.0,
                              lengths="uniform:32,512,1,128").build(3)

The same recipe and seed always give the same trace. Bad values raise a
one-line ``ValueError`` naming the flag, the value and what is allowed, when
the recipe is made (before anything is generated or simulated).

Length specs (``--lengths``)
----------------------------
``sharegpt``
    ShareGPT-like prompts and outputs (:func:`.sharegpt_like`), the default.
``alpaca``
    Alpaca-like prompts, ShareGPT-like outputs (:func:`.alpaca_like`).
``fixed:IN,OUT``
    Every request has ``IN >= 1`` prompt and ``OUT >= 0`` output tokens.
``uniform:LO,HI``
    Prompt and output lengths each drawn uniformly from ``LO..HI``
    (inclusive; ``1 <= LO <= HI``).
``uniform:PLO,PHI,OLO,OHI``
    Prompts from ``PLO..PHI`` (``PLO >= 1``), outputs from ``OLO..OHI``
    (``OLO >= 0``), both inclusive.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from .generators import (DEFAULT_TRACE_RATE, DEFAULT_TRACE_REQUESTS, constant_arrivals,
                         synthetic_trace)
from .lengths import Fixed, LengthDistribution, Uniform, alpaca_like, sharegpt_like
from .trace import MAX_ARRIVAL_S, MAX_TOKENS, Trace

__all__ = ["ARRIVALS", "LENGTHS_SYNTAX", "MAX_GENERATED_REQUESTS", "WorkloadRecipe"]

#: Arrival processes ``--arrival`` accepts.
ARRIVALS = ("poisson", "gamma", "constant")
#: What ``--lengths`` accepts, as its help and errors spell it.
LENGTHS_SYNTAX = "sharegpt, alpaca, fixed:IN,OUT, uniform:LO,HI or uniform:PLO,PHI,OLO,OHI"
#: Most requests a recipe generates (3 columns of 8 bytes: 240 MB); far more than
#: a simulation of one instance gets through in reasonable time.
MAX_GENERATED_REQUESTS = 10_000_000

_INT = re.compile(r"[0-9]+")


def _is_number(value: object) -> bool:
    return not isinstance(value, (bool, np.bool_)) and isinstance(
        value, (int, float, np.integer, np.floating))


def _show(value: object) -> str:
    return f"{value:g}" if _is_number(value) else repr(value)


def _parse_lengths(spec: object) -> tuple[str, tuple[int, ...]]:
    """``"fixed:128,64"`` -> ``("fixed", (128, 64))``; a ValueError names ``--lengths``."""
    if not isinstance(spec, str):
        raise ValueError(f"--lengths {spec!r}: must be a string, one of {LENGTHS_SYNTAX}")
    kind, colon, rest = spec.partition(":")
    if kind in ("sharegpt", "alpaca"):
        if colon:
            raise ValueError(f"--lengths {spec!r}: {kind} takes no numbers; allowed: "
                             f"{LENGTHS_SYNTAX}")
        return kind, ()
    if kind not in ("fixed", "uniform"):
        raise ValueError(f"--lengths {spec!r} is not a length spec; allowed: {LENGTHS_SYNTAX}")
    parts = [p.strip() for p in rest.split(",")] if colon else []
    counts = (2,) if kind == "fixed" else (2, 4)
    form = "fixed:IN,OUT (prompt, output tokens)" if kind == "fixed" else \
        "uniform:LO,HI (prompt and output range) or uniform:PLO,PHI,OLO,OHI"
    if len(parts) not in counts or not all(_INT.fullmatch(p) for p in parts):
        raise ValueError(f"--lengths {spec!r}: {kind} takes {' or '.join(map(str, counts))} "
                         f"whole numbers >= 0 separated by commas: {form}")
    nums = tuple(int(p) for p in parts)
    big = [v for v in nums if v > MAX_TOKENS]
    if big:
        raise ValueError(f"--lengths {spec!r}: {big[0]} tokens is above the most a request "
                         f"may hold, {MAX_TOKENS} (2**31 - 1)")
    if nums[0] < 1:
        raise ValueError(f"--lengths {spec!r}: prompts need at least 1 token, so the first "
                         f"number must be >= 1")
    if kind == "uniform":
        for what, low, high in zip(("prompt", "output"), nums[::2], nums[1::2]):
            if low > high:
                raise ValueError(f"--lengths {spec!r}: the {what} range {low}..{high} is "
                                 f"empty; LO must be <= HI")
    return kind, nums


def _distributions(kind: str, nums: tuple[int, ...]
                   ) -> tuple[LengthDistribution, LengthDistribution]:
    if kind == "sharegpt":
        return sharegpt_like()
    if kind == "alpaca":
        return alpaca_like()
    if kind == "fixed":
        return Fixed(nums[0]), Fixed(nums[1])
    prompt = Uniform(nums[0], nums[1])
    return prompt, (Uniform(nums[2], nums[3]) if len(nums) == 4 else prompt)


@dataclass(frozen=True, slots=True)
class WorkloadRecipe:
    """How to generate a trace: request count, arrival process and lengths.

    Parameters
    ----------
    num_requests : int
        Requests to generate, ``1 .. MAX_GENERATED_REQUESTS`` (``--num_requests``).
    arrival : {"poisson", "gamma", "constant"}
        Arrival process (``--arrival``): exponential gaps, Gamma gaps with
        coefficient of variation ``cv``, or evenly spaced (request ``i`` at
        ``i / rate`` s). The first request arrives at 0 s.
    rate : float
        Mean arrival rate in requests per second, finite and ``> 0`` (``--rate``).
    cv : float or None
        Coefficient of variation of the gaps, ``>= 0``, for ``arrival="gamma"``
        only (``--cv``); None there means 1 (Poisson-like). Must be None for
        the other processes.
    lengths : str
        Prompt and output length spec (``--lengths``), see the module docstring.

    Raises
    ------
    ValueError
        One line naming the flag, the value and what is allowed.
    """

    num_requests: int = DEFAULT_TRACE_REQUESTS
    arrival: str = "poisson"
    rate: float = DEFAULT_TRACE_RATE
    cv: float | None = None
    lengths: str = "sharegpt"

    def __post_init__(self) -> None:
        n = self.num_requests
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) \
                or not 1 <= n <= MAX_GENERATED_REQUESTS:
            raise ValueError(f"--num_requests {n!r}: must be a whole number between 1 and "
                             f"{MAX_GENERATED_REQUESTS}")
        object.__setattr__(self, "num_requests", int(n))
        if self.arrival not in ARRIVALS:
            raise ValueError(f"--arrival {self.arrival!r} is not an arrival process; allowed: "
                             f"{', '.join(ARRIVALS)}")
        if not _is_number(self.rate) or not math.isfinite(self.rate) or self.rate <= 0:
            raise ValueError(f"--rate {_show(self.rate)}: must be a finite number > 0 "
                             f"(requests per second)")
        object.__setattr__(self, "rate", float(self.rate))
        if self.cv is not None:
            if self.arrival != "gamma":
                fixed = "1" if self.arrival == "poisson" else "0"
                raise ValueError(f"--cv {_show(self.cv)} applies only to --arrival gamma; the "
                                 f"arrival process is {self.arrival}, whose gaps' cv is "
                                 f"always {fixed}")
            if not _is_number(self.cv) or not math.isfinite(self.cv) or self.cv < 0:
                raise ValueError(f"--cv {_show(self.cv)}: must be a finite number >= 0 (0 = evenly "
                                 f"spaced, 1 = Poisson-like, > 1 = burstier)")
            object.__setattr__(self, "cv", float(self.cv))
        _parse_lengths(self.lengths)
        span = (self.num_requests - 1) / self.rate
        if span >= MAX_ARRIVAL_S:
            raise ValueError(f"--num_requests {self.num_requests} at --rate {self.rate:g} "
                             f"spans {span:g} s; arrivals must stay below {MAX_ARRIVAL_S:g} s "
                             f"(about 3 years): raise --rate")

    @classmethod
    def from_flags(cls, **flags: Any) -> WorkloadRecipe:
        """Build a recipe from ``llmsim run`` flag names; None means "the default".

        Parameters
        ----------
        **flags
            Any of ``num_requests``, ``arrival``, ``rate``, ``cv``, ``lengths``.

        Returns
        -------
        WorkloadRecipe
        """
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(flags) - set(known))
        if unknown:
            raise ValueError(f"WorkloadRecipe.from_flags: unknown flag(s) {unknown}; known "
                             f"flags: {known}")
        return cls(**{k: v for k, v in flags.items() if v is not None})

    def describe(self) -> str:
        """The recipe as ``llmsim run`` flags (what a generated trace's source says)."""
        cv = f" --cv {self.cv:g}" if self.cv is not None else ""
        return (f"--num_requests {self.num_requests} --arrival {self.arrival}{cv} "
                f"--rate {self.rate:g} --lengths {self.lengths}")

    def build(self, rng: np.random.Generator | int) -> Trace:
        """Generate the trace.

        Parameters
        ----------
        rng : numpy.random.Generator or int
            The only source of randomness, or a seed ``>= 0`` for
            ``numpy.random.default_rng(seed)`` (then recorded in the source).
            Draw order: arrivals, prompt lengths, output lengths, as
            :func:`.synthetic_trace` (which poisson and gamma use).

        Returns
        -------
        Trace
            ``source`` is ``generated (FLAGS[ --seed S])``.
        """
        seed = ""
        if not isinstance(rng, np.random.Generator):
            if isinstance(rng, (bool, np.bool_)) or not isinstance(rng, (int, np.integer)) \
                    or rng < 0:
                raise ValueError(f"WorkloadRecipe.build: rng must be a numpy.random.Generator "
                                 f"or a seed >= 0, got {rng!r}")
            seed, rng = f" --seed {int(rng)}", np.random.default_rng(int(rng))
        prompt, output = _distributions(*_parse_lengths(self.lengths))
        n = self.num_requests
        if self.arrival == "constant":
            times = constant_arrivals(rng, n, self.rate)
            columns = (times, prompt.sample(rng, n), output.sample(rng, n))
        else:
            cv = {} if self.arrival == "poisson" else {"cv": 1.0 if self.cv is None else self.cv}
            made = synthetic_trace(rng, n, self.rate, prompt, output, arrival=self.arrival, **cv)
            columns = (made.arrival_at, made.num_prompt_tokens, made.num_output_tokens)
        return Trace(*columns, source=f"generated ({self.describe()}{seed})")
