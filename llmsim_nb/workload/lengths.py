"""Token-length distributions and the empirical tables shipped with the package.

The tables ``llmsim_nb/data/sharegpt_lengths.csv`` and
``llmsim_nb/data/alpaca_lengths.csv`` are derived from the seed traces in
``../shared/data/traces`` by ``bench/derive_length_tables.py``; rerun
``python bench/derive_length_tables.py`` from the repository root to
regenerate them (and ``llmsim_nb/data/default_trace.tsv``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol, runtime_checkable

import numpy as np

from ._checks import check_int, check_rng
from ._data import data_file

__all__ = [
    "LengthDistribution",
    "Fixed",
    "Uniform",
    "Empirical",
    "sharegpt_like",
    "alpaca_like",
    "read_length_table",
]


@runtime_checkable
class LengthDistribution(Protocol):
    """Anything that draws ``n`` non-negative integer token counts."""

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Return ``n`` samples as an ``int64`` array."""
        ...


@dataclass(frozen=True, slots=True)
class Fixed:
    """Always the same length.

    Parameters
    ----------
    value : int
        The length, ``>= 0``.
    """

    value: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_int("Fixed", "value", self.value, 0))

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Return ``n`` copies of ``value`` (``rng`` is checked but unused)."""
        check_rng("Fixed.sample", rng)
        n = check_int("Fixed.sample", "n", n, 0)
        return np.full(n, self.value, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class Uniform:
    """Integer lengths uniform on ``[low, high]`` (both inclusive).

    Parameters
    ----------
    low, high : int
        Bounds with ``0 <= low <= high``.
    """

    low: int
    high: int

    def __post_init__(self) -> None:
        low = check_int("Uniform", "low", self.low, 0)
        high = check_int("Uniform", "high", self.high, 0)
        if high < low:
            raise ValueError(f"Uniform: high must be >= low, got low={low}, high={high}")
        object.__setattr__(self, "low", low)
        object.__setattr__(self, "high", high)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Return ``n`` integers drawn uniformly from ``low..high``."""
        rng = check_rng("Uniform.sample", rng)
        n = check_int("Uniform.sample", "n", n, 0)
        return rng.integers(self.low, self.high, size=n, endpoint=True, dtype=np.int64)


@dataclass(frozen=True, slots=True, repr=False)
class Empirical:
    """Resample (with replacement) from observed lengths.

    Parameters
    ----------
    values : tuple of int
        Observed lengths, non-empty, each ``>= 0``. Any sequence of integers is
        accepted and stored as a tuple. Repeated values weight the draw.
    name : str, optional
        Short label used in ``repr`` and trace descriptions.
    """

    values: tuple[int, ...]
    name: str = ""

    def __post_init__(self) -> None:
        try:
            vals = tuple(self.values)
        except TypeError:
            raise ValueError(
                f"Empirical: values must be a sequence of integers >= 0, got {self.values!r}"
            ) from None
        if not vals:
            raise ValueError("Empirical: values must not be empty")
        for i, v in enumerate(vals):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(
                    f"Empirical: values[{i}] = {v!r}; every value must be an integer >= 0"
                )
        object.__setattr__(self, "values", tuple(int(v) for v in vals))
        if not isinstance(self.name, str):
            raise ValueError(f"Empirical: name must be a str, got {self.name!r}")

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return (
            f"Empirical({label}{len(self.values)} values, min={min(self.values)}, "
            f"mean={sum(self.values) / len(self.values):.1f}, max={max(self.values)})"
        )

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Return ``n`` values drawn uniformly, with replacement, from ``values``."""
        rng = check_rng("Empirical.sample", rng)
        n = check_int("Empirical.sample", "n", n, 0)
        support = np.asarray(self.values, dtype=np.int64)
        return support[rng.integers(0, support.size, size=n)]


def read_length_table(name: str) -> dict[str, tuple[int, ...]]:
    """Read a packaged length table ``llmsim_nb/data/<name>`` into columns.

    Lines starting with ``#`` are comments; the first other line is the
    comma-separated header; all values must be integers ``>= 0``.

    Parameters
    ----------
    name : str
        File name inside ``llmsim_nb/data``.

    Returns
    -------
    dict of str to tuple of int
        One entry per column.
    """
    text = data_file(name).read_text(encoding="utf-8")
    rows = [
        (n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if len(rows) < 2:
        raise ValueError(f"llmsim_nb/data/{name}: needs a header and at least one row")
    header = [h.strip() for h in rows[0][1].split(",")]
    cols: dict[str, list[int]] = {h: [] for h in header}
    for n, line in rows[1:]:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) != len(header):
            raise ValueError(
                f"llmsim_nb/data/{name}: line {n}: {len(fields)} fields, header has {len(header)}"
            )
        for h, f in zip(header, fields):
            try:
                v = int(f)
            except ValueError:
                raise ValueError(
                    f"llmsim_nb/data/{name}: line {n}: column {h!r} = {f!r} is not an integer"
                ) from None
            if v < 0:
                raise ValueError(
                    f"llmsim_nb/data/{name}: line {n}: column {h!r} = {v}; must be >= 0"
                )
            cols[h].append(v)
    return {h: tuple(v) for h, v in cols.items()}


def _column(table: dict[str, tuple[int, ...]], name: str, column: str) -> tuple[int, ...]:
    if column not in table:
        raise ValueError(
            f"llmsim_nb/data/{name}: missing column {column!r}; found {list(table)}"
        )
    return table[column]


@lru_cache(maxsize=None)
def sharegpt_like() -> tuple[Empirical, Empirical]:
    """Prompt and output length distributions resembling ShareGPT.

    Built from all 100 (prompt, output) pairs of the seed trace
    ``share-gpt-req100-rate10.tsv``, shipped as
    ``llmsim_nb/data/sharegpt_lengths.csv``. The two marginals are sampled
    independently (the pairing of a prompt with its output is not kept).

    Returns
    -------
    (Empirical, Empirical)
        ``(prompt_dist, output_dist)``.
    """
    name = "sharegpt_lengths.csv"
    table = read_length_table(name)
    return (
        Empirical(_column(table, name, "num_prompt_tokens"), name="sharegpt prompt"),
        Empirical(_column(table, name, "num_output_tokens"), name="sharegpt output"),
    )


@lru_cache(maxsize=None)
def alpaca_like() -> tuple[Empirical, Empirical]:
    """Prompt and output length distributions resembling Alpaca.

    Prompt lengths pool the ``input_toks`` of the six seed traces
    ``alpaca-bs256-*.tsv`` (1,536 prompts, 203 distinct lengths), shipped as a
    ``num_prompt_tokens,count`` histogram in ``llmsim_nb/data/alpaca_lengths.csv``.

    Those seed traces generate exactly 1 output token per request (they
    benchmark prefill), so they say nothing about Alpaca output lengths. As a
    documented stand-in the output distribution is the ShareGPT output
    distribution of :func:`sharegpt_like`. Use ``Fixed(1)`` as the output
    distribution to reproduce the seed's prefill-only runs.

    Returns
    -------
    (Empirical, Empirical)
        ``(prompt_dist, output_dist)``.
    """
    name = "alpaca_lengths.csv"
    table = read_length_table(name)
    lengths = _column(table, name, "num_prompt_tokens")
    counts = _column(table, name, "count")
    values = tuple(v for v, c in zip(lengths, counts) for _ in range(c))
    return Empirical(values, name="alpaca prompt"), sharegpt_like()[1]
