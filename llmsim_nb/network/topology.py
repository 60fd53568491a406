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

Reading files and presets is :mod:`llmsim_nb.network.topology_files`
(:func:`~llmsim_nb.network.topology_files.load_topology`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

from .alpha_beta import CollectiveLatency

#: Topology kinds of a dimension, as spelled in ASTRA-sim's ``topologies-per-dim``.
TOPOLOGY_KINDS = ("Ring", "FullyConnected", "Switch")

#: Dimension-type letters used by the seed files (labels only; they never change timing).
#: ASTRA-sim uses them to name the level of the hierarchy a dimension stands for.
DIMENSION_TYPES = ("N", "T", "P", "B", "C", "Q")

#: Name of a link: ``(dim, src, dst)`` or ``(dim, device, "up" | "down")``.
LinkId = tuple[int, int, Union[int, str]]


#: Ranges of a dimension's numbers: bandwidth from 1 MB/s (below it one KV block
#: takes seconds) to 1e24 B/s (NVLink 5 is 1.8 TB/s per GPU, but the seed's
#: NeuPIMs files give 1e12 GB/s to make a link free); latencies up to 1 s
#: (real links take ns to us); sizes and link counts up to 65,536, as devices
#: (``npu_num``'s range). A whole topology holds at most 2**17 devices (NPUs
#: plus a pool of as many PIM devices).
BANDWIDTH_RANGE = (1e6, 1e24)
MAX_LATENCY = 1.0
MAX_SIZE = 65_536
MAX_DEVICES = 2 ** 17


def _check_real(owner: str, name: str, value: Any, *, strict: bool,
                maximum: float | None = None, minimum: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, got {value!r}")
    if value < 0 or (strict and value == 0):
        raise ValueError(f"{owner}.{name} must be {'>' if strict else '>='} 0, got {value}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{owner}.{name}={value!r} is out of range; allowed {minimum:g} .. "
                         f"{maximum:g}")


def _check_int(owner: str, name: str, value: Any, minimum: int,
               maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{owner}.{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{owner}.{name}={value!r} is out of range; allowed {minimum} .. "
                         f"{maximum}")


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
        _check_int(owner, "size", self.size, 1, MAX_SIZE)
        _check_real(owner, "bandwidth", self.bandwidth, strict=True,
                    minimum=BANDWIDTH_RANGE[0], maximum=BANDWIDTH_RANGE[1])
        _check_real(owner, "latency", self.latency, strict=False, maximum=MAX_LATENCY)
        _check_int(owner, "num_links", self.num_links, 1, MAX_SIZE)
        if self.dim_type not in DIMENSION_TYPES:
            raise ValueError(f"{owner}.dim_type={self.dim_type!r} is not one of "
                             f"{list(DIMENSION_TYPES)}")
        _check_real(owner, "router_latency", self.router_latency, strict=False,
                    maximum=MAX_LATENCY)
        _check_real(owner, "nic_latency", self.nic_latency, strict=False, maximum=MAX_LATENCY)

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
    collective_latency : CollectiveLatency or None
        Measured alpha-beta constants that price collectives on dimension 0
        (a Switch) instead of its link figures (:mod:`.alpha_beta`).
    """

    dimensions: tuple[Dimension, ...]
    name: str = ""
    source: str = ""
    notes: tuple[str, ...] = ()
    hbm_bandwidth: tuple[float, ...] = ()
    hbm_latency: tuple[float, ...] = ()
    collective_latency: CollectiveLatency | None = None
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
        devices = math.prod(d.size for d in self.dimensions)
        if devices > MAX_DEVICES:
            raise ValueError(f"{owner} {self.name!r} has {devices} devices (dimension sizes "
                             f"{[d.size for d in self.dimensions]}); at most {MAX_DEVICES} are "
                             f"allowed")
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
        if self.collective_latency is not None and (
                not isinstance(self.collective_latency, CollectiveLatency)
                or self.dimensions[0].kind != "Switch"):
            raise ValueError(f"{owner}.collective_latency must be None or a CollectiveLatency "
                             f"on a Switch dimension 0, got {self.collective_latency!r}")
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


__all__ = ["DIMENSION_TYPES", "TOPOLOGY_KINDS", "Dimension", "LinkId", "Topology"]
