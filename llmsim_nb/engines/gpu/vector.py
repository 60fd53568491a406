"""GPU vector-kernel timing: norms, activations, residual adds, rotary, gathers.

The *Vector ops* part of the model in the module docstring of
:mod:`llmsim_nb.engines.gpu`: memory-bound streams, each kind with its own
bandwidth efficiency and fixed time (fields named by
:data:`~llmsim_nb.engines.gpu.spec.VECTOR_KINDS` and
:data:`~llmsim_nb.engines.gpu.spec.VECTOR_OVERHEADS`), because fused and
unfused kernels of one kind make a different number of DRAM passes.
"""

from __future__ import annotations

import numpy as np

from ...models.ops import Op, OpKind
from ..base import OpTiming
from .memory import GPUMemoryTiming
from .spec import VECTOR_KINDS, VECTOR_OVERHEADS

#: Elementwise ops that are rotary embeddings (the block template's name for
#: them): an in-place rotation of element pairs half a head apart, a strided
#: access pattern that streams worse than a residual add. In place, their
#: footprint in the L2 is the bytes they read (they write the same lines).
ROTARY_OPS = ("rope",)


class GPUVectorTiming(GPUMemoryTiming):
    """Mixin of :class:`~llmsim_nb.engines.gpu.GPUEngine`: stand-alone vector kernels.

    :meth:`time_vector_op` finishes through the engine's ``_finish`` (launch and
    kernel overheads), which :class:`~llmsim_nb.engines.gpu.GPUEngine` defines.
    """

    def vector_parts(self, op: Op) -> tuple[np.ndarray, np.ndarray]:
        """``(compute, memory)`` seconds of a stand-alone vector kernel (any kind,
        including a softmax that writes its result to DRAM)."""
        s = self.spec
        kind = op.kind if op.kind in VECTOR_KINDS else OpKind.ELEMENTWISE
        field = ("rotary_bandwidth_efficiency" if kind is OpKind.ELEMENTWISE
                 and op.name in ROTARY_OPS else VECTOR_KINDS[kind])
        efficiency = getattr(s, field)
        read = np.asarray(op.bytes_read, dtype=np.float64)
        written = np.asarray(op.bytes_written, dtype=np.float64)
        # An in-place op writes the lines it read: its footprint is the larger of the two.
        footprint = np.maximum(read, written) if op.name in ROTARY_OPS else read + written
        compute = np.asarray(op.flops, dtype=np.float64) / (s.vector_efficiency * s.vector_flops)
        if kind is OpKind.EMBEDDING:
            # A latency-bound gather: absorbed writes do not shorten it (*L2 write-back*
            # in the module docstring of llmsim_nb.engines.gpu).
            return compute, (read + written) / (efficiency * s.memory_bandwidth)
        return compute, self.dram_time(read, written, efficiency, footprint)

    def time_vector_op(self, op: Op) -> OpTiming:
        """Time ``op`` as a stand-alone vector kernel (the attention softmax is not:
        it lives inside the fused attention kernel)."""
        compute, memory = self.vector_parts(op)
        kind = op.kind if op.kind in VECTOR_OVERHEADS else OpKind.ELEMENTWISE
        return self._finish(op, compute, memory, fused=False,
                            overhead=getattr(self.spec, VECTOR_OVERHEADS[kind]))


__all__ = ["GPUVectorTiming", "ROTARY_OPS"]
