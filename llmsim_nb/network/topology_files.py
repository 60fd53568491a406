"""Reading topologies: ASTRA-sim JSON files, our YAML format, presets, the default.

:func:`load_topology` reads ASTRA-sim analytical JSON files (units: ns and
GB/s, with GB = 1e9 bytes) and our own YAML format, and resolves bare names
such as ``"gpu_n4.json"`` to the presets in ``llmsim_nb/presets/networks.yaml``,
which hold the figures of every seed network file of LLMServingSim.
:func:`default_topology` builds the network the original uses when none is
given. Everything here produces a :class:`~llmsim_nb.network.topology.Topology`;
the data model itself (numbering, routing, link capacities) lives in
:mod:`llmsim_nb.network.topology`.

Every error names the file (or preset) and the key, so a user can fix the
input without reading this code.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from .._presets import preset_entries
from .topology import Dimension, Topology, _check_int

_GB = 1e9   # ASTRA-sim's GB/s: decimal gigabytes
_NS = 1e9   # divide nanoseconds by this to get seconds

_JSON_REQUIRED = ("topologies-per-dim", "dimensions-count", "units-count", "links-count",
                  "link-latency", "link-bandwidth")
_JSON_OPTIONAL = ("dimension-type", "nic-latency", "router-latency", "hbm-latency",
                  "hbm-bandwidth", "hbm-scale")


def _json_topology(data: Any, where: str, name: str) -> Topology:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
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
            if isinstance(v, bool) or not isinstance(v, (int, float)) and key != "dimension-type":
                raise ValueError(f"{where}: {key}[{i}]={v!r} must be a number")
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
        try:
            dims.append(Dimension(kind=kinds[i], size=units[i], bandwidth=bw[i] * _GB,
                                  latency=lat[i] / _NS, num_links=links[i], dim_type=types[i],
                                  router_latency=router[i] / _NS, nic_latency=nic[i] / _NS))
        except ValueError as err:
            raise ValueError(f"{where}: dimension {i}: {err}") from None
    try:
        return Topology(tuple(dims), name=name, source=where, notes=tuple(notes),
                        hbm_bandwidth=tuple(v * _GB for v in hbm_bw),
                        hbm_latency=tuple(v / _NS for v in hbm_lat))
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


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
        raise ValueError(f"{where}: {key}={value!r} must be a number or a quantity in "
                         f"one of {list(units)}")
    return float(value)


_YAML_DIM_KEYS = {"kind", "size", "bandwidth", "latency", "links", "type",
                  "router_latency", "nic_latency", "hbm_bandwidth", "hbm_latency"}


def _yaml_topology(entry: Any, where: str, name: str, default_source: str) -> Topology:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping with 'dimensions', got {entry!r}")
    unknown = set(entry) - {"dimensions", "source", "description", "notes", "name"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (allowed: dimensions, "
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
            raise ValueError(f"{at}: unknown keys {sorted(bad)} (allowed: {sorted(_YAML_DIM_KEYS)})")
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
            raise ValueError(f"{at}: {err}") from None
        if "hbm_bandwidth" in d:
            hbm_bw.append(_quantity(d["hbm_bandwidth"], at, "hbm_bandwidth", _RATE_UNITS))
        if "hbm_latency" in d:
            hbm_lat.append(_quantity(d["hbm_latency"], at, "hbm_latency", _TIME_UNITS))
    notes = entry.get("notes") or []
    if not isinstance(notes, list) or not all(isinstance(x, str) for x in notes):
        raise ValueError(f"{where}: notes must be a list of strings, got {notes!r}")
    source = entry.get("source", default_source)
    return Topology(tuple(dims), name=str(entry.get("name", name)),
                    source=" ".join(str(source).split()), notes=tuple(notes),
                    hbm_bandwidth=tuple(hbm_bw) if len(hbm_bw) == len(dims) else (),
                    hbm_latency=tuple(hbm_lat) if len(hbm_lat) == len(dims) else ())


@cache
def _presets() -> dict[str, Any]:
    return preset_entries("networks.yaml")


def list_network_presets() -> list[str]:
    """Names of the network presets (the seed file names without ``.json``), sorted."""
    return sorted(_presets())


def _preset_name(name: str) -> str:
    for ext in (".json", ".yaml", ".yml"):
        if name.endswith(ext):
            return name[: -len(ext)]
    return name


@cache
def _load_preset(key: str) -> Topology:
    presets = _presets()
    return _yaml_topology(presets[key], f"network preset {key!r}", key,
                          f"llmsim_nb/presets/networks.yaml:{key}")


def load_topology(name_or_path: str | Path) -> Topology:
    """Load a topology from a file or a preset.

    Parameters
    ----------
    name_or_path : str or Path
        A path to an ASTRA-sim analytical JSON file (``.json``) or to our YAML
        format (``.yaml``/``.yml``); or a *bare* name with no directory part
        (``"gpu_n4.json"``, ``"neupims_(4,2)"``), which is looked up in the
        presets. A bare name that is not a preset but names an existing file
        in the working directory is read as a file.

    Returns
    -------
    Topology

    Raises
    ------
    ValueError
        Unknown preset (the message lists the known ones), missing file, or a
        malformed file (the message names the file and the key).
    """
    if isinstance(name_or_path, Topology):
        return name_or_path
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path):
        raise ValueError(f"network={name_or_path!r} must be a file path or a preset name")
    text = str(name_or_path)
    path = Path(text)
    bare = isinstance(name_or_path, str) and len(path.parts) == 1
    if bare and _preset_name(text) in _presets():
        return _load_preset(_preset_name(text))
    if not path.is_file():
        if bare:
            raise ValueError(f"network={text!r} is neither a known preset nor a file; known "
                             f"presets: {list_network_presets()}")
        raise ValueError(f"network file {text!r} does not exist")
    where = f"network file {str(path)!r}"
    raw = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err})") from None
        return _json_topology(data, str(path), path.stem)
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ValueError(f"{where}: not valid YAML ({err})") from None
    if isinstance(data, dict) and "topologies-per-dim" in data:
        return _json_topology(data, str(path), path.stem)
    return _yaml_topology(data, str(path), path.stem, str(path))


#: Dimension-type letters of the seed's fully_connected_<k>d_<n>.json files, by k.
_DEFAULT_TYPES = {1: ("N",), 2: ("N", "P"), 3: ("N", "T", "P"), 4: ("B", "C", "N", "P"),
                  5: ("B", "C", "N", "P", "Q")}


def default_topology(npu_num: int, npu_group: int = 1) -> Topology:
    """The network the original builds when ``--network`` is not given.

    ``fully_connected_{k}d_{npu_num}`` with ``k = log2(npu_group) + 1``:
    dimension 0 is a full mesh of the ``npu_num / npu_group`` devices of one
    pipeline stage (a tensor-parallel group), followed by ``log2(npu_group)``
    full meshes of size 2 that join the stages; every device has one 64 GB/s
    link per peer and links have zero latency (as in the seed files; two of
    them, ``fully_connected_3d_16/32``, use 1 ns).

    Raises
    ------
    ValueError
        If ``npu_group`` is not a power of two dividing ``npu_num``.
    """
    _check_int("default_topology", "npu_num", npu_num, 1)
    _check_int("default_topology", "npu_group", npu_group, 1)
    if npu_group & (npu_group - 1) or npu_num % npu_group:
        raise ValueError(f"default_topology: npu_group={npu_group} must be a power of two "
                         f"dividing npu_num={npu_num}")
    k = npu_group.bit_length()  # log2(npu_group) + 1
    sizes = [npu_num // npu_group] + [2] * (k - 1)
    types = _DEFAULT_TYPES.get(k, ("N",) + ("T",) * (k - 2) + ("P",))
    dims = tuple(Dimension("FullyConnected", s, 64 * _GB, 0.0, max(s - 1, 1), t)
                 for s, t in zip(sizes, types))
    return Topology(dims, name=f"fully_connected_{k}d_{npu_num}",
                    source="default network of LLMServingSim (fully connected, 64 GB/s links)")


__all__ = ["default_topology", "list_network_presets", "load_topology"]
