"""Small argument checks shared by the workload generators (private)."""

from __future__ import annotations

import math

import numpy as np


def check_rng(where: str, rng: object) -> np.random.Generator:
    """Return ``rng`` if it is a ``numpy.random.Generator``, else raise ValueError."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            f"{where}: rng must be a numpy.random.Generator (e.g. numpy.random.default_rng(0)), "
            f"got {type(rng).__name__}"
        )
    return rng


def check_int(where: str, name: str, value: object, minimum: int) -> int:
    """Return ``value`` as ``int`` if it is an integer ``>= minimum``, else raise ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_positive(where: str, name: str, value: object, *, allow_zero: bool = False) -> float:
    """Return ``value`` as ``float`` if finite and ``> 0`` (or ``>= 0``), else raise ValueError."""
    bound = ">= 0" if allow_zero else "> 0"
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(f"{where}: {name} must be a finite number {bound}, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0.0 or (v == 0.0 and not allow_zero):
        raise ValueError(f"{where}: {name} must be a finite number {bound}, got {value!r}")
    return v
