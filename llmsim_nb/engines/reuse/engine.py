"""Computation reuse: a bounded cache of operator timings in front of an engine.

LLMServingSim's second technique ("Techniques for Fast Simulation"): a block
is compiled and simulated once and replicated over layers (the simulator
already does that), non-attention operators are simulated once per batch
shape, and attention is re-timed per request only when its context changes;
results are cached across iterations.

:class:`ReuseEngine` wraps any engine. Engines time every instance of an op
independently (the engine contract, checked by ``check_engine``), so a
timing is a pure function of one instance's fields::

    key = (name, kind, batch, m, n, k, flops, bytes_read, bytes_written)

For a weight GEMM that is the number of batched tokens (``m``) with the
weight shape; for attention it is one request's query and context lengths.
The cache maps keys to ``(latency, compute_latency, memory_latency)`` and is
least-recently-used with a bound on entries. An engine marked ``expensive``
(the detailed NPU) is asked only for instances the cache has not seen.

The execution stack asks for per-operator totals of a whole block
(:meth:`ReuseEngine.op_totals`), and for a closed-form engine the wrapper
answers most of an iteration from arrays, not keys (a closed-form engine
times a vectorised op faster than a dictionary could look its instances up):

- non-attention totals per ``(block, token count)``; on a miss a ``pure``
  engine (no side effects) times ``ROW_CHUNK`` token counts in one call;
- attention by instance shape: decodes (one query token) in a table indexed
  by context length, whole prompts with an empty cache in a table indexed
  by prompt length; a pure engine fills a table's whole span in one call
  per operator. Other instances (chunks of a partly cached prompt) are
  built and timed.

Results are bit-identical with and without reuse: every entry is the float
the engine computes for the same fields, and each operator's total is summed
over the same per-instance array in batch order (tested per engine and on
whole runs).

The pieces live in their own modules, and every name is importable from
here: the keys in :mod:`.keys`, the bounded cache in
:mod:`.cache`, its file in :mod:`.file`, and the attention tables in
:mod:`.attention`. A cache can be saved
and loaded; its file is data only (no pickle), records a hash of the wrapped
engine's name and spec, and is checked before use: a file for another
configuration, of another format, or with anything wrong in it is refused
with a ValueError, so a cache never answers for another configuration.
"""

from __future__ import annotations

import numpy as np

from ...models.ops import BatchShape, Op
from ...models.template import OpTemplate
from ..base import Engine, OpTiming
from .attention import AttentionTables
from .cache import ReuseCache
from .file import CACHE_FORMAT, cache_path, engine_hash
from .keys import DECODE, PROMPT, ROW_CHUNK, TableKey, instance_key, rows_key

__all__ = ["CACHE_FORMAT", "DECODE", "PROMPT", "ROW_CHUNK", "ReuseCache", "ReuseEngine",
           "TableKey", "cache_path", "engine_hash"]


class ReuseEngine(AttentionTables, Engine):
    """Wraps ``engine`` with a :class:`ReuseCache` (see the module docstring).

    ``name`` and ``spec`` are the wrapped engine's, so results and cache
    hashes do not depend on whether reuse is on.
    """

    def __init__(self, engine: Engine, cache: ReuseCache | None = None) -> None:
        if not engine.independent_instances:
            raise ValueError(f"ReuseEngine cannot wrap the {engine.name!r} engine: it times "
                             "an op's instances together (independent_instances=False), so "
                             "a cached instance timing would not hold in another batch")
        super().__init__(engine.spec)
        self.inner = engine
        self.name = engine.name
        self.cache = ReuseCache() if cache is None else cache
        # Answers derived per process live in ``cache.memo``, keyed by object
        # identity (shared read-only ops; blocks of templates per token count);
        # each entry keeps its object, checked by identity, so a recycled id
        # never answers for another object.

    def time_op(self, op: Op) -> OpTiming:
        if op.num_instances > 1 and not self.inner.expensive:
            return self.inner.time_op(op)
        shared = not op.m.flags.writeable
        if shared:
            entry = self.cache.memo.get(("op", id(op)))
            if entry is not None and entry[0] is op:
                self.cache.hits += 1
                return entry[1]
        timing = self._time_instances(op)
        if shared:
            for arr in (timing.latency, timing.compute_latency, timing.memory_latency):
                arr.setflags(write=False)
            self.cache.remember(("op", id(op)), (op, timing))
        return timing

    def op_totals(self, templates: tuple[OpTemplate, ...], batch: BatchShape,
                  dtype_bytes: int, num_rows: int | None = None) -> np.ndarray:
        """Seconds per operator, as :meth:`Engine.op_totals`, from the cache.

        Non-attention operators depend only on the number of rows: their
        totals are kept per ``(templates, rows)``. For a closed-form engine
        the attention instances of the two commonest shapes are read from
        tables: decodes (one query token) by context length, and whole
        prompts with an empty cache by prompt length; other instances
        (chunks of a partly cached prompt, prefix-cache hits, reloads) are
        remembered per ``(query, context)`` pair in memory (not in the
        fast-run file). The
        engine contract (instances are timed independently) makes every
        table entry the float the engine gives inside any batch, and each
        operator's total is summed over the same per-instance array in batch
        order, so results are bit-identical to :meth:`Engine.op_totals`
        (tested).
        """
        rows = batch.num_tokens if num_rows is None else num_rows
        key = ("block", id(templates), rows, dtype_bytes)
        memo = self.cache.memo
        entry = memo.get(key)
        if entry is None or entry[0] is not templates:
            totals = np.zeros(len(templates))
            attention, experts = [], []
            by_rows = self.inner.pure and not self.inner.expensive
            for i, t in enumerate(templates):
                if t.kind.is_attention:
                    attention.append(i)
                elif t.num_experts:  # rows per expert change every iteration
                    experts.append(i)
                elif by_rows:
                    totals[i] = self._row_latency(t, dtype_bytes, rows)
                else:
                    totals[i] = self.time_op(t.instantiate(batch, dtype_bytes, num_rows)).total
            # The last item: the hits a later lookup of this entry counts.
            entry = (templates, totals, tuple(attention), tuple(experts),
                     len(templates) - len(attention) - len(experts))
            self.cache.remember(key, entry)
        else:
            memo.move_to_end(key)
            self.cache.hits += entry[4]
        totals = entry[1]
        if entry[3]:
            totals = totals.copy()
            for i in entry[3]:
                totals[i] = self._expert_latency(templates[i], dtype_bytes, batch)
        if entry[2]:
            totals = totals.copy()
            if self.inner.expensive:  # instance by instance through the cache
                for i in entry[2]:
                    totals[i] = self.time_op(templates[i].instantiate(batch, dtype_bytes)).total
            else:
                sums = self._attention_totals(templates, entry[2], batch, dtype_bytes)
                for i, seconds in zip(entry[2], sums):
                    totals[i] = float(seconds)
        return totals

    def _expert_latency(self, template: OpTemplate, dtype_bytes: int, batch: BatchShape) -> float:
        """Seconds of a routed-expert GEMM: one grouped kernel whose shape is
        fixed by two numbers, the routed rows and the experts with tokens
        (``OpTemplate.expert_op``), so it is remembered per such pair in
        memory (not in the fast-run file) and counted as a hit or miss."""
        counts = batch.expert_tokens
        if counts is None or self.inner.expensive:
            return self.time_op(template.instantiate(batch, dtype_bytes)).total
        key = ("experts", id(template), dtype_bytes, int(counts.sum()),
               int(np.count_nonzero(counts)))
        entry = self.cache.memo.get(key)
        if entry is not None and entry[0] is template:
            self.cache.hits += 1
            return entry[1]
        seconds = self.inner.time_op(template.instantiate(batch, dtype_bytes)).total
        self.cache.misses += 1
        self.cache.remember(key, (template, seconds))
        return seconds

    def _row_latency(self, template: OpTemplate, dtype_bytes: int, rows: int) -> float:
        """Latency of non-attention ``template`` on ``rows`` token rows.

        A miss times the whole chunk of ``ROW_CHUNK`` token counts around
        ``rows`` in one call (:meth:`OpTemplate.dense_rows`): each instance is
        the single-instance op's, so the float equals ``time_op(op).total``.
        """
        chunk = rows // ROW_CHUNK
        key = rows_key(template, dtype_bytes, chunk)
        table = self.cache.get_table(key)
        if table is None:
            first = chunk * ROW_CHUNK
            span = np.arange(max(first, 1), first + ROW_CHUNK, dtype=np.int64)
            table = np.full(ROW_CHUNK, np.nan)
            table[span - first] = self.inner.time_op(
                template.dense_rows(span, float(dtype_bytes))).latency
            self.cache.put_table(key, table)
            self.cache.misses += len(span)
        else:
            self.cache.hits += 1
        return float(table[rows - chunk * ROW_CHUNK])

    def _time_instances(self, op: Op) -> OpTiming:
        kind, batch = op.kind, op.batch
        cache = self.cache
        if op.num_instances == 1:  # most ops: one key, no deduplication
            key = instance_key(op.name, kind, batch, op.m.item(0), op.n.item(0), op.k.item(0),
                               op.flops.item(0), op.bytes_read.item(0), op.bytes_written.item(0))
            value = cache.get(key)
            if value is None:
                cache.misses += 1
                timing = self.inner.time_op(op)
                cache.put(key, (timing.latency.item(0), timing.compute_latency.item(0),
                                timing.memory_latency.item(0)))
                return timing
            cache.hits += 1
            return OpTiming(np.array(value[:1]), np.array(value[1:2]), np.array(value[2:]))
        keys = list(zip([op.name] * op.num_instances, [kind] * op.num_instances,
                        [batch] * op.num_instances,
                        op.m.tolist(), op.n.tolist(), op.k.tolist(), op.flops.tolist(),
                        op.bytes_read.tolist(), op.bytes_written.tolist()))
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
