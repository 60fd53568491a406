"""GPU interconnect presets: the network a GPU preset brings when none is given.

A GPU hardware preset names its interconnect (``interconnect: nvlink3`` in
``presets/hardware.yaml``); with no ``network`` flag the simulator builds
:func:`interconnect_topology` for it instead of the original's default
fully-connected 64 GB/s network. Every preset is one ``Switch`` dimension
joining all ``npu_num`` GPUs of one server (NVSwitch, or the PCIe switch /
root complex), with the per-GPU bandwidth in each direction:

==========  ===============================  ==========  =========  ============
name        what                             per link    links/GPU  per GPU, 1 way
==========  ===============================  ==========  =========  ============
nvlink3     A100 NVLink 3 via NVSwitch       25 GB/s     12         300 GB/s
nvlink4     H100/H200 NVLink 4 via NVSwitch  25 GB/s     18         450 GB/s
nvlink5     B200 NVLink 5 via NVSwitch       50 GB/s     18         900 GB/s
nvl72       GB200 NVL72 NVLink 5 domain      50 GB/s     18         900 GB/s
xgmi        MI300X Infinity Fabric mesh      64 GB/s     7          448 GB/s
pcie4       PCIe 4.0 x16                     31.5 GB/s   1          31.5 GB/s
pcie5       PCIe 5.0 x16                     63 GB/s     1          63 GB/s
nvlink-c2c  GB200 GPU to Grace (host link)   225 GB/s    1          225 GB/s
==========  ===============================  ==========  =========  ============

Sources: NVIDIA A100 datasheet (NVLink 600 GB/s bidirectional = 12 links x
25 GB/s x 2 directions), H100 datasheet (900 GB/s = 18 links), PCI-SIG PCIe
4.0 / 5.0 (16 GT/s and 32 GT/s per lane, 128b/130b coding, 16 lanes).
NVLink 5: NVIDIA HGX B200 and GB200 NVL72 datasheets (1.8 TB/s bidirectional
per GPU = 18 links x 50 GB/s x 2 directions; NVL72 joins 72 GPUs through NVLink
Switch trays, 130 TB/s = 72 x 1.8 TB/s). ``nvlink5`` and ``nvl72`` time the
same (one switch hop, the same per-GPU bandwidth): the names record the domain,
8 GPUs on an HGX B200 baseboard, 72 in an NVL72 rack; this table does not cap
``npu_num`` at the domain size for any entry (a 16-GPU ``nvlink4`` topology is
one switch too). Infinity Fabric: AMD Instinct MI300X datasheet (7 links of
128 GB/s bidirectional, 896 GB/s aggregate peer bandwidth on an 8-GPU
platform). The MI300X platform is a full mesh (one link to each of 7 peers),
modelled here as a switch dimension of 7 links: collectives that keep all links
busy (ring / all-to-all over the 8 GPUs, as RCCL does) see the right 448 GB/s
per GPU, a transfer to a single peer is 7x too fast (one link is 64 GB/s).
NVLink-C2C: NVIDIA GB200 NVL72 datasheet (900 GB/s bidirectional between a
Grace CPU and its two GPUs); the even split, 225 GB/s per GPU and direction, is
an assumption NVIDIA does not state.
Across servers (KV transfers between a cluster's instances, one NIC per GPU
as on DGX/HGX H100 servers): ``ib-ndr400`` InfiniBand NDR, 400 Gb/s = 50 GB/s
per direction (NVIDIA ConnectX-7 datasheet); ``roce-200g`` RoCE v2 at 200 Gb/s
= 25 GB/s; ``ethernet-100g`` 12.5 GB/s (IEEE 802.3 100GBASE). Their latencies
(2-5 us through a switch, 10-25 us of per-transfer software: NIXL / UCX
registration and completion) are typical published orders of magnitude, not
measured here.

Latencies: ``latency`` is the wire and switch traversal (about 1 us through a
PCIe switch, 0.5 us through NVSwitch), ``nic_latency`` the per-transfer software
and protocol cost of a collective step (NCCL's per-step latency of a few
microseconds; larger over PCIe, where transfers are staged through host-visible
buffers). The latencies of the NVLink 5, NVL72, Infinity Fabric and NVLink-C2C
entries are not measured: NVLink's figures are carried over (0.5 us, 5 us per
step; the C2C host copy also 5 us, a coherent link with no staging buffer).

Measured collectives: ``nvlink3`` carries a
:class:`~llmsim_nb.network.alpha_beta.CollectiveLatency` fitted to Vidur's
A100 DGX profiles (``bench/fit_collectives.py`` refits it and prints the
errors; ``docs/collectives.md``): its collectives cost ``steps * 16.8 us +
bytes / 153.9 GB/s`` and a SEND ``13.2 us + bytes / 285.8 GB/s``. The other
entries have no measured profile and keep their datasheet alpha-beta.
"""

from __future__ import annotations

from dataclasses import dataclass

from .alpha_beta import CollectiveLatency
from .topology import Dimension, Topology

#: A100 DGX (NVSwitch) all-reduce and send/recv medians within one server, 2, 4 and 8 GPUs,
#: 2 KiB to 64 MiB; least squares on relative error, B <= 300 GB/s, alpha >= 0; direct (the
#: best fit) is the default, ring and halving_doubling serve an explicit --collective.
_NVLINK3_FIT = CollectiveLatency(
    "direct", 1.6795e-05, 153.87e9, 1.3162e-05, 285.82e9, 300e9,
    "fitted by llmsim_nb.fidelity.collective_fit (bench/fit_collectives.py) to "
    "calibration/vidur_a100/network/a100_dgx/{all_reduce,send_recv}.csv (Vidur, "
    "github microsoft/vidur data/profiling/network; rows within one server)",
    others=(("ring", 3.3746e-06, 142.88e9), ("halving_doubling", 7.5303e-06, 148.67e9)))


@dataclass(frozen=True, slots=True)
class Interconnect:
    """One link technology (SI units; see the module table)."""

    name: str
    link_bandwidth: float
    links_per_device: int
    latency: float
    nic_latency: float
    description: str
    #: Fitted alpha-beta constants of its collectives and sends (None: datasheet figures).
    collective: CollectiveLatency | None = None


INTERCONNECTS: dict[str, Interconnect] = {
    "nvlink3": Interconnect("nvlink3", 25e9, 12, 0.5e-6, 5e-6,
                            "NVLink 3 through NVSwitch (A100 HGX)", _NVLINK3_FIT),
    "nvlink4": Interconnect("nvlink4", 25e9, 18, 0.5e-6, 5e-6,
                            "NVLink 4 through NVSwitch (H100/H200 HGX)"),
    "nvlink5": Interconnect("nvlink5", 50e9, 18, 0.5e-6, 5e-6,
                            "NVLink 5 through NVSwitch (B200 HGX, 8-GPU domain)"),
    "nvl72": Interconnect("nvl72", 50e9, 18, 0.5e-6, 5e-6,
                          "NVLink 5 through NVLink Switch trays (GB200 NVL72, 72-GPU domain)"),
    "xgmi": Interconnect("xgmi", 64e9, 7, 0.5e-6, 5e-6,
                         "AMD Infinity Fabric, 7 links per GPU (MI300X platform mesh, "
                         "modelled as a switch)"),
    "pcie4": Interconnect("pcie4", 31.5e9, 1, 1e-6, 10e-6, "PCIe 4.0 x16 through a switch"),
    "pcie5": Interconnect("pcie5", 63e9, 1, 1e-6, 10e-6, "PCIe 5.0 x16 through a switch"),
    "nvlink-c2c": Interconnect("nvlink-c2c", 225e9, 1, 0.5e-6, 5e-6,
                               "NVLink-C2C to the Grace CPU, one GPU's half (GB200 host link)"),
    # Between servers (a cluster's KV transfers): one NIC per GPU, RDMA.
    "ib-ndr400": Interconnect("ib-ndr400", 50e9, 1, 2e-6, 10e-6,
                              "InfiniBand NDR 400 Gb/s, one ConnectX-7 per GPU (across servers)"),
    "roce-200g": Interconnect("roce-200g", 25e9, 1, 3e-6, 15e-6,
                              "RoCE v2 over 200 Gb/s Ethernet, one NIC per GPU (across servers)"),
    "ethernet-100g": Interconnect("ethernet-100g", 12.5e9, 1, 5e-6, 25e-6,
                                  "100 Gb/s Ethernet, one NIC per GPU (across servers)"),
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
    fit = link.collective
    if fit is None:
        dim = Dimension("Switch", npu_num, link.link_bandwidth, link.latency,
                        link.links_per_device, "N", 0.0, link.nic_latency)
        source = f"interconnect preset {name!r}: {link.description}"
    else:
        # A SEND crosses the switch once: 2 wire latencies + the NIC latency, at the port
        # bandwidth; both set so it costs the fitted send_latency + size / send_bandwidth.
        wire = min(link.latency, fit.send_latency / 2)
        dim = Dimension("Switch", npu_num, fit.send_bandwidth / link.links_per_device, wire,
                        link.links_per_device, "N", 0.0, fit.send_latency - 2 * wire)
        source = f"interconnect preset {name!r}: {link.description}; {fit.source}"
    return Topology((dim,), name=f"{name}_{npu_num}", source=source, collective_latency=fit)


__all__ = ["INTERCONNECTS", "Interconnect", "get_interconnect", "interconnect_topology"]
