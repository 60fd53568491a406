"""Multi-dimensional network topologies (ASTRA-sim's analytical "Hierarchical" shape).

A :class:`Topology` is a stack of :class:`Dimension` objects. Every device
has one coordinate per dimension; devices are numbered in mixed radix with
dimension 0 varying fastest::

    device = c0 + s0 * (c1 + s1 * (c2 + s2 * ...))

where ``c_i`` is the coordinate in dimension ``i`` and ``s_i`` its size. A
*row* of dimension ``i`` is the set of ``s_i`` devices that agree on every
coordinate except ``c_i``; a dimension's network (a ring, a full mesh or a
switch) connects the devices of each of its rows and nothing else.

Links are never enumerated (a 2048-device full mesh has 4 million of them);
a link is named by a small hashable :data:`LinkId`:

- ``(dim, src, dst)`` -- a direct link of a ``FullyConnected`` dimension or a
  neighbour link of a ``Ring`` dimension, in the direction ``src -> dst``;
- ``(dim, device, "up")`` / ``(dim, device, "down")`` -- a device's port to /
  from the switch of a ``Switch`` dimension.

Link capacity
-------------
Each dimension gives every device ``num_links`` physical links of
``bandwidth`` B/s each (ASTRA-sim's ``links-count`` and ``link-bandwidth``).
How they are spread over the named links:

- ``FullyConnected`` of size ``s``: evenly over the ``s - 1`` peers, so a
  direct link carries ``bandwidth * num_links / (s - 1)``. The seed files use
  ``num_links = s - 1``, i.e. exactly one physical link per peer.
- ``Ring``: half the links point to each neighbour, so a neighbour link
  carries ``bandwidth * num_links / 2`` (``bandwidth * num_links`` when the
  ring has two devices and both neighbours coincide).
- ``Switch``: the up-port and the down-port each carry
  ``bandwidth * num_links``.

Latency
-------
A link costs ``latency`` seconds per traversal; a switch adds the
dimension's ``router_latency`` once per crossing, and every transfer pays the
``nic_latency`` of each dimension it crosses once (ASTRA-sim's
``router-latency`` and ``nic-latency``; all zero in the seed files except
``sample_Switch.json``).

Loading
-------
:func:`load_topology` reads ASTRA-sim JSON files (units: ns and GB/s, with
GB = 1e9 bytes) and our own YAML format, and resolves bare names such as
``"gpu_n4.json"`` to the presets in ``llmsim_nb/presets/networks.yaml``, which
hold the figures of every seed network file of LLMServingSim.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Union

import yaml

from .._presets import preset_entries

#: Topology kinds of a dimension, as spelled in ASTRA-sim's ``topologies-per-dim``.
TOPOLOGY_KINDS = ("Ring", "FullyConnected", "Switch")

#: Dimension-type letters used by the seed files (labels only; they never change timing).
#: ASTRA-sim uses them to name the level of the hierarchy a dimension stands for.
DIMENSION_TYPES = ("N", "T", "P", "B", "C", "Q")

#: Name of a link: ``(dim, src, dst)`` or ``(dim, device, "up" | "down")``.
LinkId = tuple[int, int, Union[int, str]]


_GB = 1e9   # ASTRA-sim's GB/s: decimal gigabytes
_NS = 1e9   # divide nanoseconds by this to get seconds


def _check_real(owner: str, name: str, value: Any, *, strict: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
    if value < 0 or (strict and value == 0):
        raise ValueError(f"{owner}.{name} must be {'>' if strict else '>='} 0, got {value}")


def _check_int(owner: str, name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Dimension:
    """One dimension of a hierarchical topology.

    Parameters
    ----------
    kind : {"Ring", "FullyConnected", "Switch"}
        How the devices of a row are connected.
    size : int
        Devices per row (>= 1).
    bandwidth : float
        Bandwidth of one physical link, B/s (> 0).
    latency : float
        Seconds per link traversal (>= 0).
    num_links : int
        Physical links each device has in this dimension (>= 1); see the
        module docstring for how they are spread over peers.
    dim_type : str
        ASTRA-sim's dimension-type letter (one of :data:`DIMENSION_TYPES`);
        a label only.
    router_latency : float
        Extra seconds per switch crossing (``Switch`` dimensions only).
    nic_latency : float
        Extra seconds per transfer that crosses this dimension.
    """

    kind: str
    size: int
    bandwidth: float
    latency: float
    num_links: int
    dim_type: str = "N"
    router_latency: float = 0.0
    nic_latency: float = 0.0

    def __post_init__(self) -> None:
        owner = "Dimension"
        if self.kind not in TOPOLOGY_KINDS:
            raise ValueError(f"{owner}.kind={self.kind!r} is not one of {list(TOPOLOGY_KINDS)}")
        _check_int(owner, "size", self.size, 1)
        _check_real(owner, "bandwidth", self.bandwidth, strict=True)
        _check_real(owner, "latency", self.latency, strict=False)
        _check_int(owner, "num_links", self.num_links, 1)
        if self.dim_type not in DIMENSION_TYPES:
            raise ValueError(f"{owner}.dim_type={self.dim_type!r} is not one of "
                             f"{list(DIMENSION_TYPES)}")
        _check_real(owner, "router_latency", self.router_latency, strict=False)
        _check_real(owner, "nic_latency", self.nic_latency, strict=False)

    @property
    def link_capacity(self) -> float:
        """Bandwidth (B/s) of one named link of this dimension (see module docstring)."""
        if self.kind == "FullyConnected":
            return self.bandwidth * self.num_links / max(self.size - 1, 1)
        if self.kind == "Ring":
            return self.bandwidth * self.num_links / (2 if self.size > 2 else 1)
        return self.bandwidth * self.num_links

    @property
    def injection_bandwidth(self) -> float:
        """All of a device's bandwidth into this dimension: ``bandwidth * num_links``, B/s."""
        return self.bandwidth * self.num_links


@dataclass(frozen=True)
class Topology:
    """A stack of dimensions; see the module docstring for numbering and links.

    Parameters
    ----------
    dimensions : tuple of Dimension
        Dimension 0 first (its coordinate varies fastest in device ids).
    name : str
        Preset or file name.
    source : str
        Where the figures come from (file path or preset provenance).
    notes : tuple of str
        Anything adjusted while loading (e.g. lists longer than
        ``dimensions-count`` that were cut).
    hbm_bandwidth : tuple of float
        Per-dimension ``hbm-bandwidth`` of the ASTRA-sim file, B/s (kept for
        reference; device memory timing belongs to the engines).
    hbm_latency : tuple of float
        Per-dimension ``hbm-latency``, seconds (reference only).
    """

    dimensions: tuple[Dimension, ...]
    name: str = ""
    source: str = ""
    notes: tuple[str, ...] = ()
    hbm_bandwidth: tuple[float, ...] = ()
    hbm_latency: tuple[float, ...] = ()
    _strides: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _num_devices: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        owner = "Topology"
        if isinstance(self.dimensions, list):
            object.__setattr__(self, "dimensions", tuple(self.dimensions))
        if (not isinstance(self.dimensions, tuple) or not self.dimensions
                or not all(isinstance(d, Dimension) for d in self.dimensions)):
            raise ValueError(f"{owner}.dimensions must be a non-empty tuple of Dimension, "
                             f"got {self.dimensions!r}")
        for name in ("name", "source"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{owner}.{name} must be a string, got {getattr(self, name)!r}")
        for name in ("notes", "hbm_bandwidth", "hbm_latency"):
            value = getattr(self, name)
            if isinstance(value, list):
                value = tuple(value)
                object.__setattr__(self, name, value)
            if not isinstance(value, tuple):
                raise ValueError(f"{owner}.{name} must be a tuple, got {value!r}")
        if not all(isinstance(n, str) for n in self.notes):
            raise ValueError(f"{owner}.notes must hold strings, got {self.notes!r}")
        for name in ("hbm_bandwidth", "hbm_latency"):
            for i, v in enumerate(getattr(self, name)):
                _check_real(owner, f"{name}[{i}]", v, strict=False)
        strides, n = [], 1
        for d in self.dimensions:
            strides.append(n)
            n *= d.size
        object.__setattr__(self, "_strides", tuple(strides))
        object.__setattr__(self, "_num_devices", n)

    # ------------------------------------------------------------------ numbering
    @property
    def num_devices(self) -> int:
        """Product of the dimension sizes."""
        return self._num_devices

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(d.size for d in self.dimensions)

    @property
    def strides(self) -> tuple[int, ...]:
        """``strides[i] = s0 * ... * s(i-1)``: how far apart row neighbours of dimension i are."""
        return self._strides

    def check_device(self, device: int, what: str = "device") -> None:
        """Raise ValueError unless ``device`` is an id of this topology."""
        if isinstance(device, bool) or not hasattr(device, "__index__"):
            raise ValueError(f"{what}={device!r} must be an integer device id")
        if not 0 <= device < self._num_devices:
            raise ValueError(f"{what}={device} is outside topology {self.name!r} with "
                             f"{self._num_devices} devices (0..{self._num_devices - 1})")

    def coords(self, device: int) -> tuple[int, ...]:
        """Coordinates ``(c0, c1, ...)`` of ``device`` (dimension 0 fastest)."""
        self.check_device(device)
        out = []
        for d in self.dimensions:
            device, c = divmod(device, d.size)
            out.append(c)
        return tuple(out)

    def device_at(self, coords) -> int:
        """Inverse of :meth:`coords`: ``sum(c_i * strides[i])``."""
        coords = tuple(coords)
        if len(coords) != len(self.dimensions):
            raise ValueError(f"coords={coords} must have {len(self.dimensions)} entries")
        for i, (c, d) in enumerate(zip(coords, self.dimensions)):
            if isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < d.size:
                raise ValueError(f"coords[{i}]={c!r} must be an integer in 0..{d.size - 1}")
        return sum(c * s for c, s in zip(coords, self._strides))

    def dims_spanned(self, group) -> tuple[int, ...]:
        """Dimensions along which at least two devices of ``group`` differ."""
        group = list(group)
        for dev in group:
            self.check_device(dev, "group device")
        if len(group) < 2:
            return ()
        out = []
        for i, (d, stride) in enumerate(zip(self.dimensions, self._strides)):
            first = (group[0] // stride) % d.size
            if any((g // stride) % d.size != first for g in group):
                out.append(i)
        return tuple(out)

    def row_base(self, device: int, dim: int) -> int:
        """First device of ``device``'s row in dimension ``dim`` (its coordinate set to 0)."""
        stride = self._strides[dim]
        return device - ((device // stride) % self.dimensions[dim].size) * stride

    # ------------------------------------------------------------------ routing
    def path(self, src: int, dst: int) -> tuple[LinkId, ...]:
        """Links from ``src`` to ``dst`` under dimension-order routing.

        Dimension 0 is corrected first, then 1, and so on. Within a dimension a
        Ring walks the shorter way round (ties go in the increasing
        direction), a FullyConnected dimension takes the one direct link, and a
        Switch dimension takes the source's up-port and the destination's
        down-port.
        """
        self.check_device(src, "src")
        self.check_device(dst, "dst")
        links: list[LinkId] = []
        cur = src
        for i, (d, stride) in enumerate(zip(self.dimensions, self._strides)):
            a = (cur // stride) % d.size
            b = (dst // stride) % d.size
            if a == b:
                continue
            nxt = cur + (b - a) * stride
            if d.kind == "FullyConnected":
                links.append((i, cur, nxt))
            elif d.kind == "Switch":
                links.append((i, cur, "up"))
                links.append((i, nxt, "down"))
            else:  # Ring
                forward = (b - a) % d.size
                step = 1 if forward <= d.size - forward else -1
                c = a
                while c != b:
                    n = (c + step) % d.size
                    links.append((i, cur + (c - a) * stride, cur + (n - a) * stride))
                    c = n
            cur = nxt
        return tuple(links)

    def hops(self, src: int, dst: int) -> int:
        """Number of links on :meth:`path` (a switch crossing counts two)."""
        return len(self.path(src, dst))

    def link_bandwidth(self, link: LinkId) -> float:
        """Capacity of ``link`` in B/s (see the module docstring)."""
        return self._dim_of(link).link_capacity

    def link_latency(self, link: LinkId) -> float:
        """Seconds to traverse ``link``; a switch's router latency is charged on its up-port."""
        d = self._dim_of(link)
        if link[2] == "up":
            return d.latency + d.router_latency
        return d.latency

    def link_class(self, link: LinkId) -> str:
        """Accounting class of a link: ``"dim0"``, ``"dim1"``, ..."""
        return f"dim{link[0]}"

    def path_latency(self, src: int, dst: int) -> float:
        """Unloaded latency of a transfer: link latencies + router + NIC latencies on the path."""
        links = self.path(src, dst)
        total = sum(self.link_latency(l) for l in links)
        total += sum(self.dimensions[i].nic_latency for i in {l[0] for l in links})
        return total

    def path_bandwidth(self, src: int, dst: int) -> float:
        """Bottleneck bandwidth of the path (``inf`` when ``src == dst``)."""
        links = self.path(src, dst)
        return min((self.link_bandwidth(l) for l in links), default=math.inf)

    def _dim_of(self, link) -> Dimension:
        if not isinstance(link, tuple) or len(link) != 3 or not isinstance(link[0], int) \
                or not 0 <= link[0] < len(self.dimensions):
            raise ValueError(f"link={link!r} is not a LinkId of this topology")
        return self.dimensions[link[0]]

    def describe(self) -> str:
        """One line per dimension, for printing."""
        lines = [f"Topology {self.name or '(unnamed)'}: {self.num_devices} devices"]
        for i, d in enumerate(self.dimensions):
            lines.append(f"  dim{i} [{d.dim_type}] {d.kind} x{d.size}: {d.num_links} links "
                         f"of {d.bandwidth / 1e9:g} GB/s, {d.latency * 1e9:g} ns")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


# ====================================================================== loading
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


__all__ = ["DIMENSION_TYPES", "TOPOLOGY_KINDS", "Dimension", "LinkId", "Topology",
           "default_topology", "list_network_presets", "load_topology"]
