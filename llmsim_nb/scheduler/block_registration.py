"""When a request's full KV blocks join the prefix cache's hash index.

vLLM registers a full block under its hash as soon as the block is allocated
for tokens the iteration computes (``cache_full_blocks`` after
``allocate_slots``). :class:`BlockRegistration` keeps that for every block some
other request could hit, and postpones the rest to the moment the request
gives its blocks back (it finishes or is preempted), when they are registered
in one pass. The results do not change, because nothing can observe a
postponed block earlier:

- A block is looked up only by a request whose content yields the same hash,
  i.e. the same pieces under the same chain of parents. A request's generated
  tokens are pieces of its ``output_id`` segment, so a block holding any of
  them can be matched only by a prompt that repeats that id (a later turn of
  a conversation) or by a request with the same ``output_id``. Unless such a
  request has been added, the request's blocks from the first one holding a
  generated token (``(P // B) * B`` tokens in) are *private*; a request
  without content (ids unique to it, :mod:`.block_hasher`) is private from its
  first block.
- The only request that can hit a private block is its owner, after a
  preemption: the blocks are registered when it is preempted, before it looks
  them up again.
- A block is evicted only when free, and a request's blocks become free only
  when it gives them back: registered by then, a postponed block is evicted
  (its hash dropped, offloaded to the host tier) exactly as an eagerly
  registered one would be.
- When a request is added that could hit another's private blocks (its prompt
  repeats that request's ``output_id``, or it has the same ``output_id``),
  the other's computed blocks are registered at once and the rest of them as
  they are allocated, exactly as vLLM would have.

Registering a block early is always exact (that is what vLLM does), so the
scheduler's paths that are not on its hot loop (the one-by-one running path,
swap-in) register every block they allocate; admissions and KV transfers
register those below ``eager_tokens`` (:meth:`BlockRegistration.admitted`).
Two shortcuts follow for requests without content, which no other
request can ever hit: a first admission does not look them up (it would find
nothing), and, without a host tier, a finished one registers nothing (its
hashes could only serve its own recomputation, which will not come).

``PrefixCachingKVManager.reset_prefix_cache`` in the middle of a run (no
scheduler calls it) is outside this argument: vLLM would register a running
request's blocks again at its next allocation, the postponed ones wait.
"""

from __future__ import annotations

import numpy as np

from ..workload.content import RequestContent
from .request_state import RUNNING

#: ``eager_tokens`` of a request whose every block is registered when allocated.
ALL = np.iinfo(np.int64).max


class BlockRegistration:
    """Which blocks of each request are registered when allocated.

    Parameters
    ----------
    lazy : bool
        False registers every block when allocated and looks every request
        up (vLLM's order; the same results, slower): the reference the tests
        hold the shortcut to.

    Attributes
    ----------
    eager_tokens : ndarray of int64
        Per request id: its blocks that hold only tokens ``< eager_tokens[i]``
        are registered when allocated, the others when it gives its blocks
        back (:data:`ALL`: every block when allocated). Read through the
        attribute: the array is replaced when it grows.
    num_unfinished_all : int
        Unfinished requests with ``eager_tokens == ALL``.
    zone : set of int
        Other requests that hold blocks and have not computed all their
        tokens ``< eager_tokens`` (a chunked prompt). While both are empty
        (the common case), the running requests' new blocks all wait until
        they are given back, and the scheduler scans none of them.
    """

    def __init__(self, lazy: bool = True) -> None:
        self.lazy = lazy
        self.eager_tokens = np.zeros(64, dtype=np.int64)
        self.num_unfinished_all = 0
        self.zone: set[int] = set()
        self._content_less: list[bool] = []
        self._owner_of: dict[int, int] = {}  # output id -> the unfinished request generating it
        self._output_of: dict[int, int] = {}  # and back
        # Every segment id of every prompt added, and every output id: one int per
        # distinct content id of the workload (which its trace holds anyway).
        self._prompt_ids: set[int] = set()
        self._output_ids: set[int] = set()

    # ------------------------------------------------------------ requests
    def add(self, i: int, content: RequestContent | None, num_prompt_tokens: int,
            block_size: int, kv, hasher_of, held_of, num_external_tokens: int = 0) -> None:
        """Classify request ``i`` (ids 0, 1, 2, ...), and register at once the
        blocks of any earlier request whose private blocks it could hit (in
        the pool ``kv``; ``hasher_of``: request id -> its
        :class:`~.block_hasher.BlockHasher`; ``held_of``: request id -> the
        tokens its blocks were given for, the open iteration's included, as
        vLLM registers them when allocated). A request
        whose KV comes from another instance (``num_external_tokens``) for
        part of its shareable blocks only registers every block when allocated
        (it is admitted by its transfer, not into the zone)."""
        if i >= len(self.eager_tokens):
            grown = np.zeros(2 * len(self.eager_tokens), dtype=np.int64)
            grown[: len(self.eager_tokens)] = self.eager_tokens
            self.eager_tokens = grown
        self._content_less.append(content is None)
        if not self.lazy:
            self._set(i, ALL)
            return
        if content is None:
            self.eager_tokens[i] = 0
            return
        owners = self._owner_of
        if owners:
            for out in owners.keys() & content.segment_ids:  # outputs this prompt repeats
                self._make_eager(self._disown(out), kv, hasher_of, held_of)
        self._prompt_ids.update(content.segment_ids)
        out = content.output_id
        seen = out in self._output_ids or out in self._prompt_ids
        self._output_ids.add(out)
        if out in owners:  # two requests generate the same ids: both eager
            self._make_eager(self._disown(out), kv, hasher_of, held_of)
            self._set(i, ALL)
        elif seen:  # another request (finished or not) generates these ids, or a
            self._set(i, ALL)  # prompt added already repeats them
        else:
            eager = num_prompt_tokens // block_size * block_size
            if 0 < num_external_tokens < eager:
                self._set(i, ALL)
                return
            owners[out] = i
            self._output_of[i] = out
            self._set(i, eager)

    def _set(self, i: int, eager_tokens: int) -> None:
        """``eager_tokens[i]``, counted in :attr:`num_unfinished_all`."""
        if eager_tokens == ALL:
            self.num_unfinished_all += 1
            self.zone.discard(i)
        self.eager_tokens[i] = eager_tokens

    def _disown(self, out: int) -> int:
        i = self._owner_of.pop(out)
        del self._output_of[i]
        return i

    def _make_eager(self, i: int, kv, hasher_of, held_of) -> None:
        """Request ``i``'s blocks are registered when allocated from now on;
        those it holds, now."""
        self._set(i, ALL)
        if kv.enable_caching and kv.num_blocks_held(i):
            kv.cache_full_blocks(i, hasher_of(i), held_of(i))

    def may_hit(self, i: int, num_preemptions: int) -> bool:
        """Whether a lookup of request ``i`` can find anything: not for a
        request without content that was never preempted (no other request
        holds its hashes, and it registered none yet)."""
        return num_preemptions > 0 or not self._content_less[i] or not self.lazy

    def admitted(self, i: int, hasher_of, num_tokens: int, kv) -> None:
        """Request ``i`` was given blocks (in ``kv``) for ``num_tokens`` tokens
        at its admission or by its KV transfer: register those that are
        registered when allocated (``hasher_of``: request id -> its hasher,
        asked only then)."""
        eager = self.eager_tokens.item(i)
        if eager:
            kv.cache_full_blocks(i, hasher_of(i), min(num_tokens, eager))
            if eager != ALL and num_tokens < eager:
                self.zone.add(i)

    def resumed(self, i: int, num_computed_tokens: int) -> None:
        """Request ``i`` holds blocks again for its computed tokens, all
        registered (a swap-in)."""
        eager = self.eager_tokens.item(i)
        if eager != ALL and num_computed_tokens < eager:
            self.zone.add(i)

    def prune(self, table) -> None:
        """After an iteration: drop from :attr:`zone` the requests that have
        computed their tokens below ``eager_tokens`` or hold no blocks."""
        computed, status, eager = table.num_computed_tokens, table.status, self.eager_tokens
        self.zone = {i for i in self.zone
                     if status.item(i) == RUNNING and computed.item(i) < eager.item(i)}

    # ------------------------------------------------------------ releases
    def release(self, ids: list[int], table, kv, hasher_of, finished: bool) -> None:
        """Before requests ``ids`` give their blocks back (``finished``, else
        preempted): register their full blocks of computed tokens."""
        zone = self.zone
        if zone:
            zone.difference_update(ids)
        if finished:
            if self.num_unfinished_all:
                eager = self.eager_tokens
                self.num_unfinished_all -= sum(1 for i in ids if eager.item(i) == ALL)
            output_of = self._output_of
            if output_of:  # finished: a later prompt repeating them finds them registered
                for i in ids:
                    out = output_of.pop(i, None)
                    if out is not None:
                        del self._owner_of[out]
        if not kv.enable_caching:
            return
        if finished and not kv.num_host_blocks:  # without content: no one can ever hit them
            content_less = self._content_less
            ids = [i for i in ids if not content_less[i]]
            if not ids:
                return
        computed = table.num_computed_tokens
        kv.cache_full_blocks_many(ids, [hasher_of(i) for i in ids],
                                  [computed.item(i) for i in ids])


__all__ = ["ALL", "BlockRegistration"]
