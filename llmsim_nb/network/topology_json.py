"""The ASTRA-sim analytical network format (JSON): its keys and their reading.

Units are ns and GB/s (GB = 1e9 bytes). A key that is not one of ASTRA-sim's
is refused (a misspelt optional key would silently default); a list longer
than ``dimensions-count`` is cut and the cut is noted (the seed files do
this), a shorter one is refused.
"""

from __future__ import annotations

import math
from typing import Any

from .topology import Dimension, Topology
from .topology_parsing import _dimension_error, _show

_GB = 1e9   # ASTRA-sim's GB/s: decimal gigabytes
_NS = 1e9   # divide nanoseconds by this to get seconds

_JSON_REQUIRED = ("topologies-per-dim", "dimensions-count", "units-count", "links-count",
                  "link-latency", "link-bandwidth")
_JSON_OPTIONAL = ("dimension-type", "nic-latency", "router-latency", "hbm-latency",
                  "hbm-bandwidth", "hbm-scale")
_JSON_KEYS = ("topology-name",) + _JSON_REQUIRED + _JSON_OPTIONAL
#: Dimension field -> the JSON key it is read from (to name the key in errors).
_JSON_FIELD_KEYS = {"kind": "topologies-per-dim", "size": "units-count",
                    "bandwidth": "link-bandwidth", "latency": "link-latency",
                    "num_links": "links-count", "dim_type": "dimension-type",
                    "router_latency": "router-latency", "nic_latency": "nic-latency"}


def _json_topology(data: Any, where: str, name: str) -> Topology:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
    unknown = sorted((k for k in data if k not in _JSON_KEYS), key=str)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown[:5]} (allowed: {list(_JSON_KEYS)})")
    for key in _JSON_REQUIRED:
        if key not in data:
            raise ValueError(f"{where}: missing key {key!r} (required: {list(_JSON_REQUIRED)})")
    if data.get("topology-name", "Hierarchical") != "Hierarchical":
        raise ValueError(f"{where}: topology-name={data['topology-name']!r}; only "
                         f"'Hierarchical' is supported")
    n = data["dimensions-count"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{where}: dimensions-count={n!r} must be an integer >= 1")
    kinds = data["topologies-per-dim"]
    if not isinstance(kinds, list) or len(kinds) != n:
        raise ValueError(f"{where}: topologies-per-dim={kinds!r} must list exactly "
                         f"dimensions-count={n} topologies")
    notes: list[str] = []

    def take(key: str, default=None) -> list:
        if key not in data:
            if default is None:
                raise ValueError(f"{where}: missing key {key!r}")
            return [default] * n
        values = data[key]
        if not isinstance(values, list):
            raise ValueError(f"{where}: {key}={values!r} must be a list")
        if len(values) < n:
            raise ValueError(f"{where}: {key} has {len(values)} entries, fewer than "
                             f"dimensions-count={n}")
        if len(values) > n:
            notes.append(f"{key} lists {len(values)} values for {n} dimensions; "
                         f"used the first {n} ({values[:n]}), ignored {values[n:]}")
        for i, v in enumerate(values[:n]):
            if key == "dimension-type":
                continue  # letters, checked by Dimension
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{where}: {key}[{i}]={_show(v)} must be a number")
            try:
                finite = math.isfinite(float(v))
            except OverflowError:
                finite = False
            if not finite:
                raise ValueError(f"{where}: {key}[{i}]={_show(v)} must be a finite number")
            if key.startswith("hbm-") and (v < 0 or (key == "hbm-bandwidth" and v == 0)):
                bound = "> 0" if key == "hbm-bandwidth" else ">= 0"
                raise ValueError(f"{where}: {key}[{i}]={v!r} must be {bound}")
        return values[:n]

    units = take("units-count")
    links = take("links-count")
    lat = take("link-latency")
    bw = take("link-bandwidth")
    types = take("dimension-type", "N")
    nic = take("nic-latency", 0)
    router = take("router-latency", 0)
    hbm_bw = take("hbm-bandwidth", 0) if "hbm-bandwidth" in data else []
    hbm_lat = take("hbm-latency", 0) if "hbm-latency" in data else []
    if "hbm-scale" in data:
        take("hbm-scale", 0)  # validated and noted if too long; not used
    dims = []
    for i in range(n):
        given = dict(kind=kinds[i], size=units[i], bandwidth=bw[i], latency=lat[i],
                     num_links=links[i], dim_type=types[i], router_latency=router[i],
                     nic_latency=nic[i])
        keys = {f: f"{k}[{i}]" for f, k in _JSON_FIELD_KEYS.items()}
        try:
            dims.append(Dimension(kind=kinds[i], size=units[i], bandwidth=bw[i] * _GB,
                                  latency=lat[i] / _NS, num_links=links[i], dim_type=types[i],
                                  router_latency=router[i] / _NS, nic_latency=nic[i] / _NS))
        except ValueError as err:
            raise ValueError(f"{where}: dimension {i}: "
                             f"{_dimension_error(err, given, keys)}") from None
    try:
        return Topology(tuple(dims), name=name, source=where, notes=tuple(notes),
                        hbm_bandwidth=tuple(v * _GB for v in hbm_bw),
                        hbm_latency=tuple(v / _NS for v in hbm_lat))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None

