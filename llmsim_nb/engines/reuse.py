"""Computation reuse: a bounded cache of operator timings in front of an engine.

LLMServingSim's second technique ("Techniques for Fast Simulation"): a block
is compiled and simulated once and replicated over layers (the simulator
already does that), non-attention operators are simulated once per batch
shape, and attention is re-timed per request only when its context changes;
results are cached across iterations.

:class:`ReuseEngine` wraps any engine. Engines time every instance of an op
independently (the engine contract, checked by ``check_engine``), so a
timing is a pure function of one instance's fields::

    key = (kind, batch, m, n, k, flops, bytes_read, bytes_written)

For a weight GEMM that is the number of batched tokens (``m``) with the
weight shape; for attention it is one request's query and context lengths.
Per-request attention instances are cached only for engines marked
``expensive`` (the detailed NPU): a closed-form engine times a whole
vectorised attention op faster than it could look its instances up, so for
it reuse covers the single-instance (non-attention) operators, which is what
the paper's "simulate non-attention layers once per token count" describes.
The cache maps keys to ``(latency, compute_latency, memory_latency)`` and is
least-recently-used with a bound on entries. Results are bit-identical with
and without reuse: a hit returns the float the engine computed for the same
fields, and per-op sums are taken over the same per-instance arrays.

A cache can be saved and loaded. Its file records a hash of the wrapped
engine's name and spec; loading it into an engine with a different spec is
refused, so a cache never answers for another configuration.
"""

from __future__ import annotations

import hashlib
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..models.ops import Op
from .base import Engine, OpTiming

CACHE_FORMAT = 1


def engine_hash(engine: Engine) -> str:
    """A stable hash of what determines an engine's timings (its name and spec)."""
    return hashlib.sha256(f"{engine.name}:{engine.spec!r}".encode()).hexdigest()[:16]


class ReuseCache:
    """Least-recently-used map from op-instance keys to timings.

    Parameters
    ----------
    max_entries : int
        Bound on entries; the least recently used are dropped beyond it.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"ReuseCache.max_entries must be a positive integer, "
                             f"got {max_entries!r}")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, tuple[float, float, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple) -> tuple[float, float, float] | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: tuple, value: tuple[float, float, float]) -> None:
        entries = self._entries
        entries[key] = value
        if len(entries) > self.max_entries:
            entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def save(self, path: str | Path, engine: Engine) -> Path:
        """Write the entries, tagged with ``engine``'s hash."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            pickle.dump({"format": CACHE_FORMAT, "engine_hash": engine_hash(engine),
                         "entries": list(self._entries.items())}, f)
        return path

    def load(self, path: str | Path, engine: Engine) -> int:
        """Add the entries saved at ``path``; return how many.

        Raises ValueError if the file was saved for a different engine
        configuration or is not a cache file.
        """
        path = Path(path)
        try:
            with path.open("rb") as f:
                data = pickle.load(f)
        except (OSError, pickle.UnpicklingError, EOFError) as exc:
            raise ValueError(f"reuse cache {str(path)!r} cannot be read: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            raise ValueError(f"reuse cache {str(path)!r} is not a llmsim_nb reuse cache "
                             f"(format {CACHE_FORMAT})")
        expected = engine_hash(engine)
        if data.get("engine_hash") != expected:
            raise ValueError(f"reuse cache {str(path)!r} was made for engine configuration "
                             f"{data.get('engine_hash')}, not this one ({expected}); it "
                             "would give another configuration's timings")
        for key, value in data["entries"]:
            self.put(key, value)
        return len(data["entries"])


class ReuseEngine(Engine):
    """Wraps ``engine`` with a :class:`ReuseCache` (see the module docstring).

    ``name`` and ``spec`` are the wrapped engine's, so results and cache
    hashes do not depend on whether reuse is on.
    """

    def __init__(self, engine: Engine, cache: ReuseCache | None = None) -> None:
        super().__init__(engine.spec)
        self.inner = engine
        self.name = engine.name
        self.cache = ReuseCache() if cache is None else cache
        # Shared, read-only ops (the template memoises non-attention ops per
        # token count) are recognised by identity, skipping the key tuple.
        self._by_op: dict[int, tuple[Op, OpTiming]] = {}

    def time_op(self, op: Op) -> OpTiming:
        if op.num_instances > 1 and not self.inner.expensive:
            return self.inner.time_op(op)
        shared = not op.m.flags.writeable
        if shared:
            entry = self._by_op.get(id(op))
            if entry is not None and entry[0] is op:
                self.cache.hits += 1
                return entry[1]
        timing = self._time_instances(op)
        if shared:
            if len(self._by_op) >= self.cache.max_entries:
                self._by_op.clear()
            for arr in (timing.latency, timing.compute_latency, timing.memory_latency):
                arr.setflags(write=False)
            self._by_op[id(op)] = (op, timing)
        return timing

    def _time_instances(self, op: Op) -> OpTiming:
        kind, batch = op.kind, op.batch
        keys = list(zip([kind] * op.num_instances, [batch] * op.num_instances,
                        op.m.tolist(), op.n.tolist(), op.k.tolist(), op.flops.tolist(),
                        op.bytes_read.tolist(), op.bytes_written.tolist()))
        cache = self.cache
        values = [cache.get(key) for key in keys]
        # Instances missing from the cache, deduplicated: identical requests in
        # one batch are simulated once (the first is a miss, the rest hits).
        first: dict[tuple, int] = {}
        for i, v in enumerate(values):
            if v is None:
                first.setdefault(keys[i], i)
        cache.misses += len(first)
        cache.hits += len(keys) - len(first)
        if first:
            idx = np.array(list(first.values()))
            sub = Op(op.name, kind, op.m[idx], op.n[idx], op.k[idx], batch, op.flops[idx],
                     op.bytes_read[idx], op.bytes_written[idx], op.weight_bytes,
                     None if op.request_ids is None else op.request_ids[idx])
            timing = self.inner.time_op(sub)
            fresh = {}
            for j, key in enumerate(first):
                value = (float(timing.latency[j]), float(timing.compute_latency[j]),
                         float(timing.memory_latency[j]))
                fresh[key] = value
                cache.put(key, value)
            values = [fresh[keys[i]] if v is None else v for i, v in enumerate(values)]
        latency, compute, memory = (np.array(col, dtype=np.float64) for col in zip(*values))
        return OpTiming(latency, compute, memory)
