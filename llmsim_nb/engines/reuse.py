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

A cache can be saved and loaded. Its file records a hash of the wrapped
engine's name and spec; loading it into an engine with a different spec is
refused, so a cache never answers for another configuration.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import secrets
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..models.ops import BatchShape, Op
from ..models.template import OpTemplate
from .base import Engine, OpTiming

CACHE_FORMAT = 2  # 2: tables beside entries; keys include op names
#: Token counts a non-attention op is timed for at once (pure engines).
ROW_CHUNK = 128
#: Attention instance shapes kept in tables (see ``ReuseEngine._shape_table``).
DECODE, PROMPT = 0, 1


class TableKey:
    """A hashable key that computes its hash once (its parts hold templates,
    whose hashes walk every field). Equal parts make equal keys; it pickles
    as its parts, so a saved cache answers another process's keys."""

    __slots__ = ("parts", "_hash")

    def __init__(self, parts: tuple) -> None:
        self.parts = parts
        self._hash = hash(parts)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or (isinstance(other, TableKey) and self.parts == other.parts)

    def __reduce__(self):
        return (TableKey, (self.parts,))

    def __repr__(self) -> str:
        return f"TableKey({self.parts!r})"


def cache_path(engine: Engine) -> Path:
    """Where ``fast_run`` keeps ``engine``'s cache: one file per engine
    configuration under ``$LLMSIM_CACHE_DIR`` (default ``~/.cache/llmsim_nb``)."""
    root = Path(os.environ.get("LLMSIM_CACHE_DIR", Path.home() / ".cache" / "llmsim_nb"))
    return root / f"reuse-{engine_hash(engine)}.pkl"


def engine_hash(engine: Engine) -> str:
    """A stable hash of what determines an engine's timings (its name and spec)."""
    return hashlib.sha256(f"{engine.name}:{engine.spec!r}".encode()).hexdigest()[:16]


class ReuseCache:
    """Least-recently-used store of operator timings.

    It holds instance timings (key -> ``(latency, compute, memory)``) and
    tables of latencies (key -> array, see :class:`ReuseEngine`); both are
    saved and loaded. ``memo`` holds answers derived from them for one
    process (keyed by object identity), cleared with the rest, never saved.

    Parameters
    ----------
    max_entries : int
        Bound on cached timings: instance entries plus table cells (and,
        separately, memo entries). Least recently used tables go first.
    """

    def __init__(self, max_entries: int = 1_000_000) -> None:
        if not isinstance(max_entries, int) or max_entries < 1:
            raise ValueError(f"ReuseCache.max_entries must be a positive integer, "
                             f"got {max_entries!r}")
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, tuple[float, float, float]] = OrderedDict()
        self._tables: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._num_cells = 0
        self.memo: OrderedDict[tuple, object] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        """Cached timings: instance entries plus table cells."""
        return len(self._entries) + self._num_cells

    def get(self, key: tuple) -> tuple[float, float, float] | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: tuple, value: tuple[float, float, float]) -> None:
        self._entries[key] = value
        self._shrink()

    def get_table(self, key: tuple) -> np.ndarray | None:
        table = self._tables.get(key)
        if table is not None:
            self._tables.move_to_end(key)
        return table

    def put_table(self, key: tuple, table: np.ndarray) -> None:
        """Store (or replace) a table; the caller keeps filling it in place."""
        old = self._tables.pop(key, None)
        if old is not None:
            self._num_cells -= old.size
        self._tables[key] = table
        self._num_cells += table.size
        self._shrink()

    def remember(self, key: tuple, value: object) -> None:
        """A derived answer for this process (``memo``), bounded like the rest."""
        self.memo[key] = value
        if len(self.memo) > self.max_entries:
            self.memo.popitem(last=False)

    def _shrink(self) -> None:
        while len(self) > self.max_entries and self._tables:
            _, table = self._tables.popitem(last=False)
            self._num_cells -= table.size
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self._tables.clear()
        self._num_cells = 0
        self.memo.clear()

    def save(self, path: str | Path, engine: Engine) -> Path:
        """Write the entries and tables, tagged with ``engine``'s hash.

        The file is written beside its destination and renamed over it, so
        processes sharing a cache file (sweep workers) never read half a file;
        the last one to save wins.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with tmp.open("wb") as f:  # created with the umask's mode, as the file was
                pickle.dump({"format": CACHE_FORMAT, "engine_hash": engine_hash(engine),
                             "entries": list(self._entries.items()),
                             "tables": list(self._tables.items())}, f)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def load(self, path: str | Path, engine: Engine) -> int:
        """Add the entries and tables saved at ``path``; return the timings added.

        Raises ValueError if the file was saved for a different engine
        configuration or is not a cache file; nothing is added then.
        """
        path = Path(path)
        try:
            with path.open("rb") as f:
                data = pickle.load(f)
            entries, tables = list(data["entries"]), list(data["tables"])
            if not all(isinstance(t, np.ndarray) for _, t in tables):
                raise TypeError("a table is not an array")
        except Exception as exc:  # unreadable, truncated, or pickled by another version
            raise ValueError(f"reuse cache {str(path)!r} cannot be read: "
                             f"{type(exc).__name__}: {exc}") from None
        if data.get("format") != CACHE_FORMAT:
            raise ValueError(f"reuse cache {str(path)!r} is not a llmsim_nb reuse cache "
                             f"(format {CACHE_FORMAT})")
        expected = engine_hash(engine)
        if data.get("engine_hash") != expected:
            raise ValueError(f"reuse cache {str(path)!r} was made for engine configuration "
                             f"{data.get('engine_hash')}, not this one ({expected}); it "
                             "would give another configuration's timings")
        for key, value in entries:
            self.put(key, value)
        for key, table in tables:
            self.put_table(key, table)
        return len(entries) + sum(table.size for _, table in tables)


class ReuseEngine(Engine):
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
        (chunks of a partly cached prompt, reloads) are built and timed. The
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
            attention = []
            by_rows = self.inner.pure and not self.inner.expensive
            for i, t in enumerate(templates):
                if t.kind.is_attention:
                    attention.append(i)
                elif by_rows:
                    totals[i] = self._row_latency(t, dtype_bytes, rows)
                else:
                    totals[i] = self.time_op(t.instantiate(batch, dtype_bytes, num_rows)).total
            entry = (templates, totals, tuple(attention))
            self.cache.remember(key, entry)
        else:
            memo.move_to_end(key)
            self.cache.hits += len(templates) - len(entry[2])
        totals = entry[1]
        if entry[2]:
            totals = totals.copy()
            if self.inner.expensive:  # instance by instance through the cache
                for i in entry[2]:
                    totals[i] = self.time_op(templates[i].instantiate(batch, dtype_bytes)).total
            else:
                latency = self._attention_latency(templates, entry[2], batch, dtype_bytes)
                for j, i in enumerate(entry[2]):
                    # Row by row: a 1-d sum (numpy's 2-d axis sums add in another order).
                    totals[i] = float(latency[j].sum())
        return totals

    def _row_latency(self, template: OpTemplate, dtype_bytes: int, rows: int) -> float:
        """Latency of non-attention ``template`` on ``rows`` token rows.

        A miss times the whole chunk of ``ROW_CHUNK`` token counts around
        ``rows`` in one call (:meth:`OpTemplate.dense_rows`): each instance is
        the single-instance op's, so the float equals ``time_op(op).total``.
        """
        chunk = rows // ROW_CHUNK
        # The template (its name included: an engine may treat an op by name,
        # as the gpu engine does rotary embeddings) and the chunk of counts.
        key = ("rows", template, dtype_bytes, chunk)
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

    def _attention_latency(self, templates: tuple[OpTemplate, ...], positions: tuple[int, ...],
                           batch: BatchShape, dtype_bytes: int) -> np.ndarray:
        """Per attention op (rows) and batch entry (columns), seconds."""
        query, context = batch.num_query_tokens, batch.num_context_tokens
        decode = query == 1
        if decode.all():
            return self._shape_table(templates, positions, dtype_bytes, DECODE, context)
        prompt = ~decode & (context == 0)
        if prompt.all():
            return self._shape_table(templates, positions, dtype_bytes, PROMPT, query)
        latency = np.empty((len(positions), len(query)))
        if decode.any():
            latency[:, decode] = self._shape_table(templates, positions, dtype_bytes, DECODE,
                                                   context[decode])
        if prompt.any():
            latency[:, prompt] = self._shape_table(templates, positions, dtype_bytes, PROMPT,
                                                   query[prompt])
        rest = ~(decode | prompt)
        if rest.any():
            part = BatchShape(batch.request_ids[rest], query[rest], context[rest],
                              batch.num_logit_tokens[rest])
            for j, i in enumerate(positions):
                latency[j, rest] = self.inner.time_op(
                    templates[i].instantiate(part, dtype_bytes)).latency
        return latency

    def _shape_table(self, templates: tuple[OpTemplate, ...], positions: tuple[int, ...],
                     dtype_bytes: int, shape: int, lengths: np.ndarray) -> np.ndarray:
        """Latency of the attention ops at ``positions`` for instances of one
        ``shape`` (``DECODE``: one query token after ``lengths`` cached ones;
        ``PROMPT``: ``lengths`` query tokens, nothing cached), ops by rows.

        The table holds NaN where a length was never timed. A pure engine
        fills the whole span the table has grown to in one call per op
        (lengths creep up a token per iteration); another engine times only
        the lengths asked for (it may count what it times, as the profiled
        engine counts its fallbacks).
        """
        # The table's stable key (equal templates give equal keys, whichever
        # objects hold them) is built once per templates object; it carries its
        # hash, so the lookup that keeps the cache's LRU order is cheap.
        cache = self.cache
        hot = ("key", id(templates), dtype_bytes, shape)
        entry = cache.memo.get(hot)
        if entry is not None and entry[0] is templates:
            key = entry[1]
        else:
            key = TableKey(("attention", shape, dtype_bytes,
                            tuple(templates[i] for i in positions)))
            cache.remember(hot, (templates, key))
        table = cache.get_table(key)
        if table is None:
            table = np.empty((len(positions), 0))
        size = int(lengths.max()) + 1
        if table.shape[1] < size:
            grown = np.full((len(positions), max(size, 2 * table.shape[1], 256)), np.nan)
            grown[:, :table.shape[1]] = table
            table = grown
            cache.put_table(key, table)
        latency = table[:, lengths]
        missing = np.isnan(latency[0])
        if not missing.any():
            self.cache.hits += len(positions) * len(lengths)
            return latency
        fresh = (np.flatnonzero(np.isnan(table[0])) if self.inner.pure
                 else np.unique(lengths[missing]))
        if shape == DECODE:
            fresh = fresh[fresh >= 0]
            part = BatchShape(fresh, np.ones_like(fresh), fresh, np.ones_like(fresh))
        else:  # a prompt has at least one token
            fresh = fresh[fresh >= 1]
            part = BatchShape(fresh, fresh, np.zeros_like(fresh), np.ones_like(fresh))
        for j, i in enumerate(positions):
            table[j, fresh] = self.inner.time_op(
                templates[i].instantiate(part, dtype_bytes)).latency
        num_fresh = int(np.count_nonzero(np.isin(lengths, fresh)))
        self.cache.misses += len(positions) * len(fresh)
        self.cache.hits += len(positions) * (len(lengths) - num_fresh)
        return table[:, lengths]

    def _time_instances(self, op: Op) -> OpTiming:
        kind, batch = op.kind, op.batch
        cache = self.cache
        if op.num_instances == 1:  # most ops: one key, no deduplication
            key = (op.name, kind, batch, op.m.item(0), op.n.item(0), op.k.item(0), op.flops.item(0),
                   op.bytes_read.item(0), op.bytes_written.item(0))
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
