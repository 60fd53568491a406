"""Analytical GPU engine: tensor cores, SMs, an L2 and one DRAM system.

Every latency is built from datasheet quantities (peak tensor FLOP/s, SM
count, DRAM and L2 bandwidth, shared memory per SM) and a handful of
*efficiencies*: fractions in ``(0, 1]`` of a peak that a class of kernels
reaches on real silicon. The efficiencies are the only numbers that are not
on a datasheet; :func:`llmsim_nb.fidelity.calibration.calibrate` fits them to measured
operator timings (least squares in log space, bounded by 1), and the same
values serve every model, batch and context.

Model summary
-------------
Let ``P`` be the peak dense tensor FLOP/s of the spec's dtype, ``S`` the SM
count, ``BW`` the DRAM bandwidth and ``L2`` the L2-to-SM bandwidth.

*GEMM* ``C[m, n] = A[m, k] @ W[k, n]`` (``b`` of them). The output is cut into
``tm x tn`` thread-block tiles that run ``S`` at a time (one per SM and wave).
For each candidate tile (:data:`GEMM_TILES`) a tile of ``k`` depth costs::

    per-SM rate  = min(gemm_efficiency * P / S,            # tensor cores
                       intensity * L2 / S)                 # operand feed
    intensity    = 2 tm tn / ((tm + tn) dt)                # FLOP per L2 byte
    tiles        = b ceil(m / tm) ceil(n / tn)
    compute      = ceil(tiles * s / S) * 2 tm tn ceil(k / s) / rate

Edge tiles are computed whole (tile quantisation) and a last partial wave
costs a whole wave (wave quantisation). When there are fewer tiles than SMs the
``k`` loop is split ``s`` ways (split-K, at most ``S / tiles``, each part at
least :data:`SPLIT_K_MIN_DEPTH` deep) and the fp32 partial sums are written and
reduced through DRAM. The library's choice is modelled as the fastest candidate.
DRAM traffic is each operand once (weights at the spec's dtype), less the
output writes the L2 absorbs (see *L2 write-back* below), so::

    memory  = dram_time(reads, writes, memory_efficiency)
    gemm    = max(compute, memory) + gemm_exposed_fraction * min(compute, memory)
              + kernel_overhead

The middle term is the part of the shorter phase the k-loop pipeline does not
hide (its fill and drain, and waves where every SM waits on DRAM at once); it
is what makes mid-sized GEMMs, where both phases are comparable, slower than a
roofline's ``max``.

*Attention* is one fused kernel per layer on a GPU (FlashAttention for
prompts, PagedAttention for decode steps), reported against the three logical
ops of the block. Scores never reach DRAM. Per request (query ``q``, keys
``kv = context + q``, ``h`` query heads, ``g`` KV heads, head size ``d``)::

    causal scores  = h (q * context + q (q + 1) / 2)       # computed tiles only
    attn_score     = max(2 d scores_padded / (attention_efficiency * P),
                         dram_time(Q + K bytes, 0, kv_bandwidth_efficiency))
    attn_softmax   = 5 scores / (vector_efficiency * F)    # exp/max/sum in registers
    attn_context   = max(2 d scores_padded / (attention_efficiency * P),
                         dram_time(V bytes, O bytes, kv_bandwidth_efficiency))

where ``scores_padded`` rounds ``q`` up to the kernel's query tile
(:data:`ATTENTION_QUERY_TILE`, FlashAttention-2's 128-row block) for prompts,
and ``F`` is the CUDA-core FLOP/s. A decode step (``q = 1``) has no tile to
fill: PagedAttention reads every cached K and V once, so its time is the KV
bytes over the KV-read bandwidth. Summed over the three ops this is the fused
kernel's ``max(compute, memory)``.

*Vector ops* (norm, activation, residual add, rotary, embedding gather) are
memory-bound streams::

    vector = max(flops / (vector_efficiency * F),
                 dram_time(reads, writes, bandwidth_efficiency[kind])) + overhead[kind]

with one bandwidth efficiency and one fixed time per kind, because fused and
unfused kernels of the same kind make a different number of DRAM passes, and a
norm or softmax synchronises its thread block for a row reduction that a
residual add does not need.

*L2 write-back*: the L2 is a write-back cache, so a kernel's writes are done
when they land in the L2; a dirty line reaches DRAM only when it is evicted,
which a kernel whose data fits in the L2 never forces (the write-back then
overlaps later kernels, which in a serving stack mostly read those lines from
the L2 anyway). Of a kernel's ``W`` written bytes a fraction ``a`` is absorbed::

    footprint  = reads + writes           # distinct bytes; reads only if in place
    capacity   = l2_usable_fraction * l2_bytes
    a          = min(1, capacity / footprint)
    dram_time(R, W, e) = (R + (1 - a) W) / (e * BW) + a W / (e * L2)

``capacity / footprint`` is the share of the written lines still resident when
the kernel ends if the cache keeps an even share of everything it was handed.
Gathers (the embedding lookup) are the exception, ``a = 0``: a row gather waits
on dependent loads (the token id, then its row) and runs far below DRAM
bandwidth (12% in the A100 fit), so writes the L2 absorbs do not shorten it;
its time scales with the rows it fetches.
Reads are always charged at DRAM speed: the measured A100 profiles run near
DRAM bandwidth at every size (inputs are not L2-resident there), while small
ops that write their output run faster than DRAM bandwidth would allow for
reads plus writes. ``l2_usable_fraction`` is 0.7 by default: a streaming read
benchmark on an A100 80GB keeps its L2 bandwidth (5.4 TB/s) up to a 28 MB data
set of the 40 MB L2 and falls to DRAM speed from about 50 MB (te42kyfo/gpu-benches,
``gpu-l2-cache/a100_80.txt``). Every byte costs at least ``1 / (e * L2)``, so
no kernel beats the L2 bandwidth, and ``dram_time`` grows with the op's size.

*Launch*: kernels are issued by the host; a kernel shorter than the host's
issue interval ``launch_overhead`` waits for the next launch, so every kernel
costs at least ``launch_overhead`` (0 models CUDA graphs). Instances with no
rows cost exactly 0.

A fused attention kernel runs all requests of the batch in one launch; its
kernel and launch overheads (a few microseconds per layer) are not charged,
because an instance's time must not depend on the rest of the batch (the
engine contract that lets :mod:`~llmsim_nb.engines.reuse` cache per instance).

Modules
-------
The engine is assembled from one module per part of this model, each (but the
spec) a mixin of :class:`GPUEngine`; their constants are re-exported here:

* :mod:`~llmsim_nb.engines.gpu.spec`: :class:`GPUSpec` and the field tables;
* :mod:`~llmsim_nb.engines.gpu.memory`: *L2 write-back* (``dram_time``);
* :mod:`~llmsim_nb.engines.gpu.gemm`: *GEMM* compute and operand bytes;
* :mod:`~llmsim_nb.engines.gpu.attention`: *Attention*;
* :mod:`~llmsim_nb.engines.gpu.vector`: *Vector ops*.

This module keeps the formulas (above), the dispatch by op kind and the
*Launch* rule that every non-fused kernel shares.
"""

from __future__ import annotations

import numpy as np

from ...models.ops import Op, OpKind
from ..base import Engine, OpTiming, register_engine
# The constants are re-exported: they were defined here before the split, and
# calibration reads EFFICIENCY_FIELDS from the module of the engine's class.
from .attention import (ATTENTION_QUERY_TILE, SOFTMAX_FLOPS_PER_SCORE,  # noqa: F401
                            GPUAttentionTiming)
from .gemm import GEMM_TILES, SPLIT_K_MIN_DEPTH, GPUGemmTiming
from .spec import (DTYPES, EFFICIENCY_FIELDS, GIB, VECTOR_KINDS,  # noqa: F401
                       VECTOR_OVERHEADS, GPUSpec)
from .vector import ROTARY_OPS, GPUVectorTiming


@register_engine("gpu")
class GPUEngine(GPUGemmTiming, GPUAttentionTiming, GPUVectorTiming, Engine):
    """Closed-form GPU timing (tile/wave-quantised GEMMs, fused attention, streams).

    Parameters
    ----------
    spec : GPUSpec
        The device; stored as ``self.spec``.

    Notes
    -----
    The formulas are in the module docstring of :mod:`llmsim_nb.engines.gpu`.
    Every instance is timed independently and vectorised with numpy.
    """

    pure = True  # closed form, no side effects: the reuse cache may time ranges

    spec_class = GPUSpec

    def __init__(self, spec: GPUSpec | None = None) -> None:
        if spec is None:
            spec = GPUSpec()
        if not isinstance(spec, GPUSpec):
            raise ValueError(f"GPUEngine needs a GPUSpec, got {type(spec).__name__}")
        super().__init__(spec)

    # -------------------------------------------------------------- the verb
    def time_op(self, op: Op) -> OpTiming:
        """Latency of every instance of ``op`` (see the module docstring)."""
        if op.kind is OpKind.GEMM:
            compute, memory = self._time_gemm(op)
            exposed = self.spec.gemm_exposed_fraction * np.minimum(compute, memory)
            return self._finish(op, compute, memory, fused=False, extra=exposed)
        if op.kind.is_attention:
            compute, memory = self.attention_parts(op)
            return self._finish(op, compute, memory, fused=True)
        return self.time_vector_op(op)

    def _finish(self, op: Op, compute, memory, *, fused: bool, extra=0.0,
                overhead: float | None = None) -> OpTiming:
        """The :class:`OpTiming` of ``compute`` and ``memory`` seconds per instance.

        ``extra`` is added to the roofline ``max``; a kernel that is not
        ``fused`` also pays its fixed time (``overhead``, default
        ``kernel_overhead``) and waits at least ``launch_overhead`` (*Launch* in
        the module docstring). Instances with no work cost exactly 0.
        """
        s = self.spec
        m = np.asarray(op.m)
        compute = np.asarray(compute, dtype=np.float64)
        memory = np.asarray(memory, dtype=np.float64)
        has_work = (m > 0) & ((compute > 0) | (memory > 0))
        compute = np.where(has_work, compute, 0.0)
        memory = np.where(has_work, memory, 0.0)
        latency = np.maximum(compute, memory) + extra
        if not fused:
            fixed = s.kernel_overhead if overhead is None else overhead
            latency = np.maximum(latency + fixed, s.launch_overhead)
        latency = np.where(has_work, latency, 0.0)
        return OpTiming(latency, compute, memory)

    # ---------------------------------------------------------- analysis
    def utilisation(self, op: Op) -> float:
        """Fraction of peak tensor FLOP/s a matmul op achieves over its latency."""
        total = self.time_op(op).total
        if total == 0.0:
            return 0.0
        return op.total_flops / (total * self.spec.peak_matmul_flops)


__all__ = ["ATTENTION_QUERY_TILE", "DTYPES", "EFFICIENCY_FIELDS", "GEMM_TILES", "GPUEngine",
           "GPUSpec", "ROTARY_OPS", "SPLIT_K_MIN_DEPTH"]
