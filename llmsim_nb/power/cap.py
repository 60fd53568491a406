"""Power caps: a lower sustained clock, and an engine timed at that clock.

A GPU under a power limit lowers its clock until it fits (Splitwise, ISCA'24,
studied how LLM phases slow under such caps). With dynamic power ``C V^2 f``
and voltage roughly proportional to frequency in the DVFS range, active power
at full utilisation scales as ``f^3`` (``f``: clock fraction). The clock that
fits a cap ``P_cap`` on the most demanding operator (compute-bound, full
utilisation) is therefore::

    idle + (TDP - idle) * f^3 = P_cap   ->   f = ((P_cap - idle) / (TDP - idle))^(1/3)

A cap at or above TDP leaves ``f = 1``; one that would need a clock below the
part's lowest (``min_clock_fraction``) or at/below idle power is refused.

:class:`ClockedEngine` times an op at clock fraction ``f``: its compute time
stretches by ``1/f``, its DRAM time does not (the memory clock is separate),
so an op's latency becomes ``latency - max(c, m) + max(c / f, m)``: a
memory-bound op slows less than a compute-bound one, not at all while
``c / f <= m``.
"""

from __future__ import annotations

import math

import numpy as np

from ..engines.base import Engine, OpTiming, WrappedEngine
from ..models.ops import Op
from .presets import GPUPower, power_of


def clock_fraction(power: GPUPower, cap_w: float | None, flag: str = "power_cap_w") -> float:
    """The clock fraction ``f`` in (0, 1] that fits ``cap_w`` (1 with no cap).

    Raises
    ------
    ValueError
        A cap at or below idle power, or one needing a clock below the part's lowest.
    """
    if cap_w is None or cap_w >= power.tdp_w:
        return 1.0
    if not cap_w > power.idle_w:
        raise ValueError(f"{flag}={cap_w:g} W is at or below {power.name}'s idle power "
                         f"({power.idle_w:g} W); a cap must be above it (TDP {power.tdp_w:g} W)")
    f = ((cap_w - power.idle_w) / (power.tdp_w - power.idle_w)) ** (1.0 / 3.0)
    if f < power.min_clock_fraction:
        lowest = power.idle_w + (power.tdp_w - power.idle_w) * power.min_clock_fraction ** 3
        raise ValueError(f"{flag}={cap_w:g} W needs {power.name} below its lowest clock "
                         f"({power.min_clock_fraction:g} of the boost clock); allowed: "
                         f"> {lowest:.4g} W")
    return f


class ClockedEngine(WrappedEngine):
    """``engine``'s timings at clock fraction ``clock`` (compute stretched by 1/clock).

    Keeps the wrapped engine's name, spec and contract flags (as
    :class:`~llmsim_nb.engines.scaled.ScaledEngine`), so it sits under the
    reuse cache like any engine.
    """

    def __init__(self, engine: Engine, clock: float) -> None:
        if not (isinstance(clock, float) and math.isfinite(clock) and 0 < clock <= 1):
            raise ValueError(f"ClockedEngine: clock must be a float in (0, 1], got {clock!r}")
        super().__init__(engine)
        self.clock = clock

    def time_op(self, op: Op) -> OpTiming:
        t = self.inner.time_op(op)
        c, m = t.compute_latency, t.memory_latency
        slow = c / self.clock
        latency = t.latency - np.maximum(c, m) + np.maximum(slow, m)
        return OpTiming(latency, slow, m)

    def __repr__(self) -> str:
        return f"ClockedEngine({self.inner!r}, clock={self.clock!r})"




def power_engine(engine: Engine, config) -> Engine:
    """``engine`` at the clock ``config.system.power_cap_w`` allows (unchanged without a
    cap, or with one at or above TDP); checks the power flags before any run.

    Raises
    ------
    ValueError
        A cap on a device that is not a GPU preset, with ``fast_run`` (its reuse file
        is keyed by the spec, not the clock), or one :func:`clock_fraction` refuses;
        ``power`` on a hardware preset without a power preset.
    """
    system = config.system
    if system.power:
        power_of(config.hardware)
        if system.pim_type != "none":
            power_of(system.pim_hardware)
    if system.power_cap_w is None:
        return engine
    preset = power_of(config.hardware)
    if not isinstance(preset, GPUPower):
        raise ValueError(f"power_cap_w={system.power_cap_w:g} caps a GPU's clock; hardware="
                         f"{config.hardware!r} is not a GPU preset")
    if config.fast_run:
        raise ValueError(f"power_cap_w={system.power_cap_w:g} changes timings that fast_run's "
                         f"reuse file keys by the spec alone; turn fast_run off")
    clock = clock_fraction(preset, system.power_cap_w)
    return engine if clock == 1.0 else ClockedEngine(engine, clock)


__all__ = ["ClockedEngine", "clock_fraction", "power_engine"]
