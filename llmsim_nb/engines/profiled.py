"""Profiled engine: measured operator latencies, interpolated, with a GPU fallback.

The ``profiled`` engine times an op from a table of measurements
(:mod:`llmsim_nb.engines.measurements`: our documented CSV schema, Vidur's profiles,
LLMServingSim 2.0's ``perf_model_*.csv``) and falls back to the analytical
``gpu`` engine where the table has nothing to say, counting every fallback
(:attr:`ProfiledEngine.fallbacks`) and warning once per op name. It never
extrapolates.

Lookup rules
------------
*GEMM and vector ops* are keyed by their shape apart from the token count
(kind, ``n``, ``k``, heads, weight bytes), so a table measured for one model
serves every model with the same layer shapes. Within a key, latency is
interpolated linearly in ``log(tokens)`` / ``log(latency)`` between the
nearest measured token counts; a count outside ``[min, max]`` falls back.

*Attention* tables hold one request's attention (``attention`` rows: the three
ops as one fused kernel) at (query tokens ``q``, context ``c``), keyed by the
head geometry. An instance is interpolated along ``c`` among points with the
same ``q`` (decode steps), else along ``q`` among points with the same ``c``
(prompts); anything else falls back. The measured kernel time is split
between ``attn_score`` and ``attn_context`` in the proportion the ``gpu``
engine gives them; ``attn_softmax`` (the online softmax inside the kernel,
which a fused measurement cannot separate) keeps the ``gpu`` engine's time and
is not counted as a fallback.

Measurements are noisy, so curves are made monotone on load (running maximum
along tokens and context): more work never costs less, as
:func:`llmsim_nb.testing.check_engine` requires.

Per-request attention rows measured one request at a time include that
kernel's launch; a batched kernel pays it once, so summing per-request rows
over a large decode batch overestimates attention (reported, not corrected).
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from ..models.ops import Op, OpKind
from .base import Engine, OpTiming, register_engine
from .gpu import GPUEngine, GPUSpec
from .measurements import ATTENTION, Measurements


def _monotone(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted by ``x``, duplicates averaged, ``y`` made non-decreasing."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    ux, inverse = np.unique(x, return_inverse=True)
    uy = np.bincount(inverse, weights=y) / np.bincount(inverse)
    return ux, np.maximum.accumulate(uy)


def _loglog(x: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Interpolate linearly in log-log space (``x`` within ``[xs[0], xs[-1]]``)."""
    if len(xs) == 1:
        return np.full(np.shape(x), ys[0])
    return np.exp(np.interp(np.log(x), np.log(xs), np.log(ys)))


class ProfileTable:
    """Measured curves, ready for lookup (built once from :class:`Measurements`).

    Attributes
    ----------
    curves : dict
        Shape key -> ``(tokens, seconds)`` arrays (sorted, monotone).
    attention : dict
        Head geometry ``(h, kv_heads, head_dim)`` -> ``(q, context, seconds)`` arrays.
    digest : str
        A hash of the contents (identifies the table in an engine's ``repr``).
    """

    def __init__(self, measurements: Measurements) -> None:
        grouped: dict[tuple, list[tuple[int, float]]] = defaultdict(list)
        attention: dict[tuple, list[tuple[int, int, float]]] = defaultdict(list)
        for row in measurements:
            if row.standalone or not row.key:
                continue  # stand-alone kernels are not serving ops
            if row.key[0] == ATTENTION:
                attention[row.key[1:]].append((row.num_tokens, row.context, row.latency))
            elif len(row.ops) == 1 and not row.ops[0].kind.is_attention:
                grouped[row.key].append((row.num_tokens, row.latency))
        self.curves = {}
        for key, points in grouped.items():
            x, y = (np.array(c, dtype=np.float64) for c in zip(*points))
            self.curves[key] = _monotone(x, y)
        self.attention = {}
        for key, points in attention.items():
            q, c, t = (np.array(col, dtype=np.float64) for col in zip(*points))
            self.attention[key] = (q, c, t)
        h = hashlib.sha256()
        for key in sorted(self.curves, key=repr):
            h.update(repr(key).encode())
            for arr in self.curves[key]:
                h.update(arr.tobytes())
        for key in sorted(self.attention, key=repr):
            h.update(repr(key).encode())
            for arr in self.attention[key]:
                h.update(arr.tobytes())
        self.digest = h.hexdigest()[:16]

    def __repr__(self) -> str:
        return (f"ProfileTable({len(self.curves)} curves, {len(self.attention)} attention "
                f"geometries, digest={self.digest})")

    def lookup(self, key: tuple, tokens: np.ndarray) -> np.ndarray:
        """Seconds per token count; NaN where ``key`` is unknown or out of range."""
        out = np.full(len(tokens), np.nan)
        if key not in self.curves:
            return out
        xs, ys = self.curves[key]
        inside = (tokens >= xs[0]) & (tokens <= xs[-1]) & (tokens > 0)
        out[inside] = _loglog(tokens[inside].astype(np.float64), xs, ys)
        return out

    def lookup_attention(self, geometry: tuple, q: np.ndarray, context: np.ndarray
                         ) -> np.ndarray:
        """Seconds of one request's fused attention; NaN where not measured."""
        out = np.full(len(q), np.nan)
        if geometry not in self.attention:
            return out
        mq, mc, mt = self.attention[geometry]
        for i, (qi, ci) in enumerate(zip(q.tolist(), context.tolist())):
            same_q = mq == qi
            if same_q.any():
                xs, ys = _monotone(mc[same_q], mt[same_q])
                if xs[0] <= ci <= xs[-1]:
                    out[i] = float(np.interp(ci, xs, ys))
                    continue
            same_c = mc == ci
            if same_c.any():
                xs, ys = _monotone(mq[same_c], mt[same_c])
                if xs[0] <= qi <= xs[-1]:
                    out[i] = float(_loglog(np.array([qi], dtype=np.float64), xs, ys)[0])
        return out


@dataclass(frozen=True)
class ProfiledSpec:
    """What the ``profiled`` engine needs: a table and the GPU it falls back to.

    Parameters
    ----------
    table : ProfileTable
        Default: an empty table (every op falls back).
    fallback : GPUSpec
        The device the measurements were taken on, for ops outside the table.
    """

    table: ProfileTable = field(default_factory=lambda: ProfileTable(Measurements(())))
    fallback: GPUSpec = field(default_factory=GPUSpec)

    def __post_init__(self) -> None:
        if not isinstance(self.table, ProfileTable):
            raise ValueError(f"ProfiledSpec.table must be a ProfileTable, got "
                             f"{type(self.table).__name__}")
        if not isinstance(self.fallback, GPUSpec):
            raise ValueError(f"ProfiledSpec.fallback must be a GPUSpec, got "
                             f"{type(self.fallback).__name__}")

    @property
    def memory_bytes(self) -> int:
        return self.fallback.memory_bytes

    @property
    def dtype_bytes(self) -> int:
        return self.fallback.dtype_bytes


@register_engine("profiled")
class ProfiledEngine(Engine):
    """Interpolates measured latencies; the ``gpu`` engine outside their range.

    Attributes
    ----------
    fallbacks : collections.Counter
        Op instances timed by the fallback engine, by op name. With reuse on
        (the default) an instance the cache has seen is not timed again, so
        this counts distinct instances rather than every use.
    measured : collections.Counter
        Op instances timed from the table, by op name (the same caveat).
    """

    pure = False  # counts fallbacks and warns: time only what is asked for

    spec_class = ProfiledSpec

    def __init__(self, spec: ProfiledSpec) -> None:
        if not isinstance(spec, ProfiledSpec):
            raise ValueError(f"ProfiledEngine needs a ProfiledSpec, got {type(spec).__name__}")
        super().__init__(spec)
        self.gpu = GPUEngine(spec.fallback)
        self.fallbacks: Counter = Counter()
        self.measured: Counter = Counter()
        self._warned: set[str] = set()

    @classmethod
    def from_files(cls, *paths, fallback: str | GPUSpec = "a100-80gb") -> "ProfiledEngine":
        """Read measurement files (:func:`~llmsim_nb.engines.measurements.load_measurements`)."""
        from .hardware import get_hardware
        from .measurements import load_measurements

        if isinstance(fallback, str):
            preset = get_hardware(fallback)
            if not isinstance(preset.spec, GPUSpec):
                raise ValueError(f"fallback={fallback!r} is not a GPU preset")
            fallback = preset.spec
        table = Measurements(())
        for path in paths:
            table = table + load_measurements(path)
        return cls(ProfiledSpec(ProfileTable(table), fallback))

    @property
    def num_fallbacks(self) -> int:
        return int(sum(self.fallbacks.values()))

    def _note_fallback(self, op: Op, count: int) -> None:
        if count == 0:
            return
        self.fallbacks[op.name] += count
        if op.name not in self._warned:
            self._warned.add(op.name)
            warnings.warn(f"profiled engine: op {op.name!r} ({op.kind.value}, e.g. m="
                          f"{int(op.m[0])}) is outside the measured range; timed by the gpu "
                          "engine (see ProfiledEngine.fallbacks)", RuntimeWarning, stacklevel=3)

    @staticmethod
    def _geometry(op: Op) -> tuple[tuple, np.ndarray, np.ndarray]:
        """``((h, kv_heads, head_dim), q, context)`` of a score or context op."""
        h = op.batch
        q = np.asarray(op.m, dtype=np.float64)
        if op.kind is OpKind.ATTN_SCORE:
            hd, kv = int(op.k[0]), np.asarray(op.n, dtype=np.float64)
            elems, other = h * q * kv, h * q * hd
        else:
            hd, kv = int(op.n[0]), np.asarray(op.k, dtype=np.float64)
            elems, other = h * q * hd, h * q * kv
        written = np.asarray(op.bytes_written, dtype=np.float64)
        ok = elems > 0
        dt = float(written[ok][0] / elems[ok][0]) if ok.any() else 2.0
        cache = np.asarray(op.bytes_read, dtype=np.float64) / dt - other
        kvh = int(round(float(cache[ok][0] / (kv[ok][0] * hd)))) if ok.any() else 0
        return (h, kvh, hd), q, kv - q

    def _attention(self, op: Op) -> OpTiming:
        own = self.gpu.time_op(op)
        if op.kind is OpKind.SOFTMAX:
            return own  # inside the fused kernel; see the module docstring
        geometry, q, context = self._geometry(op)
        total = self.spec.table.lookup_attention(geometry, q, context)
        # The partner op (score <-> context) of the same kernel, from the gpu engine:
        # the same per-request shapes with n and k swapped.
        partner_kind = OpKind.ATTN_CONTEXT if op.kind is OpKind.ATTN_SCORE else \
            OpKind.ATTN_SCORE
        h, kvh, hd = geometry
        kv = q + context
        dt = 2.0
        if partner_kind is OpKind.ATTN_CONTEXT:
            n, k = np.full(len(q), hd), kv
            read = (h * q * kv + kvh * kv * hd) * dt
            written = h * q * hd * dt
        else:
            n, k = kv, np.full(len(q), hd)
            read = (h * q * hd + kvh * kv * hd) * dt
            written = h * q * kv * dt
        partner = Op(op.name + "_partner", partner_kind, op.m, n.astype(np.int64),
                     k.astype(np.int64), op.batch, 2.0 * h * q * kv * hd, read, written)
        mine, theirs = own.latency, self.gpu.time_op(partner).latency
        share = np.divide(mine, mine + theirs, out=np.full(len(q), 0.5),
                          where=(mine + theirs) > 0)
        found = np.isfinite(total) & (np.asarray(op.m) > 0)
        latency = np.where(found, total * share, own.latency)
        self.measured[op.name] += int(found.sum())
        self._note_fallback(op, int(((~found) & (np.asarray(op.m) > 0)).sum()))
        scale = np.divide(latency, own.latency, out=np.ones(len(q)), where=own.latency > 0)
        # Keep latency >= max(compute, memory): scale the bounds with the latency.
        return OpTiming(latency, own.compute_latency * np.minimum(scale, 1.0),
                        own.memory_latency * np.minimum(scale, 1.0))

    def time_op(self, op: Op) -> OpTiming:
        """Measured (interpolated) latency where known, else the ``gpu`` engine's."""
        if op.kind.is_attention:
            return self._attention(op)
        own = self.gpu.time_op(op)
        key = (op.kind.value, int(op.n[0]), int(op.k[0]), op.batch, float(op.weight_bytes))
        rows = np.asarray(op.m)
        measured = self.spec.table.lookup(key, rows)
        found = np.isfinite(measured) & (rows > 0)
        latency = np.where(found, measured, own.latency)
        self.measured[op.name] += int(found.sum())
        self._note_fallback(op, int(((~found) & (rows > 0)).sum()))
        scale = np.divide(latency, own.latency, out=np.ones(len(rows)), where=own.latency > 0)
        return OpTiming(latency, own.compute_latency * np.minimum(scale, 1.0),
                        own.memory_latency * np.minimum(scale, 1.0))


__all__ = ["ProfileTable", "ProfiledEngine", "ProfiledSpec"]
