"""Attention tables of the reuse cache: per-instance attention seconds by shape.

:class:`AttentionTables` is the part of :class:`~.engine.ReuseEngine` that
answers a closed-form engine's attention operators (see that module's
docstring): decodes (one query token) from a table indexed by context length,
whole prompts with an empty cache from a table indexed by prompt length, and
other instances (chunks of a partly cached prompt, prefix-cache hits) from
``(query, context)`` pairs remembered in the memo. It expects ``self.cache``
(a :class:`~.cache.ReuseCache`) and ``self.inner`` (the wrapped engine).

Every float is the engine's for the same instance fields, and each operator's
total is a 1-d numpy sum over its per-instance latencies in batch order
(numpy's 2-d axis sums add in another order), so totals are bit-identical to
timing the built operators.
"""

from __future__ import annotations

import math

import numpy as np

from ...models.ops import BatchShape
from ...models.template import OpTemplate
from .keys import DECODE, PROMPT, attention_key

#: ``np.add.reduce``: what ``ndarray.sum()`` computes for a 1-d array, without
#: the method's Python-level wrapper (this runs every iteration).
_reduce = np.add.reduce


def _split_others(query: np.ndarray, context: np.ndarray, decode: np.ndarray
                  ) -> tuple[np.ndarray, list[int], list[int], list[int], list[int], list[int]]:
    """The entries of a batch that are not decodes, split into prompts on an
    empty cache (their positions and lengths) and the rest (positions, query
    and context lengths: chunks, prefix-cache hits). They are few (a chunk, a
    handful of prompts): plain lists."""
    others = (~decode).nonzero()[0]
    prompt_at, prompt_len, rest_at, rest_query, rest_context = [], [], [], [], []
    for i, q, c in zip(others.tolist(), query[others].tolist(), context[others].tolist()):
        if c:
            rest_at.append(i)
            rest_query.append(q)
            rest_context.append(c)
        else:
            prompt_at.append(i)
            prompt_len.append(q)
    return others, prompt_at, prompt_len, rest_at, rest_query, rest_context


class AttentionTables:
    """Attention instance timings from tables (mixed into ``ReuseEngine``)."""

    __slots__ = ()

    def _attention_totals(self, templates: tuple[OpTemplate, ...], positions: tuple[int, ...],
                          batch: BatchShape, dtype_bytes: int) -> list:
        """Per attention op at ``positions``, its seconds summed over ``batch``."""
        query, context = batch.num_query_tokens, batch.num_context_tokens
        if batch.num_tokens == len(query):
            # Every query length is >= 1 (a BatchShape invariant) and they add
            # up to one per request: all are decodes.
            shape, lengths = DECODE, context
        else:
            decode = query == 1
            if decode.any() or context.any():  # not every entry a prompt on an empty cache
                sums = self._mixed_totals(templates, positions, batch, dtype_bytes, decode)
                if sums is None:  # a table to make, grow or fill: the general path
                    latency = self._attention_latency(templates, positions, batch,
                                                      dtype_bytes, decode)
                    sums = [_reduce(row) for row in latency]
                return sums
            shape, lengths = PROMPT, query
        # Most steps: the table holds every length. Each op's row is indexed
        # on its own (cheaper than a 2-d take of the rows; the same 1-d array
        # is summed). A length past the table's end (IndexError), a NaN sum
        # or an empty batch take the general path below.
        table = self._cached_table(templates, positions, dtype_bytes, shape)
        if table is not None and len(lengths):
            try:
                sums = [_reduce(row[lengths]) for row in table]
            except IndexError:
                sums = None
            if sums is not None and not math.isnan(sums[0]):
                self.cache.hits += len(positions) * len(lengths)
                return sums
        table, latency = self._table_rows(templates, positions, dtype_bytes, shape, lengths)
        sums = [_reduce(row) for row in latency]
        # A NaN cell (a length never timed) makes its row's sum NaN; a sum that
        # is not NaN has none. Only row 0 says what is missing (every row of a
        # column is timed at once), as in :meth:`_shape_table`.
        if math.isnan(sums[0]):
            missing = np.isnan(latency[0])
            if missing.any():
                latency = self._fill(table, templates, positions, dtype_bytes, shape, lengths,
                                     missing)
                return [_reduce(row) for row in latency]
        self.cache.hits += len(positions) * len(lengths)
        return sums

    def _mixed_totals(self, templates: tuple[OpTemplate, ...], positions: tuple[int, ...],
                      batch: BatchShape, dtype_bytes: int, decode: np.ndarray) -> list | None:
        """:meth:`_attention_latency`'s sums when its tables already hold every
        decode and prompt length the batch asks for; None (with nothing
        counted or remembered) when they do not, for the general path.

        Each op's row is built in batch order from the same floats (decodes
        from the decode table, prompts from the prompt table, the other
        entries from their remembered pairs), so its 1-d sum is the general
        path's. The pairs are timed only once the tables are known to answer,
        so a fall-back never times or counts a pair twice.
        """
        query, context = batch.num_query_tokens, batch.num_context_tokens
        others, prompt_at, prompt_len, rest_at, rest_query, rest_context = _split_others(
            query, context, decode)
        num_decode = len(query) - len(others)
        try:
            if num_decode:
                table = self._cached_table(templates, positions, dtype_bytes, DECODE)
                if table is None:
                    return None
                # The decodes' contexts; 0 elsewhere (those entries are overwritten).
                at = context * decode
                rows = [row[at] for row in table]
            else:
                rows = [np.empty(len(query)) for _ in positions]
            if prompt_at:
                table = self._cached_table(templates, positions, dtype_bytes, PROMPT)
                if table is None:
                    return None
                lengths = np.array(prompt_len, dtype=np.int64)
                for row, timed in zip(rows, table):
                    row[prompt_at] = timed[lengths]
        except IndexError:  # a length past a table's end
            return None
        # A NaN in row 0 (a length never timed, as the general path reads it)
        # makes its sum NaN; the other entries are zeroed for the test.
        first = rows[0]
        if rest_at:
            first[rest_at] = 0.0
        if math.isnan(_reduce(first)):
            return None
        self.cache.hits += len(positions) * (num_decode + len(prompt_at))
        if rest_at:
            at = np.array(rest_at, dtype=np.int64)
            for row, i in zip(rows, positions):
                row[at] = self._pair_latency(templates[i], dtype_bytes, rest_query,
                                             rest_context)
        return [_reduce(row) for row in rows]

    def _attention_latency(self, templates: tuple[OpTemplate, ...], positions: tuple[int, ...],
                           batch: BatchShape, dtype_bytes: int,
                           decode: np.ndarray) -> np.ndarray:
        """Per attention op (rows) and batch entry (columns), seconds, for a
        batch that is neither all decodes nor all prompts on an empty cache
        (``decode``: its entries of one query token). The decodes are read
        first, then the prompts, then the other entries op by op."""
        query, context = batch.num_query_tokens, batch.num_context_tokens
        latency = np.empty((len(positions), len(query)))
        if np.count_nonzero(decode):
            latency[:, decode] = self._shape_table(templates, positions, dtype_bytes, DECODE,
                                                   context[decode])
        _, prompt_at, prompt_len, rest_at, rest_query, rest_context = _split_others(
            query, context, decode)
        if prompt_at:
            latency[:, prompt_at] = self._shape_table(
                templates, positions, dtype_bytes, PROMPT, np.array(prompt_len, dtype=np.int64))
        if rest_at:
            at = np.array(rest_at, dtype=np.int64)
            for j, i in enumerate(positions):
                latency[j, at] = self._pair_latency(templates[i], dtype_bytes, rest_query,
                                                    rest_context)
        return latency

    def _pair_latency(self, template: OpTemplate, dtype_bytes: int, queries: list[int],
                      contexts: list[int]) -> list[float]:
        """Latency of attention ``template`` for instances of ``queries`` tokens
        after ``contexts`` cached ones (non-empty caches: prompt chunks,
        prefix-cache hits), each ``(query, context)`` pair remembered. The
        misses are timed together; instances are timed independently (the
        engine contract), so each float is the one the engine gives inside
        any batch."""
        memo, cache, pairs = self.cache.memo, self.cache, {}
        out: list = [0.0] * len(queries)
        missing: list[int] = []
        for k, pair in enumerate(zip(queries, contexts)):
            entry = memo.get(("pair", id(template), dtype_bytes, pair))
            if entry is not None and entry[0] is template:
                out[k] = entry[1]
                cache.hits += 1
            else:  # a pair seen before in this batch is timed with its first one
                pairs.setdefault(pair, len(pairs))
                missing.append(k)
        if missing:
            order = list(pairs)
            part = BatchShape(np.arange(len(order), dtype=np.int64),
                              np.array([q for q, _ in order], dtype=np.int64),
                              np.array([c for _, c in order], dtype=np.int64),
                              np.zeros(len(order), dtype=np.int64))
            timed = self.inner.time_op(template.instantiate(part, dtype_bytes)).latency
            cache.misses += len(order)
            for pair, value in zip(order, timed.tolist()):
                cache.remember(("pair", id(template), dtype_bytes, pair), (template, value))
            for k in missing:
                out[k] = timed[pairs[(queries[k], contexts[k])]]
        return out

    def _shape_table(self, templates: tuple[OpTemplate, ...], positions: tuple[int, ...],
                     dtype_bytes: int, shape: int, lengths: np.ndarray) -> np.ndarray:
        """Latency of the attention ops at ``positions`` for instances of one
        ``shape`` (``DECODE``: one query token after ``lengths`` cached ones;
        ``PROMPT``: ``lengths`` query tokens, nothing cached), ops by rows."""
        table, latency = self._table_rows(templates, positions, dtype_bytes, shape, lengths)
        missing = np.isnan(latency[0])
        if not missing.any():
            self.cache.hits += len(positions) * len(lengths)
            return latency
        return self._fill(table, templates, positions, dtype_bytes, shape, lengths, missing)

    def _table_rows(self, templates: tuple[OpTemplate, ...], positions: tuple[int, ...],
                    dtype_bytes: int, shape: int, lengths: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
        """The table of ``shape`` for the ops at ``positions``, grown to hold
        every length, and its columns at ``lengths`` (NaN: never timed).

        A table grows to at least twice its width (lengths creep up a token
        per iteration), so most steps index it at once; a length past its
        end (an IndexError: lengths are >= 0) grows it as before.
        """
        cache = self.cache
        key = self._table_key(templates, positions, dtype_bytes, shape)
        table = cache.get_table(key)
        if table is not None and len(lengths):
            try:
                return table, table[:, lengths]
            except IndexError:
                pass
        if table is None:
            table = np.empty((len(positions), 0))
        size = int(lengths.max()) + 1
        if table.shape[1] < size:
            grown = np.full((len(positions), max(size, 2 * table.shape[1], 256)), np.nan)
            grown[:, :table.shape[1]] = table
            table = grown
            cache.put_table(key, table)
        return table, table[:, lengths]

    def _table_key(self, templates: tuple[OpTemplate, ...], positions: tuple[int, ...],
                   dtype_bytes: int, shape: int):
        """The cache key of the table of ``shape`` for the ops at ``positions``.

        The table's stable key (equal templates give equal keys, whichever
        objects hold them) is built once per templates object; it carries its
        hash, so the lookup that keeps the cache's LRU order is cheap.
        """
        cache = self.cache
        hot = ("key", id(templates), dtype_bytes, shape)
        entry = cache.memo.get(hot)
        if entry is not None and entry[0] is templates:
            return entry[1]
        key = attention_key(shape, dtype_bytes, tuple(templates[i] for i in positions))
        cache.remember(hot, (templates, key))
        return key

    def _cached_table(self, templates: tuple[OpTemplate, ...], positions: tuple[int, ...],
                      dtype_bytes: int, shape: int) -> np.ndarray | None:
        """The table of ``shape`` for the ops at ``positions`` as the cache holds
        it (None: not yet made), its LRU place refreshed."""
        return self.cache.get_table(self._table_key(templates, positions, dtype_bytes, shape))

    def _fill(self, table: np.ndarray, templates: tuple[OpTemplate, ...],
              positions: tuple[int, ...], dtype_bytes: int, shape: int, lengths: np.ndarray,
              missing: np.ndarray) -> np.ndarray:
        """Time the lengths ``table`` lacks and return its columns at ``lengths``.

        A pure engine fills the whole span the table has grown to in one call
        per op; another engine times only the lengths asked for (it may count
        what it times, as the profiled engine counts its fallbacks).
        """
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
