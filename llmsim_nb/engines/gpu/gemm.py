"""GPU GEMM timing: tile- and wave-quantised tensor-core products with split-K.

The *GEMM* part of the model in the module docstring of
:mod:`llmsim_nb.engines.gpu`: the fastest thread-block tile of
:data:`GEMM_TILES` against the tensor cores and the L2 operand feed, and the
operands' DRAM traffic. :class:`~llmsim_nb.engines.gpu.GPUEngine` combines the
two phases (``max`` plus the exposed fraction of the shorter one).
"""

from __future__ import annotations

import numpy as np

from ...models.ops import Op
from .memory import GPUMemoryTiming

#: Thread-block tiles ``(tm, tn)`` a GEMM library chooses among: CUTLASS /
#: cuBLAS Ampere-Hopper fp16 kernels use 256x128 down to 64x64, and skinny
#: kernels for few rows (decode) tile ``m`` by the tensor-core MMA height, 16.
GEMM_TILES: tuple[tuple[int, int], ...] = ((256, 128), (128, 256), (128, 128), (128, 64),
                                            (64, 128), (64, 64), (32, 128), (16, 128))

#: Shallowest ``k`` slice a split-K GEMM gives one thread block (below it the
#: reduction costs more than the parallelism gains).
SPLIT_K_MIN_DEPTH = 256


def ceil_div(a, b):
    """``ceil(a / b)`` in integers (arrays too): tiles, waves and slices are whole."""
    return -(-a // b)


class GPUGemmTiming(GPUMemoryTiming):
    """Mixin of :class:`~llmsim_nb.engines.gpu.GPUEngine`: the two phases of a GEMM."""

    def gemm_compute(self, m, n, k, batch: int = 1) -> np.ndarray:
        """Tensor-core seconds of ``batch`` products ``[m, k] @ [k, n]`` (no DRAM).

        The fastest tile of :data:`GEMM_TILES`, with tile and wave quantisation
        and split-K; see the module docstring of :mod:`llmsim_nb.engines.gpu`.
        0 where a dimension is 0.
        """
        s = self.spec
        m = np.atleast_1d(np.asarray(m, dtype=np.int64))
        n = np.atleast_1d(np.asarray(n, dtype=np.int64))
        k = np.atleast_1d(np.asarray(k, dtype=np.int64))
        dt = float(s.dtype_bytes)
        peak_sm = s.gemm_efficiency * s.peak_matmul_flops / s.num_sms
        best = np.full(np.broadcast(m, n, k).shape, np.inf)
        for tm, tn in GEMM_TILES:
            intensity = 2.0 * tm * tn / ((tm + tn) * dt)
            rate = min(peak_sm, intensity * s.l2_bandwidth / s.num_sms)
            tiles = batch * ceil_div(m, tm) * ceil_div(n, tn)
            # Split-K only when the tiles leave SMs idle and k is deep enough.
            split = np.clip(np.minimum(s.num_sms // np.maximum(tiles, 1),
                                       k // SPLIT_K_MIN_DEPTH), 1, None)
            waves = ceil_div(tiles * split, s.num_sms)
            depth = ceil_div(k, split)
            seconds = waves * (2.0 * tm * tn * depth) / rate
            # Split-K partial sums: fp32 written by every slice, read by a reduction.
            reduce = np.where(split > 1, 2.0 * split * batch * m * n * 4.0
                              / (s.memory_efficiency * s.memory_bandwidth), 0.0)
            best = np.minimum(best, seconds + reduce)
        has_work = (m > 0) & (n > 0) & (k > 0) & (batch > 0)
        return np.where(has_work, best, 0.0)

    def gemm_bytes(self, op: Op) -> np.ndarray:
        """DRAM bytes of each GEMM instance: activations and weights read once at the
        spec's dtype (weights stored smaller, ``Op.weight_element_bytes``, at
        their own size), the 16-bit output written once, plus the op's
        bias/params."""
        m = np.asarray(op.m, dtype=np.float64)
        n = np.asarray(op.n, dtype=np.float64)
        k = np.asarray(op.k, dtype=np.float64)
        dt = float(self.spec.dtype_bytes)
        op_dt = self._op_dtype(op)
        if op.weight_elements:
            # Weights stored in their own type (MXFP4 experts, fp8 checkpoints) or
            # several matrices (a grouped expert GEMM): each element is read at
            # its stored size, or at the spec's if that is smaller (W8A8 presets).
            element = op.weight_element_bytes or op_dt
            matrices = op.weight_elements * element
            params = max(op.weight_bytes - matrices, 0.0)
            return (op.batch * (m * k * dt + m * n * 2.0)
                    + op.weight_elements * min(element, dt) + params)
        params = max(op.weight_bytes - float(k[0] * n[0]) * op_dt, 0.0)
        return op.batch * ((m * k + k * n) * dt + m * n * 2.0) + params

    @staticmethod
    def _op_dtype(op: Op) -> float:
        """Bytes per element the op was built with (from its output bytes)."""
        rows = np.asarray(op.m, dtype=np.float64) * np.asarray(op.n, dtype=np.float64)
        written = np.asarray(op.bytes_written, dtype=np.float64)
        ok = rows > 0
        if not np.any(ok):
            return 2.0
        return float(written[ok][0] / (rows[ok][0] * op.batch)) if op.batch else 2.0

    def _time_gemm(self, op: Op) -> tuple[np.ndarray, np.ndarray]:
        """``(compute, memory)`` seconds of every instance of a GEMM op."""
        s = self.spec
        compute = self.gemm_compute(op.m, op.n, op.k, op.batch)
        total = self.gemm_bytes(op)
        written = op.batch * np.asarray(op.m, dtype=np.float64) * np.asarray(
            op.n, dtype=np.float64) * 2.0
        memory = self.dram_time(total - written, written, s.memory_efficiency)
        return compute, memory


__all__ = ["GEMM_TILES", "GPUGemmTiming", "SPLIT_K_MIN_DEPTH", "ceil_div"]
