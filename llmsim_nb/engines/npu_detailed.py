"""Detailed NPU mode: walk every GEMM's tile schedule on the systolic array.

The closed form in :mod:`.npu` assumes DRAM traffic and compute overlap
perfectly (``latency = max(compute, memory)``). This engine instead plays the
weight-stationary schedule tile by tile with one DRAM channel and
double-buffered operand slots, so the overlap that really happens comes out:

- Loop order (as the closed form): ``for head: for m-chunk (Mt rows): for
  n-tile (C columns): for k-tile (R rows)``. A tile's operands are the weight
  tile (``k_t x n_t``, skipped after the first m-chunk when the whole weight
  matrix fits the weight buffer) and the input block (``m_c x k_t``, loaded on
  the first n-tile only when the m-chunk's inputs fit the input buffer).
- DRAM: one channel. A read issued at ``r`` starts on the bus at
  ``max(r + latency, bus_free)`` and holds it for ``ceil(bytes / burst) *
  burst / bandwidth`` (whole bursts of ``burst_bytes``). Prefetched reads
  therefore hide the latency; a stalled one pays it. Writes (results) go to a
  write buffer that drains into the bus's idle gaps, so they never delay a
  read; whatever is left is written after the last read.
- Double buffering: two operand slots, so tile ``i``'s loads are issued when
  tile ``i - 2`` has finished computing (the slot is free).
- Compute: a tile occupies the array for ``max(m_c, Lw)`` cycles once its
  operands are in; the ``Lw``-cycle weight swap is exposed for the first tile
  and after a stall. After the last k-tile of an n-tile the ``m_c x n_t``
  outputs drain (``R + C - 2`` cycles) and are written back over the channel.
- Vector operators stream their inputs in chunks of half the input buffer,
  double-buffered the same way; each chunk takes ``ceil(elements / lanes)``
  passes of ``ceil(flops_per_element / flops_per_lane_per_cycle)`` cycles.

It agrees with the closed form where the closed form is exact (a single tile
with free memory; a bandwidth-bound GEMV, within the exposed drain) and is
slower where the closed form's perfect overlap is optimistic (the first load,
stalls, write-back). It is much slower to run, which is what reuse pays for.
"""

from __future__ import annotations

import math

import numpy as np

from ..models.ops import Op
from .base import OpTiming, register_engine
from .npu import NPUEngine, NPUSpec

BURST_BYTES = 64  # one DRAM burst (32-bit channel x BL16, as GDDR6X / HBM2 pseudo-channels)


class _Channel:
    """One DRAM channel: reads queue on the bus; writes fill its idle gaps."""

    __slots__ = ("bandwidth", "latency", "free_at", "busy", "backlog")

    def __init__(self, bandwidth: float, latency: float) -> None:
        self.bandwidth = bandwidth
        self.latency = latency
        self.free_at = 0.0
        self.busy = 0.0
        self.backlog = 0.0  # seconds of buffered writes not yet on the bus

    def _duration(self, num_bytes: float) -> float:
        return math.ceil(num_bytes / BURST_BYTES) * BURST_BYTES / self.bandwidth

    def read(self, issued_at: float, num_bytes: float) -> float:
        """When a read issued at ``issued_at`` has all its bytes on chip."""
        if num_bytes <= 0:
            return issued_at
        start = issued_at + self.latency
        if start > self.free_at:  # an idle gap: buffered writes use it
            self.backlog -= min(self.backlog, start - self.free_at)
        else:
            start = self.free_at
        duration = self._duration(num_bytes)
        self.free_at = start + duration
        self.busy += duration
        return self.free_at

    def write(self, num_bytes: float) -> None:
        if num_bytes > 0:
            duration = self._duration(num_bytes)
            self.backlog += duration
            self.busy += duration

    def drained_at(self, now: float) -> float:
        """When every read and buffered write is done, if nothing else comes after ``now``."""
        return max(now, self.free_at) + self.backlog


@register_engine("npu-detailed")
class DetailedNPUEngine(NPUEngine):
    """Tile-level NPU engine (weight-stationary), same :class:`NPUSpec` as ``npu``."""

    expensive = True

    def __init__(self, spec: NPUSpec | None = None) -> None:
        super().__init__(spec)
        if self.spec.dataflow != "weight_stationary":
            raise ValueError(f"npu_mode='detailed' walks the weight-stationary schedule; "
                             f"NPUSpec.dataflow={self.spec.dataflow!r} is not supported")

    def time_op(self, op: Op) -> OpTiming:
        count = op.num_instances
        latency, compute, memory = np.zeros(count), np.zeros(count), np.zeros(count)
        for i in range(count):
            m, n, k = int(op.m[i]), int(op.n[i]), int(op.k[i])
            if m <= 0 or (op.flops[i] <= 0 and op.bytes_read[i] + op.bytes_written[i] <= 0):
                continue
            if op.kind.is_matmul:
                if n <= 0 or k <= 0 or op.batch <= 0:
                    continue
                lat, comp, mem = self._matmul(m, n, k, op.batch)
            else:
                lat, comp, mem = self._vector(m * n, float(op.flops[i]),
                                              float(op.bytes_read[i]),
                                              float(op.bytes_written[i]))
            latency[i] = lat + self.spec.op_overhead
            compute[i], memory[i] = comp, mem
        return OpTiming(latency, compute, memory)

    def _matmul(self, M: int, N: int, K: int, heads: int) -> tuple[float, float, float]:
        s = self.spec
        R, C, lw, f, dt = s.array_rows, s.array_cols, s.weight_load_cycles, s.frequency, \
            s.dtype_bytes
        chunk_rows = s.output_chunk_rows
        channel = _Channel(s.memory_bandwidth, s.memory_latency)
        weights_resident = K * N * dt <= s.weight_buffer_bytes
        compute_free, busy = 0.0, 0.0
        slot_free = [0.0, 0.0]  # when each operand slot was last released
        tile = 0
        for _ in range(heads):
            for m0 in range(0, M, chunk_rows):
                mc = min(chunk_rows, M - m0)
                inputs_resident = mc * K * dt <= s.input_buffer_bytes
                for ni, n0 in enumerate(range(0, N, C)):
                    nt = min(C, N - n0)
                    for k0 in range(0, K, R):
                        kt = min(R, K - k0)
                        loads = 0.0
                        if not (weights_resident and m0 > 0):
                            loads += kt * nt * dt
                        if ni == 0 or not inputs_resident:
                            loads += mc * kt * dt
                        ready = channel.read(slot_free[tile % 2], loads)
                        start = max(compute_free, ready)
                        cycles = max(mc, lw) + (lw if tile == 0 or start > compute_free else 0)
                        compute_free = start + cycles / f
                        busy += cycles / f
                        slot_free[tile % 2] = compute_free
                        tile += 1
                    channel.write(mc * nt * dt)  # drains behind the next tiles
        finish = compute_free + (R + C - 2) / f
        end = max(finish, channel.drained_at(finish) if channel.backlog else channel.free_at)
        return end, busy, channel.busy + s.memory_latency

    def _vector(self, elements: int, flops: float, read: float, written: float
                ) -> tuple[float, float, float]:
        s = self.spec
        channel = _Channel(s.memory_bandwidth, s.memory_latency)
        chunk = max(s.input_buffer_bytes // 2, 1)
        num_chunks = max(1, math.ceil(read / chunk))
        per_element = flops / elements if elements else 0.0
        cycles_per_pass = math.ceil(per_element / s.vector_flops_per_lane_per_cycle) \
            if per_element > 0 else 0
        elems_per_chunk = elements / num_chunks
        compute_free, busy = 0.0, 0.0
        slot_free = [0.0, 0.0]
        for c in range(num_chunks):
            ready = channel.read(slot_free[c % 2], read / num_chunks)
            start = max(compute_free, ready)
            passes = math.ceil(elems_per_chunk / s.vector_lanes)
            compute_free = start + passes * cycles_per_pass / s.frequency
            busy += passes * cycles_per_pass / s.frequency
            slot_free[c % 2] = compute_free
            channel.write(written / num_chunks)
        end = max(compute_free, channel.drained_at(compute_free) if channel.backlog
                  else channel.free_at)
        return end, busy, channel.busy + s.memory_latency


__all__ = ["BURST_BYTES", "DetailedNPUEngine"]
