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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..models.ops import Op, OpKind
from .base import Engine, OpTiming, register_engine

#: Thread-block tiles ``(tm, tn)`` a GEMM library chooses among: CUTLASS /
#: cuBLAS Ampere-Hopper fp16 kernels use 256x128 down to 64x64, and skinny
#: kernels for few rows (decode) tile ``m`` by the tensor-core MMA height, 16.
GEMM_TILES: tuple[tuple[int, int], ...] = ((256, 128), (128, 256), (128, 128), (128, 64),
                                            (64, 128), (64, 64), (32, 128), (16, 128))

#: Shallowest ``k`` slice a split-K GEMM gives one thread block (below it the
#: reduction costs more than the parallelism gains).
SPLIT_K_MIN_DEPTH = 256

#: Query rows per FlashAttention-2 thread block (``Br`` for head size 128).
ATTENTION_QUERY_TILE = 128

#: FLOPs per score element of the online softmax (max, subtract, exp, sum, scale).
SOFTMAX_FLOPS_PER_SCORE = 5.0

#: Data types a :class:`GPUSpec` understands and their bytes per element.
DTYPES = {"fp16": 2, "bf16": 2, "fp8": 1}

#: Vector-op kinds with their own bandwidth efficiency field.
VECTOR_KINDS = {OpKind.NORM: "norm_bandwidth_efficiency",
                OpKind.ACTIVATION: "activation_bandwidth_efficiency",
                OpKind.ELEMENTWISE: "elementwise_bandwidth_efficiency",
                OpKind.EMBEDDING: "embedding_bandwidth_efficiency",
                OpKind.SOFTMAX: "softmax_bandwidth_efficiency"}

#: Elementwise ops that are rotary embeddings (the block template's name for
#: them): an in-place rotation of element pairs half a head apart, a strided
#: access pattern that streams worse than a residual add. In place, their
#: footprint in the L2 is the bytes they read (they write the same lines).
ROTARY_OPS = ("rope",)

#: Per-kind fixed time of a vector kernel (field names), as VECTOR_KINDS.
VECTOR_OVERHEADS = {OpKind.NORM: "norm_overhead", OpKind.ACTIVATION: "activation_overhead",
                    OpKind.ELEMENTWISE: "elementwise_overhead",
                    OpKind.EMBEDDING: "embedding_overhead", OpKind.SOFTMAX: "softmax_overhead"}

#: The fields :func:`~llmsim_nb.fidelity.calibration.calibrate` may fit.
EFFICIENCY_FIELDS = ("gemm_efficiency", "memory_efficiency", "attention_efficiency",
                     "kv_bandwidth_efficiency", "vector_efficiency",
                     "norm_bandwidth_efficiency", "activation_bandwidth_efficiency",
                     "elementwise_bandwidth_efficiency", "rotary_bandwidth_efficiency",
                     "embedding_bandwidth_efficiency", "softmax_bandwidth_efficiency")

GIB = 2 ** 30


def _check_number(name: str, value, *, positive: bool, at_most: float | None = None) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
        ok = ok and (at_most is None or value <= at_most)
    if not ok:
        allowed = ("> 0" if positive else ">= 0") + ("" if at_most is None else
                                                      f" and <= {at_most}")
        raise ValueError(f"GPUSpec.{name}={value!r} must be a finite number {allowed}")


@dataclass(frozen=True, slots=True)
class GPUSpec:
    """One GPU (SI units), from its datasheet plus fitted efficiencies.

    Parameters
    ----------
    num_sms : int
        Streaming multiprocessors (A100: 108).
    tensor_flops : float
        Peak dense fp16/bf16 tensor-core FLOP/s with fp32 accumulation (A100:
        312e12). GeForce cards run fp32 accumulation at half their fp16-accumulate
        rate; PyTorch accumulates in fp32, so that is the figure to use.
    fp8_tensor_flops : float
        Peak dense fp8 tensor FLOP/s; 0 when the GPU has no fp8 tensor cores.
    vector_flops : float
        Peak fp32 CUDA-core FLOP/s (softmax, norms).
    memory_bytes : int
        Device memory.
    memory_bandwidth : float
        Peak DRAM bandwidth, B/s.
    l2_bytes : int
        L2 cache capacity: it absorbs the writes of kernels whose data fits
        (see *L2 write-back* in the module docstring).
    l2_bandwidth : float
        L2-to-SM bandwidth, B/s: what feeds GEMM tiles their operands and what
        writes absorbed by the L2 cost. At least ``memory_bandwidth``.
    l2_usable_fraction : float
        Fraction in ``(0, 1]`` of ``l2_bytes`` a kernel's data can fill before
        its lines are evicted (0.7: an A100 80GB keeps L2 bandwidth up to a
        28 MB of its 40 MB L2 in te42kyfo/gpu-benches ``gpu-l2-cache``).
    dtype : {"fp16", "bf16", "fp8"}
        Weight, activation-into-GEMM and KV-cache dtype. ``fp8`` needs
        ``fp8_tensor_flops > 0``; norms and activations stay 16-bit.
    gemm_efficiency : float
        Fraction of peak tensor FLOP/s a large, well-shaped GEMM reaches.
    memory_efficiency : float
        Fraction of DRAM bandwidth a weight-streaming (small ``m``) GEMM reaches.
    attention_efficiency : float
        Fraction of peak tensor FLOP/s FlashAttention reaches on computed tiles.
    kv_bandwidth_efficiency : float
        Fraction of DRAM bandwidth the attention kernel reaches reading K and V.
    vector_efficiency : float
        Fraction of CUDA-core FLOP/s vector kernels reach.
    norm_bandwidth_efficiency, activation_bandwidth_efficiency,
    elementwise_bandwidth_efficiency, rotary_bandwidth_efficiency,
    embedding_bandwidth_efficiency, softmax_bandwidth_efficiency : float
        Fraction of DRAM bandwidth each kind of vector kernel reaches over the
        op's minimum bytes (an unfused kernel making two passes reaches half;
        ``rotary`` is the elementwise rotary embedding, see :data:`ROTARY_OPS`).
    gemm_exposed_fraction : float
        Fraction in ``[0, 1]`` of the shorter of a GEMM's compute and DRAM
        phases that is not overlapped with the longer one.
    kernel_overhead : float
        Seconds a GEMM kernel spends beyond its roofline time (launch latency on
        the GPU, the first DRAM round trip, the tail of the last wave).
    norm_overhead, activation_overhead, elementwise_overhead, embedding_overhead,
    softmax_overhead : float
        The same for each kind of vector kernel (rotary embeddings are
        elementwise).
    launch_overhead : float
        Host seconds to issue one kernel; a shorter kernel waits for the next
        launch (0 models CUDA graphs, where the GPU replays launches itself).
    """

    num_sms: int = 108
    tensor_flops: float = 312e12
    fp8_tensor_flops: float = 0.0
    vector_flops: float = 19.5e12
    memory_bytes: int = 80 * GIB
    memory_bandwidth: float = 2039e9
    l2_bytes: int = 40 * 2 ** 20
    l2_bandwidth: float = 7.0e12
    l2_usable_fraction: float = 0.7
    dtype: str = "fp16"
    gemm_efficiency: float = 0.8
    memory_efficiency: float = 0.8
    attention_efficiency: float = 0.6
    kv_bandwidth_efficiency: float = 0.8
    vector_efficiency: float = 0.5
    norm_bandwidth_efficiency: float = 0.8
    activation_bandwidth_efficiency: float = 0.8
    elementwise_bandwidth_efficiency: float = 0.8
    rotary_bandwidth_efficiency: float = 0.5
    embedding_bandwidth_efficiency: float = 0.5
    softmax_bandwidth_efficiency: float = 0.8
    gemm_exposed_fraction: float = 0.0
    kernel_overhead: float = 2e-6
    norm_overhead: float = 2e-6
    activation_overhead: float = 2e-6
    elementwise_overhead: float = 2e-6
    embedding_overhead: float = 2e-6
    softmax_overhead: float = 2e-6
    launch_overhead: float = 0.0

    def __post_init__(self) -> None:
        if (isinstance(self.num_sms, bool) or not isinstance(self.num_sms, (int, np.integer))
                or self.num_sms < 1):
            raise ValueError(f"GPUSpec.num_sms={self.num_sms!r} must be an integer >= 1")
        for name in ("tensor_flops", "vector_flops", "memory_bandwidth", "l2_bandwidth"):
            _check_number(name, getattr(self, name), positive=True)
        _check_number("fp8_tensor_flops", self.fp8_tensor_flops, positive=False)
        if self.l2_bandwidth < self.memory_bandwidth:
            # The L2 sits in front of DRAM: it cannot be the slower of the two.
            raise ValueError(f"GPUSpec.l2_bandwidth={self.l2_bandwidth!r} must be >= "
                             f"memory_bandwidth={self.memory_bandwidth!r} (B/s)")
        _check_number("l2_usable_fraction", self.l2_usable_fraction, positive=True,
                      at_most=1.0)
        for name in ("memory_bytes", "l2_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"GPUSpec.{name}={value!r} must be an integer number of "
                                 "bytes >= 1")
        if self.dtype not in DTYPES:
            raise ValueError(f"GPUSpec.dtype={self.dtype!r} must be one of {sorted(DTYPES)}")
        if self.dtype == "fp8" and self.fp8_tensor_flops <= 0:
            raise ValueError("GPUSpec.dtype='fp8' needs fp8 tensor cores "
                             "(fp8_tensor_flops > 0); this GPU has none, use fp16 or bf16")
        for name in EFFICIENCY_FIELDS:
            # An efficiency is a fraction of a peak: above 1 is not physical.
            _check_number(name, getattr(self, name), positive=True, at_most=1.0)
        _check_number("gemm_exposed_fraction", self.gemm_exposed_fraction, positive=False,
                      at_most=1.0)
        _check_number("kernel_overhead", self.kernel_overhead, positive=False)
        for name in VECTOR_OVERHEADS.values():
            _check_number(name, getattr(self, name), positive=False)
        _check_number("launch_overhead", self.launch_overhead, positive=False)

    @property
    def dtype_bytes(self) -> int:
        """Bytes per weight / KV element."""
        return DTYPES[self.dtype]

    @property
    def peak_matmul_flops(self) -> float:
        """Peak dense tensor FLOP/s at ``dtype``."""
        return self.fp8_tensor_flops if self.dtype == "fp8" else self.tensor_flops

    @property
    def peak_vector_flops(self) -> float:
        return self.vector_flops

    def efficiencies(self) -> dict[str, float]:
        """The fitted fractions, by field name."""
        return {name: float(getattr(self, name)) for name in EFFICIENCY_FIELDS}


def _ceil_div(a, b):
    return -(-a // b)


@register_engine("gpu")
class GPUEngine(Engine):
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

    # ---------------------------------------------------------------- memory
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
        module docstring.
        """
        s = self.spec
        read = np.asarray(read, dtype=np.float64)
        written = np.asarray(written, dtype=np.float64)
        if footprint is None:
            footprint = read + written
        absorbed = self.l2_write_fraction(footprint) * written
        return ((read + written - absorbed) / (efficiency * s.memory_bandwidth)
                + absorbed / (efficiency * s.l2_bandwidth))

    # ------------------------------------------------------------------ GEMM
    def gemm_compute(self, m, n, k, batch: int = 1) -> np.ndarray:
        """Tensor-core seconds of ``batch`` products ``[m, k] @ [k, n]`` (no DRAM).

        The fastest tile of :data:`GEMM_TILES`, with tile and wave quantisation
        and split-K; see the module docstring. 0 where a dimension is 0.
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
            tiles = batch * _ceil_div(m, tm) * _ceil_div(n, tn)
            # Split-K only when the tiles leave SMs idle and k is deep enough.
            split = np.clip(np.minimum(s.num_sms // np.maximum(tiles, 1),
                                       k // SPLIT_K_MIN_DEPTH), 1, None)
            waves = _ceil_div(tiles * split, s.num_sms)
            depth = _ceil_div(k, split)
            seconds = waves * (2.0 * tm * tn * depth) / rate
            # Split-K partial sums: fp32 written by every slice, read by a reduction.
            reduce = np.where(split > 1, 2.0 * split * batch * m * n * 4.0
                              / (s.memory_efficiency * s.memory_bandwidth), 0.0)
            best = np.minimum(best, seconds + reduce)
        has_work = (m > 0) & (n > 0) & (k > 0) & (batch > 0)
        return np.where(has_work, best, 0.0)

    def gemm_bytes(self, op: Op) -> np.ndarray:
        """DRAM bytes of each GEMM instance: activations and weights read once at the
        spec's dtype, the 16-bit output written once, plus the op's bias/params."""
        m = np.asarray(op.m, dtype=np.float64)
        n = np.asarray(op.n, dtype=np.float64)
        k = np.asarray(op.k, dtype=np.float64)
        dt = float(self.spec.dtype_bytes)
        op_dt = self._op_dtype(op)
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
        s = self.spec
        compute = self.gemm_compute(op.m, op.n, op.k, op.batch)
        total = self.gemm_bytes(op)
        written = op.batch * np.asarray(op.m, dtype=np.float64) * np.asarray(
            op.n, dtype=np.float64) * 2.0
        memory = self.dram_time(total - written, written, s.memory_efficiency)
        return compute, memory

    # ------------------------------------------------------------- attention
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
        q_pad = np.where(prompt, _ceil_div(q, ATTENTION_QUERY_TILE) * ATTENTION_QUERY_TILE, q)
        # Causal: query i sees the context and the first i + 1 prompt tokens. A padded
        # query tile computes every row it holds, so the padding pays full context.
        scores = h * (q_pad * context + q * (q + 1) / 2.0 + (q_pad - q) * q)
        compute = 2.0 * hd * scores / (s.attention_efficiency * s.peak_matmul_flops)
        memory = self.dram_time(moved - written, written, s.kv_bandwidth_efficiency)
        return compute, memory

    def _attention_dtype(self, op: Op, q, kv, hd) -> float:
        written = np.asarray(op.bytes_written, dtype=np.float64)
        if op.kind is OpKind.ATTN_SCORE:
            elems = op.batch * q * kv
        else:
            elems = op.batch * q * hd
        ok = elems > 0
        return float(written[ok][0] / elems[ok][0]) if np.any(ok) else 2.0

    # ---------------------------------------------------------------- vector
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
            # A latency-bound gather: absorbed writes do not shorten it (module docstring).
            return compute, (read + written) / (efficiency * s.memory_bandwidth)
        return compute, self.dram_time(read, written, efficiency, footprint)

    def time_vector_op(self, op: Op) -> OpTiming:
        """Time ``op`` as a stand-alone vector kernel (the attention softmax is not:
        it lives inside the fused attention kernel)."""
        compute, memory = self.vector_parts(op)
        kind = op.kind if op.kind in VECTOR_OVERHEADS else OpKind.ELEMENTWISE
        return self._finish(op, compute, memory, fused=False,
                            overhead=getattr(self.spec, VECTOR_OVERHEADS[kind]))

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
