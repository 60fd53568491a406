"""GPU attention timing: one fused kernel per layer (FlashAttention / PagedAttention).

The *Attention* part of the model in the module docstring of
:mod:`llmsim_nb.engines.gpu`. The simulator's block has three logical attention
ops (score, softmax, context); a GPU runs them as one kernel whose scores never
reach DRAM, so each op is charged its share of that kernel's compute and of its
KV-cache traffic, and the three shares sum to the fused kernel's time.
"""

from __future__ import annotations

import numpy as np

from ...models.ops import Op, OpKind
from .gemm import ceil_div
from .memory import GPUMemoryTiming

#: Query rows per FlashAttention-2 thread block (``Br`` for head size 128).
ATTENTION_QUERY_TILE = 128

#: FLOPs per score element of the online softmax (max, subtract, exp, sum, scale).
SOFTMAX_FLOPS_PER_SCORE = 5.0


class GPUAttentionTiming(GPUMemoryTiming):
    """Mixin of :class:`~llmsim_nb.engines.gpu.GPUEngine`: shares of the fused attention kernel."""

    def attention_parts(self, op: Op) -> tuple[np.ndarray, np.ndarray]:
        """``(compute, memory)`` seconds of one attention op's share of the fused kernel."""
        s = self.spec
        kind = op.kind
        q = np.asarray(op.m, dtype=np.float64)
        kv = np.asarray(op.n, dtype=np.float64)
        if kind is OpKind.SOFTMAX:
            # m = q * heads: the scores this request computes, all in registers.
            rows = q
            scores = rows * kv
            compute = SOFTMAX_FLOPS_PER_SCORE * scores / (s.vector_efficiency * s.vector_flops)
            return compute, np.zeros_like(compute)
        h = float(op.batch)
        if kind is OpKind.ATTN_SCORE:
            hd = np.asarray(op.k, dtype=np.float64)
        else:  # ATTN_CONTEXT: m = q, n = head size, k = kv
            hd, kv = kv, np.asarray(op.k, dtype=np.float64)
        op_dt = self._attention_dtype(op, q, kv, hd)
        # K (score) or V (context) bytes of the cache: the op's own read minus the
        # part that is not cache (queries, or the score matrix a systolic array reads).
        if kind is OpKind.ATTN_SCORE:
            other = h * q * hd * op_dt
        else:
            other = h * q * kv * op_dt
        cache_elems = np.maximum(np.asarray(op.bytes_read, dtype=np.float64) - other, 0.0) / op_dt
        # Queries in (score) or outputs out (context), 16-bit; K or V at the cache dtype.
        moved = cache_elems * s.dtype_bytes + h * q * hd * 2.0
        written = h * q * hd * 2.0 if kind is OpKind.ATTN_CONTEXT else np.zeros_like(q)
        context = kv - q
        prompt = q > 1
        q_pad = np.where(prompt, ceil_div(q, ATTENTION_QUERY_TILE) * ATTENTION_QUERY_TILE, q)
        # Causal: query i sees the context and the first i + 1 prompt tokens. A padded
        # query tile computes every row it holds, so the padding pays full context.
        scores = h * (q_pad * context + q * (q + 1) / 2.0 + (q_pad - q) * q)
        compute = 2.0 * hd * scores / (s.attention_efficiency * s.peak_matmul_flops)
        memory = self.dram_time(moved - written, written, s.kv_bandwidth_efficiency)
        return compute, memory

    def _attention_dtype(self, op: Op, q, kv, hd) -> float:
        """Bytes per element the op was built with (from its output bytes)."""
        written = np.asarray(op.bytes_written, dtype=np.float64)
        if op.kind is OpKind.ATTN_SCORE:
            elems = op.batch * q * kv
        else:
            elems = op.batch * q * hd
        ok = elems > 0
        return float(written[ok][0] / elems[ok][0]) if np.any(ok) else 2.0


__all__ = ["ATTENTION_QUERY_TILE", "GPUAttentionTiming", "SOFTMAX_FLOPS_PER_SCORE"]
