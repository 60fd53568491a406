"""The choices, units and checks every config field uses.

Each field carries ``metadata`` (:func:`_meta`) with ``help``, ``units`` and its
``llmsim run`` flag name, so widgets, the CLI and documentation are generated
from the dataclasses. The checks raise ``ValueError`` naming the owner, the
field, the value and what is allowed; nothing is clamped.
"""

from __future__ import annotations

import math
from typing import Any

SCHEDULING_POLICIES = ("orca", "vllm", "chunked")
KV_MANAGE = ("vllm", "max")
PARALLEL = ("tensor", "pipeline", "hybrid")
PIM_TYPES = ("none", "local", "pool")
PIM_MAPPINGS = ("decode-attention", "attention", "fastest")
SUB_BATCH_CRITERIA = ("memory", "compute")
ATTENTION_PLACEMENTS = ("auto", "heads", "requests")
COLLECTIVES = ("auto", "ring", "direct", "halving_doubling")
NPU_MODES = ("analytical", "detailed")
GIB = 1024 ** 3


def _meta(help: str, units: str = "1", flag: str | None = None) -> dict[str, Any]:
    return {"help": help, "units": units, "flag": flag}


def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{owner}.{name} must be >= {minimum}, got {value}")


def _check_real(owner: str, name: str, value: Any, minimum: float, *, strict: bool = False,
                maximum: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
    if value < minimum or (strict and value == minimum):
        op = ">" if strict else ">="
        raise ValueError(f"{owner}.{name} must be {op} {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{owner}.{name} must be <= {maximum}, got {value}")


def _check_choice(owner: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name}={value!r} is not one of {list(allowed)}")
