"""Our YAML topology format (also the format of the network presets).

A topology is a mapping with a non-empty ``dimensions`` list; each dimension
gives ``kind``, ``size``, ``bandwidth`` and ``links`` and optionally
``latency``, ``type``, ``router_latency``, ``nic_latency``, ``hbm_bandwidth``
and ``hbm_latency``. Figures are plain numbers in SI units or strings with a
unit (``"64 GB/s"``, ``"100 ns"``).
"""

from __future__ import annotations

import math
import re
from typing import Any

from .topology import Dimension, Topology
from .topology_parsing import _dimension_error, _show

#: Dimension field -> the YAML key it is read from.
_YAML_FIELD_KEYS = {"kind": "kind", "size": "size", "bandwidth": "bandwidth",
                    "latency": "latency", "num_links": "links", "dim_type": "type",
                    "router_latency": "router_latency", "nic_latency": "nic_latency"}

_RATE_UNITS = ("B/s", "kB/s", "MB/s", "GB/s", "TB/s", "GiB/s")
_TIME_UNITS = ("s", "ms", "us", "ns")
_UNIT_PART = re.compile(r"^\s*[-+]?[0-9.]+(?:[eE][-+]?\d+)?\s*([A-Za-z/]*)\s*$")


def _quantity(value: Any, where: str, key: str, units: tuple[str, ...]) -> float:
    """A YAML figure in SI: a plain number, or a string such as ``"64 GB/s"`` / ``"100 ns"``."""
    from ..engines.hardware import parse_quantity

    if isinstance(value, str):
        match = _UNIT_PART.match(value)
        if match is None or (match.group(1) and match.group(1) not in units):
            raise ValueError(f"{where}: {key}={value!r} must be a number or a quantity in "
                             f"one of {list(units)}")
        value = parse_quantity(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: {key}={_show(value)} must be a number or a quantity in "
                         f"one of {list(units)}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{where}: {key}={_show(value)} must be a finite number") from None


_YAML_DIM_KEYS = {"kind", "size", "bandwidth", "latency", "links", "type",
                  "router_latency", "nic_latency", "hbm_bandwidth", "hbm_latency"}


def _yaml_topology(entry: Any, where: str, name: str, default_source: str) -> Topology:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping with 'dimensions', got {entry!r}")
    unknown = set(entry) - {"dimensions", "source", "description", "notes", "name"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown, key=str)} (allowed: dimensions, "
                         f"source, description, notes, name)")
    dims_in = entry.get("dimensions")
    if not isinstance(dims_in, list) or not dims_in:
        raise ValueError(f"{where}: missing key 'dimensions' (a non-empty list)")
    dims, hbm_bw, hbm_lat = [], [], []
    for i, d in enumerate(dims_in):
        at = f"{where}: dimensions[{i}]"
        if not isinstance(d, dict):
            raise ValueError(f"{at} must be a mapping, got {d!r}")
        bad = set(d) - _YAML_DIM_KEYS
        if bad:
            raise ValueError(f"{at}: unknown keys {sorted(bad, key=str)} (allowed: "
                             f"{sorted(_YAML_DIM_KEYS)})")
        for key in ("kind", "size", "bandwidth", "links"):
            if key not in d:
                raise ValueError(f"{at}: missing key {key!r}")
        bandwidth = _quantity(d["bandwidth"], at, "bandwidth", _RATE_UNITS)
        latency = _quantity(d.get("latency", 0), at, "latency", _TIME_UNITS)
        router = _quantity(d.get("router_latency", 0), at, "router_latency", _TIME_UNITS)
        nic = _quantity(d.get("nic_latency", 0), at, "nic_latency", _TIME_UNITS)
        try:
            dims.append(Dimension(kind=d["kind"], size=d["size"], bandwidth=bandwidth,
                                  latency=latency, num_links=d["links"],
                                  dim_type=d.get("type", "N"), router_latency=router,
                                  nic_latency=nic))
        except ValueError as err:
            given = {"kind": d["kind"], "size": d["size"], "bandwidth": d["bandwidth"],
                     "latency": d.get("latency", 0), "num_links": d["links"],
                     "dim_type": d.get("type", "N"), "router_latency": d.get("router_latency", 0),
                     "nic_latency": d.get("nic_latency", 0)}
            raise ValueError(f"{at}: {_dimension_error(err, given, _YAML_FIELD_KEYS)}") from None
        if "hbm_bandwidth" in d:
            value = _quantity(d["hbm_bandwidth"], at, "hbm_bandwidth", _RATE_UNITS)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{at}: hbm_bandwidth={_show(d['hbm_bandwidth'])} must be a "
                                 f"finite number > 0")
            hbm_bw.append(value)
        if "hbm_latency" in d:
            value = _quantity(d["hbm_latency"], at, "hbm_latency", _TIME_UNITS)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{at}: hbm_latency={_show(d['hbm_latency'])} must be a "
                                 f"finite number >= 0")
            hbm_lat.append(value)
    for key, got in (("hbm_bandwidth", hbm_bw), ("hbm_latency", hbm_lat)):
        if got and len(got) != len(dims):
            raise ValueError(f"{where}: {key} is given for {len(got)} of {len(dims)} "
                             f"dimensions; give it for every dimension or for none")
    notes = entry.get("notes") or []
    if not isinstance(notes, list) or not all(isinstance(x, str) for x in notes):
        raise ValueError(f"{where}: notes must be a list of strings, got {notes!r}")
    source = entry.get("source", default_source)
    return Topology(tuple(dims), name=str(entry.get("name", name)),
                    source=" ".join(str(source).split()), notes=tuple(notes),
                    hbm_bandwidth=tuple(hbm_bw) if len(hbm_bw) == len(dims) else (),
                    hbm_latency=tuple(hbm_lat) if len(hbm_lat) == len(dims) else ())

