"""Analytical NPU engine: a systolic array, a vector unit and one DRAM channel.

This is the closed-form stand-in for the GeneSys NPU simulator the paper plugs
into its execution engine (a 128x128 systolic array at 1 GHz, configured to
perform like an RTX 3090). Every latency is built from four quantities that
are each explainable on their own: systolic-array cycles, vector-unit cycles,
DRAM bytes and DRAM bandwidth/latency.

Model summary
-------------
Let ``R x C`` be the array (``array_rows x array_cols``), ``f`` its clock,
``Lw`` the cycles to swap one ``R x C`` weight tile into the PEs
(``weight_load_cycles``) and ``B`` the independent products of an instance
(``Op.batch``, the attention heads). For an ``M x K @ K x N`` product:

*Weight-stationary* (GeneSys): the ``K x N`` operand is cut into
``ceil(K/R) * ceil(N/C)`` tiles. A tile sits in the PEs while the ``M`` input
rows stream through it, one row per cycle. The PEs double-buffer their weight
register, so the next tile's ``Lw``-cycle load hides behind the current tile's
``M``-cycle stream; a tile therefore occupies the array for ``max(M, Lw)``
cycles. Only the first load and the pipeline skew of the last tile (data
enters at the top-left PE and leaves at the bottom-right one, ``R + C - 2``
cycles later) are exposed::

    T      = B * ceil(K / R) * ceil(N / C)
    cycles = Lw + T * max(M, Lw) + (R + C - 2)

*Output-stationary*: each PE owns one output element. The ``M x N`` output is
cut into ``ceil(M/R) * ceil(N/C)`` tiles; one tile accumulates over ``K``
cycles, then its results shift out of the array one row per cycle (``R``
cycles), which the double-buffered output registers overlap with the next
tile's accumulation::

    T      = B * ceil(M / R) * ceil(N / C)
    cycles = T * max(K, R) + (R + C - 2) + R

Edge tiles occupy the whole array even when partly empty (``N = 129`` costs two
column tiles), so utilisation ``flops / (2 R C cycles)`` below 1 comes out of
the model, as does the poor utilisation of ``M < Lw`` (weight-stationary) or
``K < R`` (output-stationary).

*DRAM traffic* = the op's minimum bytes (each operand read once, result
written once; see :mod:`llmsim_nb.models.template`) plus the re-reads the loop
order forces when an operand block does not fit its on-chip buffer.
Weight-stationary loops ``for m-chunk: for n-tile: for k-tile``; an m-chunk is
``Mt = floor(obuf / (C * acc_bytes))`` rows, the most whose ``C``-wide partial
sums the output buffer holds, so partial sums never spill. Per product::

    A = M K dt, W = K N dt, pm = ceil(M / Mt), tn = ceil(N / C)
    extra = (pm - 1) W       if W > wbuf        (weights re-read per m-chunk)
          + (tn - 1) A       if min(M, Mt) K dt > ibuf
                                                 (input re-streamed per n-tile)

Output-stationary loops ``for m-tile: for n-tile`` (``tm = ceil(M/R)``)::

    extra = (tm - 1) W       if W > wbuf
          + (tn - 1) A       if min(M, R) K dt > ibuf

An instance's extra bytes are ``B`` times the per-product figure.

*Vector ops* (norm, softmax, activation, elementwise, embedding) run on a SIMD
unit of ``vector_lanes`` lanes doing ``vector_flops_per_lane_per_cycle``
operations each per cycle::

    compute = flops / (lanes * flops_per_lane_per_cycle * f)

*Latency* of every instance with work::

    memory  = dram_bytes / memory_bandwidth + memory_latency
    latency = max(compute, memory) + op_overhead

DRAM transfers are double-buffered against compute, so the slower of the two
sets the pace; which one is larger says whether the op is compute- or
memory-bound. Instances with zero rows (``m == 0``) or no work cost exactly 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..models.ops import Op
from .base import Engine, OpTiming, register_engine

#: Entries of each GeneSys on-chip buffer in the seed's NPU config
#: (``IBUF_DEPTH = WBUF_DEPTH = OBUF_DEPTH = 8192`` in ``benchmark_128x128.json``).
GENESYS_BUFFER_DEPTH = 8192

#: Dataflows :class:`NPUSpec` understands.
DATAFLOWS = ("weight_stationary", "output_stationary")

GIB = 2 ** 30


def _check_int(name: str, value, low: int, high: int | None = None) -> None:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if ok:
        ok = value >= low and (high is None or value <= high)
    if not ok:
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"NPUSpec.{name}={value!r} must be an integer {allowed}")


def _check_float(name: str, value, positive: bool) -> None:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if ok:
        ok = math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        allowed = "> 0" if positive else ">= 0"
        raise ValueError(f"NPUSpec.{name}={value!r} must be a finite number {allowed}")


@dataclass(frozen=True, slots=True)
class NPUSpec:
    """Hardware parameters of one NPU device (SI units).

    Parameters
    ----------
    array_rows, array_cols : int
        Systolic array height ``R`` and width ``C`` in processing elements.
        Weight-stationary maps the reduction dimension ``K`` onto the rows and
        the output columns ``N`` onto the columns.
    frequency : float
        Clock of the array and vector unit in Hz.
    dataflow : {"weight_stationary", "output_stationary"}
        Which operand stays in the PEs (see the module docstring).
    weight_load_cycles : int
        Cycles to swap one ``R x C`` weight tile into the PEs (weight-stationary).
        GeneSys banks its weight buffer per PE (``ARRAY_M * ARRAY_N`` banks in
        its architecture description), so each PE reads its next weight from
        its own bank in 1 cycle: the default. A design that shifts weights in
        from the array edge one row per cycle would set ``array_rows``.
    input_buffer_bytes, weight_buffer_bytes, output_buffer_bytes : int or None
        On-chip buffer capacities. ``None`` derives GeneSys's sizing: 8192
        entries (the seed config's ``*BUF_DEPTH``) of one array-wide word each,
        i.e. an input entry is one row of ``R`` input elements, a weight entry
        is one row of ``C`` weights and an output entry is ``C`` accumulators
        of ``accumulator_bytes``. For 128x128 at fp16 that is 2 MiB input,
        2 MiB weight (64 full tiles) and 4 MiB output buffer. (Read literally,
        GeneSys's per-PE weight banking would give every PE 8192 entries, i.e.
        8192 whole tiles = 256 MiB of SRAM; we keep one array row per entry,
        which is a credible die budget next to the RTX 3090's 6 MiB L2.)
    accumulator_bytes : int
        Bytes of one partial sum in the output buffer (fp32 accumulation of
        fp16 products, as GeneSys accumulates its narrow inputs in 32 bits).
    vector_lanes : int or None
        SIMD width of the vector unit; ``None`` means ``array_cols`` (GeneSys's
        SIMD array has one lane per array column, fed by the output buffer).
    vector_flops_per_lane_per_cycle : float
        Operations one lane retires per cycle (1: one ALU op per lane per cycle;
        the op counts in :mod:`llmsim_nb.models.template` count multiply and
        add separately, so no FMA factor of 2 applies).
    memory_bytes : int
        Device DRAM capacity in bytes (24 GiB, the RTX 3090's memory).
    memory_bandwidth : float
        DRAM bandwidth in bytes/s (936e9, the RTX 3090's GDDR6X).
    memory_latency : float
        Seconds of DRAM access latency paid once per op instance (the first
        burst of a streamed transfer; 100 ns is a typical GDDR round trip).
    dtype_bytes : int
        Bytes per operand element (2 for fp16); sizes the on-chip buffers.
    op_overhead : float
        Seconds of fixed dispatch per op instance (instruction issue and
        synchronisation of the compiled program). 0 by default: GeneSys runs
        a compiled instruction stream without a host launch per op.
    """

    array_rows: int = 128
    array_cols: int = 128
    frequency: float = 1e9
    dataflow: str = "weight_stationary"
    weight_load_cycles: int = 1
    input_buffer_bytes: int | None = None
    weight_buffer_bytes: int | None = None
    output_buffer_bytes: int | None = None
    accumulator_bytes: int = 4
    vector_lanes: int | None = None
    vector_flops_per_lane_per_cycle: float = 1.0
    memory_bytes: int = 24 * GIB
    memory_bandwidth: float = 936e9
    memory_latency: float = 100e-9
    dtype_bytes: int = 2
    op_overhead: float = 0.0

    def __post_init__(self) -> None:
        _check_int("array_rows", self.array_rows, 1)
        _check_int("array_cols", self.array_cols, 1)
        _check_float("frequency", self.frequency, positive=True)
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"NPUSpec.dataflow={self.dataflow!r} must be one of {DATAFLOWS}")
        _check_int("weight_load_cycles", self.weight_load_cycles, 1)
        _check_int("dtype_bytes", self.dtype_bytes, 1, 8)
        _check_int("accumulator_bytes", self.accumulator_bytes, 1, 8)
        # Derived defaults (GeneSys sizing) are stored, not recomputed per call.
        derived = {
            "input_buffer_bytes": GENESYS_BUFFER_DEPTH * self.array_rows * self.dtype_bytes,
            "weight_buffer_bytes": GENESYS_BUFFER_DEPTH * self.array_cols * self.dtype_bytes,
            "output_buffer_bytes": (GENESYS_BUFFER_DEPTH * self.array_cols
                                    * self.accumulator_bytes),
            "vector_lanes": self.array_cols,
        }
        for name, value in derived.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        _check_int("input_buffer_bytes", self.input_buffer_bytes, 1)
        _check_int("weight_buffer_bytes", self.weight_buffer_bytes, 1)
        # The output buffer must hold at least one row of C accumulators.
        _check_int("output_buffer_bytes", self.output_buffer_bytes,
                   self.array_cols * self.accumulator_bytes)
        _check_int("vector_lanes", self.vector_lanes, 1)
        _check_float("vector_flops_per_lane_per_cycle", self.vector_flops_per_lane_per_cycle,
                     positive=True)
        _check_int("memory_bytes", self.memory_bytes, 1)
        _check_float("memory_bandwidth", self.memory_bandwidth, positive=True)
        _check_float("memory_latency", self.memory_latency, positive=False)
        _check_float("op_overhead", self.op_overhead, positive=False)

    @property
    def peak_matmul_flops(self) -> float:
        """FLOP/s of the array: ``2 R C f`` (every PE does one multiply-add per cycle)."""
        return 2.0 * self.array_rows * self.array_cols * self.frequency

    @property
    def peak_vector_flops(self) -> float:
        """FLOP/s of the vector unit: ``lanes * flops_per_lane_per_cycle * f``."""
        return self.vector_lanes * self.vector_flops_per_lane_per_cycle * self.frequency

    @property
    def output_chunk_rows(self) -> int:
        """``Mt``: rows whose ``C`` partial sums fit the output buffer at once."""
        return self.output_buffer_bytes // (self.array_cols * self.accumulator_bytes)


def _ceil_div(a: np.ndarray, b: int) -> np.ndarray:
    return -(-a // b)


@register_engine("npu")
class NPUEngine(Engine):
    """Closed-form NPU timing (systolic array + vector unit + DRAM roofline).

    Parameters
    ----------
    spec : NPUSpec
        The device; stored as ``self.spec``.

    Notes
    -----
    All per-instance arithmetic is vectorised with numpy; an op with 256
    attention instances is timed in a few tens of microseconds of host time.
    The formulas are in the module docstring of :mod:`llmsim_nb.engines.npu`.
    """

    pure = True  # closed form, no side effects: the reuse cache may time ranges

    spec_class = NPUSpec

    def __init__(self, spec: NPUSpec | None = None) -> None:
        if spec is None:
            spec = NPUSpec()
        if not isinstance(spec, NPUSpec):
            raise ValueError(f"NPUEngine needs an NPUSpec, got {type(spec).__name__}")
        super().__init__(spec)

    # -- the pieces of the model -------------------------------------------------

    def matmul_cycles(self, op: Op) -> np.ndarray:
        """Systolic-array cycles of each instance of a matmul op (0 without work).

        Weight-stationary: ``Lw + T max(M, Lw) + R + C - 2`` with
        ``T = B ceil(K/R) ceil(N/C)``; output-stationary:
        ``T max(K, R) + R + C - 2 + R`` with ``T = B ceil(M/R) ceil(N/C)``.
        """
        s = self.spec
        R, C = s.array_rows, s.array_cols
        m = np.asarray(op.m, dtype=np.int64)
        n = np.asarray(op.n, dtype=np.int64)
        k = np.asarray(op.k, dtype=np.int64)
        skew = R + C - 2
        if s.dataflow == "weight_stationary":
            lw = s.weight_load_cycles
            tiles = op.batch * _ceil_div(k, R) * _ceil_div(n, C)
            cycles = lw + tiles * np.maximum(m, lw) + skew
        else:
            tiles = op.batch * _ceil_div(m, R) * _ceil_div(n, C)
            cycles = tiles * np.maximum(k, R) + skew + R
        has_work = (m > 0) & (n > 0) & (k > 0) & (op.batch > 0)
        return np.where(has_work, cycles, 0).astype(np.float64)

    def reread_bytes(self, op: Op) -> np.ndarray:
        """DRAM bytes re-read per instance because an operand exceeds its buffer.

        See the module docstring for the loop orders; 0 for vector ops.
        """
        if not op.kind.is_matmul:
            return np.zeros(op.num_instances, dtype=np.float64)
        s = self.spec
        R, C, dt = s.array_rows, s.array_cols, float(s.dtype_bytes)
        m = np.asarray(op.m, dtype=np.int64)
        n = np.asarray(op.n, dtype=np.int64)
        k = np.asarray(op.k, dtype=np.int64)
        a_bytes = m * k * dt
        w_bytes = k * n * dt
        tn = _ceil_div(n, C)
        if s.dataflow == "weight_stationary":
            chunk = s.output_chunk_rows
            passes = _ceil_div(m, chunk)          # m-chunks, each re-reads the weights
            block_rows = np.minimum(m, chunk)     # input rows resident per chunk
        else:
            passes = _ceil_div(m, R)              # m-tiles, each re-reads the weights
            block_rows = np.minimum(m, R)
        extra_w = np.where(w_bytes > s.weight_buffer_bytes, (passes - 1) * w_bytes, 0.0)
        extra_a = np.where(block_rows * k * dt > s.input_buffer_bytes, (tn - 1) * a_bytes, 0.0)
        return op.batch * np.maximum(extra_w + extra_a, 0.0)

    def dram_bytes(self, op: Op) -> np.ndarray:
        """Bytes each instance moves to or from DRAM: minimum traffic plus re-reads."""
        return (np.asarray(op.bytes_read, dtype=np.float64)
                + np.asarray(op.bytes_written, dtype=np.float64) + self.reread_bytes(op))

    # -- the Engine verb ---------------------------------------------------------

    def time_op(self, op: Op) -> OpTiming:
        """Latency of every instance of ``op`` (see the module docstring)."""
        s = self.spec
        m = np.asarray(op.m)
        if op.kind.is_matmul:
            compute = self.matmul_cycles(op) / s.frequency
        else:
            compute = np.asarray(op.flops, dtype=np.float64) / s.peak_vector_flops
        traffic = self.dram_bytes(op)
        has_work = (m > 0) & ((compute > 0) | (traffic > 0))
        memory = np.where(has_work, traffic / s.memory_bandwidth + s.memory_latency, 0.0)
        compute = np.where(has_work, compute, 0.0)
        latency = np.where(has_work, np.maximum(compute, memory) + s.op_overhead, 0.0)
        return OpTiming(latency, compute, memory)

    # -- analysis helpers ----------------------------------------------------------

    def utilisation(self, op: Op) -> float:
        """Fraction of peak array FLOP/s a matmul op achieves over its latency."""
        total = self.time_op(op).total
        if total == 0.0:
            return 0.0
        peak = self.spec.peak_matmul_flops if op.kind.is_matmul else self.spec.peak_vector_flops
        return op.total_flops / (total * peak)

    def roofline(self, op: Op) -> tuple[float, float]:
        """Roofline point of ``op`` on this device.

        Returns
        -------
        intensity : float
            FLOPs per byte of the DRAM traffic this engine charges (minimum
            bytes plus tiling re-reads); ``inf`` for an op that moves no bytes.
        attainable : float
            ``min(peak, intensity * memory_bandwidth)`` in FLOP/s, where peak is
            the array's for matmuls and the vector unit's otherwise.
        """
        traffic = float(self.dram_bytes(op).sum())
        intensity = op.total_flops / traffic if traffic else float("inf")
        peak = self.spec.peak_matmul_flops if op.kind.is_matmul else self.spec.peak_vector_flops
        return intensity, min(peak, intensity * self.spec.memory_bandwidth)


__all__ = ["DATAFLOWS", "GENESYS_BUFFER_DEPTH", "NPUEngine", "NPUSpec"]
