"""GPU interconnect presets: the network a GPU preset brings when none is given.

A GPU hardware preset names its interconnect (``interconnect: nvlink3`` in
``presets/hardware.yaml``); with no ``network`` flag the simulator builds
:func:`interconnect_topology` for it instead of the original's default
fully-connected 64 GB/s network. Every preset is one ``Switch`` dimension
joining all ``npu_num`` GPUs of one server (NVSwitch, or the PCIe switch /
root complex), with the per-GPU bandwidth in each direction:

==========  ==============================  ===========  =========  ============
name        what                            per link     links/GPU  per GPU, 1 way
==========  ==============================  ===========  =========  ============
nvlink3     A100 NVLink 3 via NVSwitch      25 GB/s      12         300 GB/s
nvlink4     H100/H200 NVLink 4 via NVSwitch 25 GB/s      18         450 GB/s
pcie4       PCIe 4.0 x16                    31.5 GB/s    1          31.5 GB/s
pcie5       PCIe 5.0 x16                    63 GB/s      1          63 GB/s
==========  ==============================  ===========  =========  ============

Sources: NVIDIA A100 datasheet (NVLink 600 GB/s bidirectional = 12 links x
25 GB/s x 2 directions), H100 datasheet (900 GB/s = 18 links), PCI-SIG PCIe
4.0 / 5.0 (16 GT/s and 32 GT/s per lane, 128b/130b coding, 16 lanes).
Latencies: ``latency`` is the wire and switch traversal (about 1 us through a
PCIe switch, 0.5 us through NVSwitch), ``nic_latency`` the per-transfer software
and protocol cost of a collective step (NCCL's per-step latency of a few
microseconds; larger over PCIe, where transfers are staged through host-visible
buffers).
"""

from __future__ import annotations

from dataclasses import dataclass

from .topology import Dimension, Topology


@dataclass(frozen=True, slots=True)
class Interconnect:
    """One link technology (SI units; see the module table)."""

    name: str
    link_bandwidth: float
    links_per_device: int
    latency: float
    nic_latency: float
    description: str


INTERCONNECTS: dict[str, Interconnect] = {
    "nvlink3": Interconnect("nvlink3", 25e9, 12, 0.5e-6, 5e-6,
                            "NVLink 3 through NVSwitch (A100 HGX)"),
    "nvlink4": Interconnect("nvlink4", 25e9, 18, 0.5e-6, 5e-6,
                            "NVLink 4 through NVSwitch (H100/H200 HGX)"),
    "pcie4": Interconnect("pcie4", 31.5e9, 1, 1e-6, 10e-6, "PCIe 4.0 x16 through a switch"),
    "pcie5": Interconnect("pcie5", 63e9, 1, 1e-6, 10e-6, "PCIe 5.0 x16 through a switch"),
}


def get_interconnect(name: str) -> Interconnect:
    """The interconnect preset ``name``; a clear error lists the known ones."""
    try:
        return INTERCONNECTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"interconnect={name!r} is not a known interconnect; known: "
                         f"{sorted(INTERCONNECTS)}") from None


def interconnect_topology(name: str, npu_num: int) -> Topology:
    """One switch dimension of ``npu_num`` GPUs joined by interconnect ``name``."""
    link = get_interconnect(name)
    if isinstance(npu_num, bool) or not isinstance(npu_num, int) or npu_num < 1:
        raise ValueError(f"interconnect_topology: npu_num={npu_num!r} must be an integer >= 1")
    dim = Dimension("Switch", npu_num, link.link_bandwidth, link.latency,
                    link.links_per_device, "N", 0.0, link.nic_latency)
    return Topology((dim,), name=f"{name}_{npu_num}",
                    source=f"interconnect preset {name!r}: {link.description}")


__all__ = ["INTERCONNECTS", "Interconnect", "get_interconnect", "interconnect_topology"]
