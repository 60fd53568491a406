"""Hardware presets: named devices and the engines that time them.

Presets live in ``llmsim_nb/presets/hardware.yaml`` and are read lazily, once,
through :mod:`importlib.resources`. Each names an engine (a key of
:data:`~llmsim_nb.engines.base.ENGINES`) and the fields of that engine's spec
class, which an engine class advertises as its ``spec_class`` attribute
(``NPUEngine.spec_class is NPUSpec``). An engine named ``"x"`` that is not yet
registered is imported from ``llmsim_nb.engines.x`` on first use.

Quantities in the YAML are plain SI numbers or strings with a unit
(``"936 GB/s"``, ``"24 GiB"``, ``"1 GHz"``, ``"100 ns"``); :func:`parse_quantity`
converts them to SI (bytes, bytes/s, Hz, seconds). Decimal prefixes (kB, MB,
GB, TB) are powers of 1000, binary ones (KiB, MiB, GiB, TiB) powers of 1024.

Example
-------
>>> from llmsim_nb.engines.hardware import make_engine
>>> engine = make_engine("npu-128x128")
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from .._presets import preset_entries
from ..config.fields import did_you_mean
from . import npu as _npu  # noqa: F401  (registers the "npu" engine)
from .base import ENGINES, Engine, get_engine_class

#: Name of the preset used when none is given.
DEFAULT_HARDWARE = "npu-128x128"


#: Unit -> (base, exponent, whether the result counts bytes and should be an int);
#: the SI value is ``number * base ** exponent``.
UNITS: dict[str, tuple[int, int, bool]] = {
    "B": (10, 0, True), "kB": (10, 3, True), "KB": (10, 3, True), "MB": (10, 6, True),
    "GB": (10, 9, True), "TB": (10, 12, True),
    "KiB": (2, 10, True), "MiB": (2, 20, True), "GiB": (2, 30, True), "TiB": (2, 40, True),
    "B/s": (10, 0, False), "kB/s": (10, 3, False), "MB/s": (10, 6, False),
    "GB/s": (10, 9, False), "TB/s": (10, 12, False), "GiB/s": (2, 30, False),
    "Hz": (10, 0, False), "kHz": (10, 3, False), "MHz": (10, 6, False), "GHz": (10, 9, False),
    "s": (10, 0, False), "ms": (10, -3, False), "us": (10, -6, False), "ns": (10, -9, False),
}

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z/]*)\s*$")


def parse_quantity(value: Any) -> Any:
    """Convert ``"936 GB/s"``-style strings to SI numbers; pass other values through.

    Strings that are not a number followed by a known unit (e.g.
    ``"weight_stationary"``) are returned unchanged; byte counts that come out
    integral are returned as ``int``.
    """
    if not isinstance(value, str):
        return value
    match = _QUANTITY.match(value)
    if match is None:
        return value
    number, unit = float(match.group(1)), match.group(2)
    if not unit:
        return number  # e.g. "1e9", which YAML 1.1 reads as a string
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r} in {value!r} is not one of {sorted(UNITS)}")
    base, exponent, is_bytes = UNITS[unit]
    # Divide for negative exponents so that "100 ns" is exactly the float 1e-07.
    result = number * base ** exponent if exponent >= 0 else number / base ** -exponent
    return int(result) if is_bytes and result.is_integer() else result


@dataclass(frozen=True, slots=True)
class HardwarePreset:
    """A named device: which engine times it and with which spec.

    Attributes
    ----------
    name : str
        Lookup name (``"npu-128x128"``).
    engine : str
        Registry name of the engine class (``"npu"``).
    spec : object
        The engine's spec instance (an :class:`~llmsim_nb.engines.npu.NPUSpec`
        for ``"npu"``), in SI units.
    description : str
        What the device is.
    source : str
        Where its numbers come from.
    interconnect : str
        Name of the device-to-device link preset
        (:mod:`llmsim_nb.network.interconnect`, e.g. ``"nvlink3"``, ``"pcie4"``)
        that builds the network when no ``network`` is given; ``""`` keeps the
        original's default network.
    host_link : str
        Interconnect preset of the device-to-host bus (``"pcie5"``), whose
        bandwidth and per-transfer latency time KV copies to and from host
        memory unless ``host_bandwidth`` / ``host_latency`` are given; ``""``
        keeps the original's 512 GB/s memory-expansion link.
    """

    name: str
    engine: str
    spec: Any
    description: str = ""
    source: str = ""
    interconnect: str = ""
    host_link: str = ""

    def __post_init__(self) -> None:
        for field in ("name", "engine"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ValueError(f"HardwarePreset.{field}={value!r} must be a non-empty string")
        for field in ("description", "source", "interconnect", "host_link"):
            value = getattr(self, field)
            if not isinstance(value, str):
                raise ValueError(f"HardwarePreset.{field}={value!r} must be a string")


def _engine_class(name: str) -> type[Engine]:
    """The engine registered as ``name``, importing ``llmsim_nb.engines.<name>`` if needed."""
    if name not in ENGINES:
        try:
            importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError:
            pass
    return get_engine_class(name)


def _build_preset(name: str, entry: Any) -> HardwarePreset:
    if not isinstance(entry, dict):
        raise ValueError(f"hardware preset {name!r} must be a mapping, got {entry!r}")
    unknown = set(entry) - {"engine", "spec", "description", "source", "interconnect",
                            "host_link"}
    if unknown:
        raise ValueError(f"hardware preset {name!r} has unknown keys {sorted(unknown)}")
    engine = entry.get("engine")
    cls = _engine_class(engine)
    spec_class = getattr(cls, "spec_class", None)
    if spec_class is None:
        raise ValueError(f"engine {engine!r} of hardware preset {name!r} has no spec_class")
    fields = {key: parse_quantity(value) for key, value in (entry.get("spec") or {}).items()}
    try:
        spec = spec_class(**fields)
    except TypeError as err:
        raise ValueError(f"hardware preset {name!r}: {err}") from None
    return HardwarePreset(name, engine, spec, str(entry.get("description", "")).strip(),
                          str(entry.get("source", "")).strip(),
                          str(entry.get("interconnect", "") or "").strip(),
                          str(entry.get("host_link", "") or "").strip())


@cache
def _presets() -> dict[str, HardwarePreset]:
    return {name: _build_preset(name, entry)
            for name, entry in preset_entries("hardware.yaml").items()}


def list_hardware() -> list[str]:
    """Names of the hardware presets, sorted."""
    return sorted(_presets())


def get_hardware(name: str = DEFAULT_HARDWARE) -> HardwarePreset:
    """The preset called ``name``; an unknown name raises ``ValueError`` listing the known
    ones and suggesting the closest (never picking one for you)."""
    presets = _presets()
    try:
        return presets[name]
    except (KeyError, TypeError):
        raise ValueError(f"hardware={name!r} is not a known preset; known presets: "
                         f"{sorted(presets)}{did_you_mean(name, presets)}") from None


def engine_from_spec(spec: Any) -> Engine:
    """An engine for ``spec``: the registered engine whose ``spec_class`` is ``type(spec)``."""
    for cls in ENGINES.values():
        if getattr(cls, "spec_class", None) is type(spec):
            return cls(spec)
    raise ValueError(f"no registered engine takes a {type(spec).__name__}; engines: "
                     f"{sorted(ENGINES)}")


def make_engine(hardware: str | HardwarePreset | Any = DEFAULT_HARDWARE) -> Engine:
    """An engine for a preset name, a :class:`HardwarePreset` or a spec instance."""
    if isinstance(hardware, str):
        hardware = get_hardware(hardware)
    if isinstance(hardware, HardwarePreset):
        return _engine_class(hardware.engine)(hardware.spec)
    return engine_from_spec(hardware)


__all__ = ["DEFAULT_HARDWARE", "HardwarePreset", "engine_from_spec", "get_hardware",
           "list_hardware", "make_engine", "parse_quantity"]
