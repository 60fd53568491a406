"""GPU memory timing: DRAM streams with writes absorbed by a write-back L2.

The memory half of every :class:`~llmsim_nb.engines.gpu.GPUEngine` kernel
(GEMM operands, KV-cache reads, vector streams) goes through
:meth:`GPUMemoryTiming.dram_time`; the model is *L2 write-back* in the module
docstring of :mod:`llmsim_nb.engines.gpu`.
"""

from __future__ import annotations

import numpy as np

from .spec import GPUSpec


class GPUMemoryTiming:
    """Mixin of :class:`~llmsim_nb.engines.gpu.GPUEngine`: time of bytes in and out.

    Reads only ``self.spec``; the engine's op-family mixins build on it.
    """

    spec: GPUSpec

    def l2_write_fraction(self, footprint) -> np.ndarray:
        """Fraction of a kernel's writes the L2 absorbs, ``min(1, capacity / footprint)``.

        ``footprint`` is the distinct bytes the kernel touches; 1 when it fits in
        ``l2_usable_fraction * l2_bytes`` (and for an empty kernel), falling as
        ``1 / footprint`` beyond.
        """
        s = self.spec
        footprint = np.asarray(footprint, dtype=np.float64)
        capacity = s.l2_usable_fraction * s.l2_bytes
        return np.minimum(1.0, capacity / np.maximum(footprint, 1.0))

    def dram_time(self, read, written, efficiency: float, footprint=None) -> np.ndarray:
        """Seconds to stream ``read`` bytes in and ``written`` bytes out at ``efficiency``.

        Reads come from DRAM; the written bytes the L2 absorbs
        (:meth:`l2_write_fraction` of ``footprint``, default ``read + written``)
        cost L2 bandwidth, the rest DRAM bandwidth. See *L2 write-back* in the
        module docstring of :mod:`llmsim_nb.engines.gpu`.
        """
        s = self.spec
        read = np.asarray(read, dtype=np.float64)
        written = np.asarray(written, dtype=np.float64)
        if footprint is None:
            footprint = read + written
        absorbed = self.l2_write_fraction(footprint) * written
        return ((read + written - absorbed) / (efficiency * s.memory_bandwidth)
                + absorbed / (efficiency * s.l2_bandwidth))


__all__ = ["GPUMemoryTiming"]
