"""DRAM-timed processing-in-memory engine: HBM-PIM as in Newton and NeuPIMs.

A PIM device is ``channels`` independent HBM channels. Each channel has
``banks`` banks; each bank has a row buffer of ``row_bytes`` and ``macs``
multipliers next to it. The channel's controller drives all its banks in
lockstep (all-bank PIM mode) with five commands, timed in memory-clock cycles
(``tCK = 1 / frequency``) from the datasheet parameters of :class:`PIMSpec`:

=========  =====================================================  =========================
command    what it does                                           cycles
=========  =====================================================  =========================
GWRITE     write an input-vector chunk (at most one row of        ``t_cwl + ceil(bytes /
           elements) into the channel's global buffer             io_bytes) + t_wr``
ACT        open one row in every bank                              ``t_rcd`` to first COMP
COMP       every bank reads one column (``macs`` elements) from   one per ``t_ccd``
           its row buffer and multiply-accumulates it with the
           global buffer
READRES    read one result per bank out of the channel             ``t_cl + ceil(banks * dt
                                                                   / io_bytes)``
PRE        close the rows                                          ``t_rp``
=========  =====================================================  =========================

A *tile* is one ACT, ``c`` COMPs, ``r`` READRES and a PRE; the row must stay
open at least ``t_ras``::

    tile(c, r) = max(t_ras, t_rcd + c * t_ccd) + r * t_readres + t_rp

Refresh cannot be avoided: every ``t_refi`` a channel is unavailable for
``t_rfc``, so every time is stretched by ``t_refi / (t_refi - t_rfc)``.

Data layouts (NeuPIMs, Sec. 4)
------------------------------
With ``E = row_bytes / dt`` elements per row, ``B`` banks, ``hd`` head
dimension, ``g`` query heads per KV head and ``kv`` cached tokens:

- **Keys, token-major.** Bank ``b`` holds tokens ``b, b + B, ...``; one row
  holds one token's keys of ``p = floor(E / hd)`` heads. The score ``q K^T``
  of ``n <= p`` heads is one GWRITE of their queries, then ``ceil(kv / B)``
  tiles of ``n g ceil(hd / macs)`` COMPs and ``n g`` READRES (one result per
  bank = one token per head)::

      score = sum over head chunks [gwrite(n g hd) + ceil(kv/B) * tile(n g ceil(hd/macs), n g)]

- **Values, dimension-major.** Bank ``b`` holds dimensions ``b, b + B, ...``
  of a KV head; one row holds ``E`` consecutive tokens of one dimension. The
  context ``p V`` of one query head is, per chunk of ``t <= E`` tokens, one
  GWRITE of the ``t`` probabilities and ``ceil(hd / B)`` tiles of
  ``ceil(t / macs)`` COMPs and one READRES::

      context = kvh * g * sum over token chunks [gwrite(t) + ceil(hd/B) * tile(ceil(t/macs), 1)]

- **Requests over channels.** A request's K and V live in one channel (so its
  GEMVs need no cross-channel reduction); requests are packed onto channels
  by greedy longest-first bin packing on their score + context time, as
  NeuPIMs' channel load balancing does. An attention op takes as long as its
  busiest channel. Each instance reports its share of that time (its own time
  scaled by ``busiest / total``) so that instance latencies still sum to the
  op's latency; instances are therefore *not* independent, and this engine
  must not sit behind a per-instance timing cache.

- **Weights (GEMV / GEMM), output-column-major.** Output columns are spread
  over channels, then banks; a row holds ``E`` elements of one column's
  ``K``-vector. Every input row is one GEMV (no reuse across rows: that is
  why a large GEMM does not belong on PIM)::

      gemm = m * sum over K chunks [gwrite(t) + ceil(ceil(N / channels) / B) * tile(ceil(t/macs), 1)]

- **Vector ops** (norms, softmax, activations, residuals, embedding) are
  streamed through the bank-level units: ``ceil(elements / (channels B macs))``
  COMPs plus one ACT/PRE per row-sized piece per bank. NeuPIMs runs these on
  the NPU and the default mapping keeps them there; the figure only lets any
  mapping be timed.

``compute_latency`` is the COMP issue time (the multipliers busy), and
``memory_latency`` the rest (activations, precharges, global-buffer writes,
result reads), both stretched by refresh; ``latency`` is their sum.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from .._presets import preset_entries
from ..config.fields import did_you_mean
from ..models.ops import Op, OpKind
from .base import Engine, OpTiming, register_engine
from .hardware import parse_quantity

#: Name of the PIM preset used when none is given.
DEFAULT_PIM = "neupims-hbm2"



def _meta(help: str, units: str = "1") -> dict[str, str]:
    return {"help": help, "units": units}


@dataclass(frozen=True, slots=True)
class PIMSpec:
    """Hardware parameters of one PIM device (timings in memory-clock cycles).

    Defaults are NeuPIMs' HBM2-PIM (see ``presets/pim.yaml`` for sources).
    """

    channels: int = field(default=32, metadata=_meta("independent HBM channels"))
    banks_per_channel: int = field(default=32, metadata=_meta("banks per channel"))
    channel_bytes: int = field(default=2 ** 30, metadata=_meta("capacity of one channel", "B"))
    row_bytes: int = field(default=1024, metadata=_meta("row buffer (DRAM page) per bank", "B"))
    macs_per_bank: int = field(default=16, metadata=_meta(
        "multipliers per bank: elements one COMP multiply-accumulates per bank"))
    io_bytes_per_cycle: int = field(default=32, metadata=_meta(
        "channel data bus bytes per memory clock (128 bits, double data rate)", "B"))
    frequency: float = field(default=1e9, metadata=_meta("memory clock", "Hz"))
    t_rcd: int = field(default=14, metadata=_meta("ACT to first column command", "cycle"))
    t_rp: int = field(default=14, metadata=_meta("PRE to next ACT", "cycle"))
    t_ras: int = field(default=34, metadata=_meta("shortest ACT to PRE", "cycle"))
    t_ccd: int = field(default=2, metadata=_meta("column command to column command", "cycle"))
    t_cl: int = field(default=14, metadata=_meta("read latency (READRES)", "cycle"))
    t_cwl: int = field(default=4, metadata=_meta("write latency (GWRITE)", "cycle"))
    t_wr: int = field(default=16, metadata=_meta("write recovery after GWRITE", "cycle"))
    t_refi: int = field(default=3900, metadata=_meta("refresh interval", "cycle"))
    t_rfc: int = field(default=260, metadata=_meta("refresh cycle time", "cycle"))
    dual_row_buffer: bool = field(default=True, metadata=_meta(
        "NeuPIMs' dual row buffers: the host's reads and PIM commands proceed "
        "concurrently (False = Newton's blocked mode)"))
    dtype_bytes: int = field(default=2, metadata=_meta("bytes per element", "B"))

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "dual_row_buffer":
                if not isinstance(value, bool):
                    raise ValueError(f"PIMSpec.dual_row_buffer must be a bool, got {value!r}")
            elif f.name == "frequency":
                if isinstance(value, bool) or not isinstance(value, (int, float)) \
                        or not math.isfinite(value) or value <= 0:
                    raise ValueError(f"PIMSpec.frequency must be a finite number > 0 Hz, "
                                     f"got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"PIMSpec.{f.name} must be an integer >= 0, got {value!r}")
        for name in ("channels", "banks_per_channel", "channel_bytes", "row_bytes",
                     "macs_per_bank", "io_bytes_per_cycle", "t_refi", "dtype_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"PIMSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.row_bytes % self.dtype_bytes:
            raise ValueError(f"PIMSpec.row_bytes={self.row_bytes} must be a multiple of "
                             f"dtype_bytes={self.dtype_bytes}")
        if self.t_rfc >= self.t_refi:
            raise ValueError(f"PIMSpec.t_rfc={self.t_rfc} must be < t_refi={self.t_refi} "
                             "(otherwise the channel does nothing but refresh)")

    # ------------------------------------------------------------ derived
    @property
    def row_elements(self) -> int:
        """Elements in one row of one bank (``E``)."""
        return self.row_bytes // self.dtype_bytes

    @property
    def capacity_bytes(self) -> int:
        """Bytes the device stores (``channels * channel_bytes``)."""
        return self.channels * self.channel_bytes

    @property
    def refresh_factor(self) -> float:
        """``t_refi / (t_refi - t_rfc)``: how much refresh stretches every time."""
        return self.t_refi / (self.t_refi - self.t_rfc)

    @property
    def t_readres(self) -> int:
        """Cycles of one READRES: read latency plus one result per bank over the bus."""
        return self.t_cl + -(-self.banks_per_channel * self.dtype_bytes
                             // self.io_bytes_per_cycle)

    @property
    def internal_bandwidth(self) -> float:
        """Bytes/s the multipliers read from the row buffers at full COMP rate."""
        per_comp = self.channels * self.banks_per_channel * self.macs_per_bank * self.dtype_bytes
        return per_comp * self.frequency / max(self.t_ccd, 1)

    def gwrite_cycles(self, elements):
        """Cycles of one GWRITE of ``elements`` (int or int array)."""
        return self.t_cwl + _ceil(np.asarray(elements) * self.dtype_bytes,
                                  self.io_bytes_per_cycle) + self.t_wr

    def tile_cycles(self, comps, readres):
        """Cycles of ACT + ``comps`` COMPs + ``readres`` READRES + PRE (arrays broadcast)."""
        comps = np.asarray(comps)
        return (np.maximum(self.t_ras, self.t_rcd + comps * self.t_ccd)
                + np.asarray(readres) * self.t_readres + self.t_rp)

    def with_channels(self, channels: int) -> "PIMSpec":
        """The same device with ``channels`` channels (capacity scales with them)."""
        return dataclasses.replace(self, channels=channels)


def _ceil(a, b):
    """Integer ceiling division that works on ints and int arrays."""
    return -(-a // b)


# ---------------------------------------------------------------- presets
@cache
def _presets() -> dict[str, tuple[PIMSpec, str, str]]:
    out = {}
    for name, entry in preset_entries("pim.yaml").items():
        fields = {k: parse_quantity(v) for k, v in (entry.get("spec") or {}).items()}
        try:
            spec = PIMSpec(**fields)
        except TypeError as err:
            raise ValueError(f"PIM preset {name!r}: {err}") from None
        out[name] = (spec, str(entry.get("description", "")).strip(),
                     str(entry.get("source", "")).strip())
    return out


def list_pim() -> list[str]:
    """Names of the PIM presets, sorted."""
    return sorted(_presets())


def get_pim(name: str = DEFAULT_PIM) -> PIMSpec:
    """The :class:`PIMSpec` of preset ``name``; an unknown name lists the known ones and
    suggests the closest."""
    presets = _presets()
    if name not in presets:
        raise ValueError(f"pim_hardware={name!r} is not a known PIM preset; known: "
                         f"{sorted(presets)}{did_you_mean(name, presets)}")
    return presets[name][0]


# ---------------------------------------------------------------- engine
@register_engine("pim")
class PIMEngine(Engine):
    """Times operators on one PIM device (see the module docstring for the model)."""

    independent_instances = False  # a batch's requests share the channels

    spec_class = PIMSpec

    def __init__(self, spec: PIMSpec | None = None) -> None:
        super().__init__(PIMSpec() if spec is None else spec)
        if not isinstance(self.spec, PIMSpec):
            raise ValueError(f"PIMEngine needs a PIMSpec, got {type(self.spec).__name__}")

    # ------------------------------------------------------------ cycles
    def gemv_cycles(self, m, k: int, n: int, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """(total, COMP) cycles of ``m`` GEMVs of a ``k x n`` matrix, ``batch`` times."""
        s = self.spec
        m = np.asarray(m, dtype=np.int64)
        e = s.row_elements
        tiles = _ceil(_ceil(n, s.channels), s.banks_per_channel)
        full, rem = divmod(int(k), e)
        per_row = full * (s.gwrite_cycles(e) + tiles * s.tile_cycles(_ceil(e, s.macs_per_bank), 1))
        comps = full * tiles * _ceil(e, s.macs_per_bank)
        if rem:
            per_row = per_row + s.gwrite_cycles(rem) \
                + tiles * s.tile_cycles(_ceil(rem, s.macs_per_bank), 1)
            comps += tiles * _ceil(rem, s.macs_per_bank)
        return m * batch * per_row, m * batch * comps * s.t_ccd

    def attention_cycles(self, q, kv, heads: int, kv_heads: int, head_dim: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per request: (score total, score COMP, context total, context COMP) cycles.

        ``q`` query rows and ``kv`` cached tokens per request (arrays); each
        query row is its own GEMV.
        """
        s = self.spec
        q = np.asarray(q, dtype=np.int64)
        kv = np.asarray(kv, dtype=np.int64)
        e, banks, macs = s.row_elements, s.banks_per_channel, s.macs_per_bank
        if not 1 <= kv_heads <= heads:
            raise ValueError(f"PIM attention needs 1 <= kv_heads <= heads, got kv_heads="
                             f"{kv_heads}, heads={heads}")
        g = _ceil(heads, kv_heads)
        # A head wider than a row is split into row-sized segments.
        seg = _ceil(head_dim, e)
        hd = _ceil(head_dim, seg)
        kvh = kv_heads * seg
        # Score: chunks of p heads per row, ceil(kv / B) tiles each.
        p = max(1, e // hd)
        tiles = _ceil(kv, banks)
        score = np.zeros(len(kv), dtype=np.int64)
        score_comp = np.zeros(len(kv), dtype=np.int64)
        full, rem = divmod(kvh, p)
        for n, count in ((p, full), (rem, 1 if rem else 0)):
            if count:
                c = n * g * _ceil(hd, macs)
                score += count * (s.gwrite_cycles(n * g * hd) + tiles * s.tile_cycles(c, n * g))
                score_comp += count * tiles * c * s.t_ccd
        # Context: per query head, chunks of E tokens, ceil(hd / B) tiles each
        # (the unsplit head dimension: V's rows hold tokens, not dimensions).
        dtiles = _ceil(head_dim, banks)
        full_t, rem_t = np.divmod(kv, e)
        chunk_e = s.gwrite_cycles(e) + dtiles * s.tile_cycles(_ceil(e, macs), 1)
        chunk_r = np.where(rem_t > 0, s.gwrite_cycles(rem_t)
                           + dtiles * s.tile_cycles(_ceil(rem_t, macs), 1), 0)
        comps_ctx = dtiles * (full_t * _ceil(e, macs) + _ceil(rem_t, macs))
        per_head = full_t * chunk_e + chunk_r
        context = kv_heads * g * per_head
        context_comp = kv_heads * g * comps_ctx * s.t_ccd
        return q * score, q * score_comp, q * context, q * context_comp

    def vector_cycles(self, elements: float) -> tuple[float, float]:
        """(total, COMP) cycles to stream ``elements`` through every bank's units."""
        s = self.spec
        if elements <= 0:
            return 0.0, 0.0
        lanes = s.channels * s.banks_per_channel * s.macs_per_bank
        comp = math.ceil(elements / lanes) * s.t_ccd
        rows = math.ceil(elements / (s.channels * s.banks_per_channel * s.row_elements))
        return float(comp + rows * (s.t_rcd + s.t_rp)), float(comp)

    # ------------------------------------------------------------ channels
    def assign_channels(self, cost: np.ndarray) -> np.ndarray:
        """Channel of each request: greedy longest-first onto the least-loaded channel.

        Ties go to the lower request index and the lower channel, so the
        assignment is deterministic.
        """
        cost = np.asarray(cost, dtype=np.float64)
        out = np.zeros(len(cost), dtype=np.int64)
        heap = [(0.0, c) for c in range(self.spec.channels)]
        for i in np.argsort(-cost, kind="stable").tolist():
            load, c = heapq.heappop(heap)
            out[i] = c
            heapq.heappush(heap, (load + float(cost[i]), c))
        return out

    # ------------------------------------------------------------ timing
    def _seconds(self, cycles) -> np.ndarray:
        return np.asarray(cycles, dtype=np.float64) * (self.spec.refresh_factor
                                                       / self.spec.frequency)

    def _kv_heads(self, op: Op, kv: np.ndarray) -> int:
        """KV heads of an attention op, recovered from its K/V bytes (GQA aware)."""
        dt = float(self.spec.dtype_bytes)
        h, q = op.batch, op.m.astype(np.float64)
        if op.kind is OpKind.ATTN_SCORE:
            hd = op.k.astype(np.float64)
            rest = op.bytes_read / dt - h * q * hd
        else:
            hd = op.n.astype(np.float64)
            rest = op.bytes_read / dt - h * q * kv
        denominator = float((kv * hd).sum())
        if denominator <= 0:
            return h
        return int(min(h, max(1, round(float(rest.sum()) / denominator))))

    def time_op(self, op: Op) -> OpTiming:
        if op.kind in (OpKind.ATTN_SCORE, OpKind.ATTN_CONTEXT):
            return self._time_attention(op)
        if op.kind is OpKind.GEMM:
            total, comp = self.gemv_cycles(op.m, int(op.k[0]), int(op.n[0]), op.batch)
        else:
            dt = float(self.spec.dtype_bytes)
            pairs = [self.vector_cycles((r + w) / dt)
                     for r, w in zip(op.bytes_read.tolist(), op.bytes_written.tolist())]
            total = np.array([p[0] for p in pairs])
            comp = np.array([p[1] for p in pairs])
        compute = self._seconds(comp)
        memory = self._seconds(np.asarray(total) - comp)
        return OpTiming(compute + memory, compute, memory)

    def _time_attention(self, op: Op) -> OpTiming:
        q = op.m.astype(np.int64)
        if op.kind is OpKind.ATTN_SCORE:
            kv, hd = op.n.astype(np.int64), int(op.k.max(initial=0))
        else:
            kv, hd = op.k.astype(np.int64), int(op.n.max(initial=0))
        kvh = self._kv_heads(op, kv)
        score, score_comp, context, context_comp = self.attention_cycles(
            q, kv, op.batch, kvh, hd)
        own, comp = (score, score_comp) if op.kind is OpKind.ATTN_SCORE \
            else (context, context_comp)
        # Score and context of a request share its channel: pack on their sum.
        channel = self.assign_channels(score + context)
        load = np.bincount(channel, weights=own.astype(np.float64),
                           minlength=self.spec.channels)
        total = float(own.sum())
        share = float(load.max()) / total if total > 0 else 0.0
        compute = self._seconds(comp) * share
        memory = self._seconds(own - comp) * share
        return OpTiming(compute + memory, compute, memory)


__all__ = ["DEFAULT_PIM", "PIMEngine", "PIMSpec", "get_pim", "list_pim"]
