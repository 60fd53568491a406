"""The power meter: energy per device of each iteration, from its work and times.

Per iteration of latency ``L`` (one TP rank's per-op seconds ``t_i``, FLOPs
``F_i`` and DRAM bytes ``B_i`` from :mod:`.work`):

- GPU: op ``i`` draws ``idle + (TDP - idle) * min(1, u_c f^2 + w_m u_m)``
  with ``u_c = F_i / (peak_eff t_i)`` and ``u_m = B_i / (bw_eff t_i)`` (the
  engine's achievable rates, so an op timed at its compute roof draws TDP;
  never more), capped at the power cap; the device idles the rest of ``L``.
- NPU: ``mac_j F/2 + sram_j 2B + dram_j B`` (each DRAM byte is written into
  and read once from the on-chip buffers) plus ``static_w L``.
- PIM: its command energies plus background power (:mod:`.pim_energy`).
- Links: bits per link class times energy per bit (host transfers also pay
  the host DRAM access); host CPU: ``host_cpu_w`` per device for ``L``.

Dynamic energy sums over the ``tp`` ranks and is split over the compute
devices by their busy time in the iteration (stages that run more layers use
more). Between iterations every device draws its idle (static) power:
:attr:`PowerMeter.idle_w` for the gaps, which ``summarize`` adds.
"""

from __future__ import annotations

import math

import numpy as np

from ..models.ops import OpKind
from .pim_energy import background_w
from .presets import GPUPower, NPUPower, host_power, power_of
from .work import WorkCounter


class PowerMeter:
    """Energy of an instance's iterations.

    Parameters
    ----------
    hardware : str
        The hardware preset (its power preset is looked up).
    stack : ExecutionStack
        The instance's stack (templates, layout, PIM and mapping).
    num_devices : int
        Devices of the instance's topology (NPUs first, then a PIM pool).
    clock : float
        Clock fraction under a power cap (1 without one).
    cap_w : float or None
    pim_hardware : str or None
        PIM preset name with a PIM.
    pooled : bool
        Whether the PIMs are devices of their own (pim_type pool).
    """

    def __init__(self, hardware: str, stack, num_devices: int, clock: float = 1.0,
                 cap_w: float | None = None, pim_hardware: str | None = None,
                 pooled: bool = False) -> None:
        self.power = power_of(hardware)
        self.host = host_power()
        self.spec = stack.engine.spec
        self.work = WorkCounter(stack)
        self.tp = stack.layout.tp
        self.num_compute = stack.layout.tp * stack.layout.pp
        self.num_devices = num_devices
        self.clock, self.cap_w = clock, cap_w
        self.pim_power = None if pim_hardware is None else power_of(pim_hardware)
        self.pim_spec = self.work.pim_spec
        static = np.zeros(num_devices)
        static[:self.num_compute] = self.power.static_w
        if self.pim_power is not None and self.pim_spec is not None:
            pim_w = background_w(self.pim_spec, self.pim_power)
            if pooled:
                static[self.num_compute:] += pim_w
            else:
                static[:self.num_compute] += pim_w
        self.static_w = static
        self.idle_w = float(static.sum()) + self.host.host_cpu_w * self.num_compute
        if isinstance(self.power, GPUPower):
            self._rates = self._gpu_rates(stack)

    def _gpu_rates(self, stack) -> tuple[np.ndarray, float]:
        """Achievable FLOP/s per op of the template and achievable DRAM B/s."""
        s, sharded = self.spec, stack.sharded
        templates = (*sharded.embedding, *sharded.block, *sharded.head)
        peak = np.array([s.peak_matmul_flops * (s.attention_efficiency if t.kind in
                                                (OpKind.ATTN_SCORE, OpKind.ATTN_CONTEXT)
                                                else s.gemm_efficiency)
                         if t.kind.is_matmul else s.peak_vector_flops * s.vector_efficiency
                         for t in templates])
        return peak, s.memory_bandwidth * s.memory_efficiency

    def gpu_op_power(self, flops: np.ndarray, nbytes: np.ndarray, seconds: np.ndarray,
                     peak: np.ndarray, bandwidth: float) -> np.ndarray:
        """Active power above idle of each op (W; 0 for an op that takes no time)."""
        p: GPUPower = self.power
        with np.errstate(divide="ignore", invalid="ignore"):
            u_c = np.where(seconds > 0, flops / (peak * seconds), 0.0)
            u_m = np.where(seconds > 0, nbytes / (bandwidth * seconds), 0.0)
        headroom = p.tdp_w - p.idle_w
        limit = min(p.tdp_w, self.cap_w if self.cap_w is not None else math.inf) - p.idle_w
        active = headroom * np.minimum(1.0, u_c * self.clock ** 2 + p.memory_weight * u_m)
        return np.minimum(active, limit)

    def energy(self, flops: np.ndarray, nbytes: np.ndarray, op_latency: np.ndarray,
               latency: np.ndarray, busy: np.ndarray, pim_j: np.ndarray,
               pim_busy: np.ndarray, host_bytes: np.ndarray, device_link_bytes: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(J per iteration and device, link J, host J per iteration) of ``n`` iterations.

        ``flops`` / ``nbytes`` / ``op_latency``: (n, ops) for one TP rank (:mod:`.work`);
        ``busy`` / ``pim_busy``: (n, devices) seconds each device's compute / PIM unit
        was busy; ``pim_j``: the PIM commands' J; the bytes moved over the host link
        and over device links.
        """
        if isinstance(self.power, GPUPower):
            peak, bandwidth = self._rates
            active = self.gpu_op_power(flops, nbytes, op_latency, peak, bandwidth)
            dynamic = (active * op_latency).sum(axis=1) * self.tp
        else:
            p: NPUPower = self.power
            dynamic = self.tp * (p.mac_j * flops.sum(axis=1) / 2
                                 + (2 * p.sram_j_per_byte + p.dram_j_per_byte)
                                 * nbytes.sum(axis=1))
        energy = latency[:, None] * self.static_w[None, :]
        energy[:, :self.num_compute] += dynamic[:, None] * _shares(busy[:, :self.num_compute])
        if self.pim_power is not None and self.pim_spec is not None:
            energy += pim_j[:, None] * _shares(pim_busy, self.num_compute)
        h = self.host
        link = 8.0 * (host_bytes * (h.host_link_j_per_bit + h.host_memory_j_per_bit)
                      + device_link_bytes * h.device_link_j_per_bit)
        return energy, link, h.host_cpu_w * self.num_compute * latency


def _shares(busy: np.ndarray, first_n: int | None = None) -> np.ndarray:
    """Row-wise fractions of ``busy`` (equal over the first ``first_n`` columns, or
    all, in a row of zeros)."""
    total = busy.sum(axis=1, keepdims=True)
    n = busy.shape[1] if first_n is None else first_n
    even = np.zeros(busy.shape[1])
    even[:n] = 1.0 / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, busy / total, even[None, :])


__all__ = ["PowerMeter"]
