"""Power presets: the watts, joules and prices of each device kind.

Read from ``llmsim_nb/presets/power.yaml`` (lazily, once). Each entry serves
the hardware presets it lists; :func:`power_of` finds the entry for a
hardware (or PIM) preset name and says which names have one when it fails.
Every number is SI (W, J, J/bit, J/B) or USD per device-hour; the sources
are in the YAML and docs/power.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from functools import cache

from .._presets import read_preset_file


def _check(owner: str, name: str, value: float, *, positive: bool = False,
           at_most: float | None = None) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and (value > 0 if positive else value >= 0)
    if ok and at_most is not None:
        ok = value <= at_most
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"power preset {owner!r}: {name}={value!r} must be a finite number "
                         f"{bound}" + (f" and <= {at_most}" if at_most is not None else ""))


def _check_preset(preset, names) -> None:
    """``names`` of ``preset`` finite and >= 0, and its price NaN (none) or so too."""
    for name in names:
        _check(preset.name, name, getattr(preset, name))
    price = preset.price_per_hour
    if not (isinstance(price, float) and math.isnan(price)):
        _check(preset.name, "price_per_hour", price)


def _energies(preset) -> tuple[str, ...]:
    """The energy and power fields of a preset: all but its name and price."""
    return tuple(f.name for f in fields(preset) if f.name not in ("name", "price_per_hour"))


@dataclass(frozen=True, slots=True)
class GPUPower:
    """A GPU: idle power, TDP and how memory traffic weighs in (W, 1)."""

    name: str
    tdp_w: float
    idle_w: float
    memory_weight: float
    min_clock_fraction: float
    price_per_hour: float = math.nan
    kind = "gpu"

    def __post_init__(self) -> None:
        _check(self.name, "tdp_w", self.tdp_w, positive=True)
        _check(self.name, "idle_w", self.idle_w, at_most=self.tdp_w)
        _check(self.name, "memory_weight", self.memory_weight, at_most=1.0)
        _check(self.name, "min_clock_fraction", self.min_clock_fraction, positive=True,
               at_most=1.0)
        _check_preset(self, ())

    @property
    def static_w(self) -> float:
        return self.idle_w


@dataclass(frozen=True, slots=True)
class NPUPower:
    """An NPU: energy per MAC and per byte of SRAM / DRAM traffic, static power."""

    name: str
    mac_j: float
    sram_j_per_byte: float
    dram_j_per_byte: float
    static_w: float
    price_per_hour: float = math.nan
    kind = "npu"

    def __post_init__(self) -> None:
        _check_preset(self, _energies(self))


@dataclass(frozen=True, slots=True)
class PIMPower:
    """An HBM-PIM: energy per DRAM command (per bank) and background power."""

    name: str
    act_j: float
    pre_j: float
    column_j_per_bit: float
    io_j_per_bit: float
    mac_j: float
    background_w_per_channel: float
    price_per_hour: float = math.nan
    kind = "pim"

    def __post_init__(self) -> None:
        _check_preset(self, _energies(self))


@dataclass(frozen=True, slots=True)
class HostPower:
    """What every device shares: host CPU power per device, link energies per bit."""

    host_cpu_w: float
    device_link_j_per_bit: float
    host_link_j_per_bit: float
    host_memory_j_per_bit: float

    def __post_init__(self) -> None:
        for f in fields(self):
            _check("common", f.name, getattr(self, f.name))


_KINDS = {"gpu": GPUPower, "npu": NPUPower, "pim": PIMPower}
_META = {"kind", "hardware", "source", "price_source"}


@cache
def _table() -> tuple[dict[str, object], HostPower]:
    data = read_preset_file("power.yaml")
    common = data.get("common") or {}
    host = HostPower(**{f.name: float(common[f.name]) for f in fields(HostPower)})
    by_hardware: dict[str, object] = {}
    for name, entry in (data.get("presets") or {}).items():
        cls = _KINDS.get(entry.get("kind"))
        if cls is None:
            raise ValueError(f"presets/power.yaml: {name!r} has kind={entry.get('kind')!r}, "
                             f"not one of {sorted(_KINDS)}")
        values = {k: float(v) for k, v in entry.items() if k not in _META}
        preset = cls(name=name, **values)
        for hardware in entry.get("hardware") or ():
            by_hardware[hardware] = preset
    return by_hardware, host


def power_of(hardware: str):
    """The power preset (GPUPower, NPUPower or PIMPower) of a hardware or PIM preset.

    Raises
    ------
    ValueError
        No power preset lists ``hardware`` (the message names those that do).
    """
    table, _ = _table()
    try:
        return table[hardware]
    except KeyError:
        raise ValueError(f"power: hardware={hardware!r} has no power preset in "
                         f"presets/power.yaml; presets with one: {sorted(table)}") from None


def host_power() -> HostPower:
    """Host CPU and link energies shared by every device (``common`` in the YAML)."""
    return _table()[1]


def has_power(hardware: str) -> bool:
    return hardware in _table()[0]


__all__ = ["GPUPower", "HostPower", "NPUPower", "PIMPower", "has_power", "host_power",
           "power_of"]
