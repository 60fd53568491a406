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
input without reading this code. Besides missing keys and values of the wrong
type, sign or size, a key given twice in one JSON object or YAML mapping is
refused (readers disagree on which value wins), and so is a JSON key that is
not one of ASTRA-sim's (a misspelt optional key would silently default). A
list longer than ``dimensions-count`` is cut and the cut is noted (the seed
files do this); a shorter one is refused.
"""

from __future__ import annotations

import json
import math
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
_JSON_KEYS = ("topology-name",) + _JSON_REQUIRED + _JSON_OPTIONAL
#: Dimension field -> the JSON key it is read from (to name the key in errors).
_JSON_FIELD_KEYS = {"kind": "topologies-per-dim", "size": "units-count",
                    "bandwidth": "link-bandwidth", "latency": "link-latency",
                    "num_links": "links-count", "dim_type": "dimension-type",
                    "router_latency": "router-latency", "nic_latency": "nic-latency"}
#: Dimension field -> the YAML key it is read from.
_YAML_FIELD_KEYS = {"kind": "kind", "size": "size", "bandwidth": "bandwidth",
                    "latency": "latency", "num_links": "links", "dim_type": "type",
                    "router_latency": "router_latency", "nic_latency": "nic_latency"}
_FIELD = re.compile(r"Dimension\.(\w+)")


def _show(value: Any) -> str:
    """``repr`` of a value from the file, cut short so a message stays one line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _dimension_error(err: ValueError, given: dict[str, Any], keys: dict[str, str]) -> str:
    """``err`` of a Dimension, followed by the file's key and value it came from."""
    match = _FIELD.search(str(err))
    field = match.group(1) if match else None
    if field in keys and field in given:
        return f"{err} (from {keys[field]}={_show(given[field])})"
    return str(err)


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int | None = None):
        super().__init__(key)
        self.key, self.line = key, line


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<" merges may be overridden by explicit keys
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    raise _DuplicateKey(key, key_node.start_mark.line + 1)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


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
    try:
        raw = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ValueError(f"{where}: cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: is not UTF-8 text (byte {err.start})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(raw, object_pairs_hook=_no_duplicates)
        except _DuplicateKey as dup:
            raise ValueError(f"{where}: key {dup.key!r} appears more than once in one JSON "
                             f"object; each key may appear only once") from None
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON ({err})") from None
        except RecursionError:
            raise ValueError(f"{where}: not valid JSON (nested too deeply)") from None
        return _json_topology(data, str(path), path.stem)
    try:
        data = yaml.load(raw, Loader=_UniqueKeyLoader)
    except _DuplicateKey as dup:
        raise ValueError(f"{where}: key {_show(dup.key)} appears more than once in one "
                         f"mapping (line {dup.line}); each key may appear only once") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{where}: not valid YAML ({' '.join(str(err).split())})") from None
    except RecursionError:
        raise ValueError(f"{where}: not valid YAML (nested too deeply)") from None
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
