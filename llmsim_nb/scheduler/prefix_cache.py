"""A paged KV block pool with automatic prefix caching (vLLM V1 semantics).

Mirrors ``BlockPool`` / ``KVCacheManager`` of ``vllm/v1/core``:

- A full block that holds computed (or about-to-be-computed) tokens is
  registered under its chained hash (:mod:`.block_hasher`). Requests whose
  prompts share a prefix share those blocks, counted by a reference count.
- A request's cached prefix is the longest run of its leading full blocks
  whose hashes are registered, at most ``(num_tokens - 1) // block_size``
  blocks: a request always computes at least its last token (the lookups
  are in :mod:`.prefix_lookup`).
- Freed blocks go to the back of the free queue, a request's blocks in
  reverse order (its tail blocks, the least likely to be shared, are reused
  first), and stay registered. Allocation takes blocks from the front (least
  recently freed first) and drops the hash of a registered one: that is the
  LRU eviction. A block with a reference is never in the free queue, so it is
  never evicted.
- A cache hit on a free block takes it out of the queue ("touch").
- vLLM registers a full block when it is allocated for tokens the iteration
  will compute (``cache_blocks`` after ``allocate_slots``), so a request
  admitted later in the same iteration already finds it (each layer writes the
  whole batch's K/V before its attention reads the cache). Here
  :meth:`cache_full_blocks` registers; the scheduler calls it then for every
  block another request could hit, and for the others when their request gives
  its blocks back (:mod:`.block_registration`: the same results).

Invariants
----------
- ``num_free_blocks + sum(ref_count of blocks in use > 0) counts`` : a block is
  free (in the queue, ``ref == 0``) or referenced by >= 1 request, never both.
- ``num_used_blocks <= num_blocks``; a request holding ``t`` tokens holds
  ``ceil(t / block_size)`` blocks.
- A hash maps only to blocks whose registered hash it is.

Differences from vLLM, on purpose: no null block (block 0 is a normal block,
so ids start at 0 as :class:`~.kv_cache.KVCacheManager` does); one KV cache
group (all layers full attention); no speculative or encoder tokens.

Never-used blocks are not materialised (a system may hold hundreds of
millions): they are the range ``[_next_unused, num_blocks)`` at the front of
the free queue, which no freed block ever precedes.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from itertools import islice, repeat

from .block_hasher import BlockHasher
from .kv_cache import PagedBlocks
from .prefix_lookup import PrefixLookup


def _fresh(ref: dict[int, int], table: list[int], first: int, n: int) -> None:
    """Give ``table`` the never-used blocks ``first .. first + n - 1``, one reference
    each (one block, a decode's growth, without building a range)."""
    if n == 1:
        ref[first] = 1
        table.append(first)
    else:
        new = range(first, first + n)
        ref.update(dict.fromkeys(new, 1))
        table.extend(new)


class PrefixCachingKVManager(PrefixLookup, PagedBlocks):
    """Allocates KV blocks to requests and caches full blocks by content.

    Parameters
    ----------
    num_blocks : int
        Blocks that fit in device memory after weights and activations.
    block_size : int
        Tokens per block.
    enable_caching : bool
        False makes it a plain pool with an LRU free queue (no hashes, no hits).
    num_host_blocks : int
        Blocks of the host-memory tier (0 = none). A registered block evicted
        from the device is copied there (its hash joins the host LRU, whose
        least recently used entry is dropped when full); a lookup that stops at
        a device miss goes on in the host tier, and those hits are loaded back
        into new device blocks. :attr:`num_stored_blocks` and
        :attr:`num_loaded_blocks` count the copies each way.
    """

    def __init__(self, num_blocks: int, block_size: int, enable_caching: bool = True,
                 num_host_blocks: int = 0) -> None:
        super().__init__(num_blocks, block_size)
        self.enable_caching = enable_caching
        self._freed: OrderedDict[int, None] = OrderedDict()  # freed blocks, LRU first
        self._ref: dict[int, int] = {}                       # block -> references (> 0)
        self._hash_of: dict[int, int] = {}                   # block -> its registered hash
        # hash -> the block that answers lookups (the first registered of those
        # holding it), and the later duplicates in registration order.
        self._cached: dict[int, int] = {}
        self._dups: dict[int, list[int]] = {}
        self._num_registered: dict[int, int] = {}            # request -> leading blocks hashed
        # Hashes whose lookup answer changed (evicted, or moved to a duplicate),
        # in order, for the lookups remembered on hashers (find_cached_prefix);
        # emptied when long, which with a new epoch forgets every remembered one.
        self._changed: list[int] = []
        self._epoch = 0
        self.num_evicted_blocks = 0                          # cached blocks reused for others
        if num_host_blocks < 0 or (num_host_blocks and not enable_caching):
            raise ValueError(f"PrefixCachingKVManager.num_host_blocks={num_host_blocks}: must "
                             f"be >= 0, and 0 without caching")
        self.num_host_blocks = num_host_blocks
        self._host: OrderedDict[int, None] = OrderedDict()   # host-tier hashes, LRU first
        self.num_stored_blocks = 0                           # device -> host copies
        self.num_loaded_blocks = 0                           # host -> device copies

    # ------------------------------------------------------------- queries
    # num_free_blocks (never used, or freed and maybe cached), num_used_blocks,
    # usage (as vLLM's), blocks_for, num_blocks_held, block_ids, block_table:
    # PagedBlocks'.
    @property
    def num_cached_blocks(self) -> int:
        """Blocks registered under a hash (referenced or free)."""
        return len(self._hash_of)

    def ref_count(self, block: int) -> int:
        return self._ref.get(block, 0)

    def free_queue(self) -> list[int]:
        """The free queue front to back (never-used ids not included), for tests."""
        return list(self._freed)

    def is_cached(self, block_hash: int) -> bool:
        return block_hash in self._cached

    def host_queue(self) -> list[int]:
        """Hashes in the host tier, least recently used first, for tests."""
        return list(self._host)

    def _load_from_host(self, host_hashes) -> None:
        """Read these host-tier blocks (most recent in the host LRU now). The
        loads come before the stores of the same allocation, so a store that
        then pushes one of them out of a full host tier takes nothing away."""
        for h in host_hashes:
            self._host.move_to_end(h)
        self.num_loaded_blocks += len(host_hashes)

    # ------------------------------------------------------------- changes
    def num_new_blocks(self, request_id: int, num_tokens: int, num_hit_blocks: int = 0) -> int:
        """Blocks to take from the free queue for the request to hold ``num_tokens``
        tokens, given ``num_hit_blocks`` cache hits it will also hold."""
        return max(0, self.blocks_for(num_tokens) - self.num_blocks_held(request_id)
                   - num_hit_blocks)

    def can_hold(self, request_id: int, num_tokens: int,
                 hit_blocks: list[int] | tuple[int, ...] = ()) -> bool:
        """Whether :meth:`allocate_slots` of ``num_tokens`` with these hits would
        succeed now (nothing changes). Hits with no reference sit in the free
        queue, so they do not count as free for the new blocks."""
        need = self.num_new_blocks(request_id, num_tokens, len(hit_blocks))
        free = self.num_free_blocks
        # 0 <= free hits <= len(hit_blocks): count them only when that decides.
        if need > free:
            return False
        if need <= free - len(hit_blocks):
            return True
        free_hits = len(hit_blocks) - sum(map(self._ref.__contains__, hit_blocks))
        return need <= free - free_hits

    def allocate_slots(self, request_id: int, num_tokens: int,
                       hit_blocks: list[int] | tuple[int, ...] = (),
                       host_hashes: list[int] | tuple[int, ...] = ()) -> bool:
        """Make the request hold ``num_tokens`` tokens: its hit blocks first,
        then new blocks. False (and nothing changes) if the pool is short.

        Hit blocks with no reference sit in the free queue; touching them takes
        them out, so they do not count as free blocks for the new ones.
        ``host_hashes`` are the host-tier hits that follow the device hits
        (:meth:`find_host_prefix`): new blocks are loaded from them.
        """
        if not self.can_hold(request_id, num_tokens, hit_blocks):
            return False
        need = self.num_new_blocks(request_id, num_tokens, len(hit_blocks))
        ref = self._ref
        table = self._tables.setdefault(request_id, [])
        for b in hit_blocks:  # touch
            n = ref.get(b, 0)
            if n == 0:
                del self._freed[b]
            ref[b] = n + 1
            table.append(b)
        if hit_blocks:
            self._num_registered[request_id] = len(table)
        if host_hashes:
            self._load_from_host(host_hashes)
        self._take(table, need)
        return True

    def grow(self, request_id: int, num_new_blocks: int) -> None:
        """Give a request holding blocks ``num_new_blocks`` more (no hits): the fast
        path of :meth:`allocate_slots` for running requests, whose caller has
        checked that the free blocks cover every request's growth."""
        if num_new_blocks > self.num_free_blocks:
            raise RuntimeError(f"request {request_id} needs {num_new_blocks} blocks but only "
                               f"{self.num_free_blocks} are free")
        self._take(self._tables[request_id], num_new_blocks)

    def grow_many(self, request_ids: list[int], num_new_blocks: list[int]) -> None:
        """:meth:`grow` each request in turn by its number of blocks, as one take
        from the free queue: the same blocks go to the same requests, with the
        same evictions in the same order, as one :meth:`grow` call each."""
        total = sum(num_new_blocks)
        if total > self.num_free_blocks:
            raise RuntimeError(f"{len(request_ids)} requests need {total} blocks but only "
                               f"{self.num_free_blocks} are free")
        tables, ref, at = self._tables, self._ref, self._next_unused
        if at + total <= self.num_blocks:  # never-used blocks only: the next ids in turn
            for request_id, n in zip(request_ids, num_new_blocks):
                _fresh(ref, tables[request_id], at, n)
                at += n
            self._next_unused = at
            return
        new: list[int] = []
        self._take(new, total)
        at = 0
        for request_id, n in zip(request_ids, num_new_blocks):
            tables[request_id] += new[at:at + n]
            at += n

    def _take(self, table: list[int], need: int) -> None:
        """Append ``need`` new blocks to ``table``: never-used ones first, then
        the least recently freed (evicting their hashes)."""
        ref, at = self._ref, self._next_unused
        fresh = min(need, self.num_blocks - at)
        if fresh:  # never-used blocks first, in id order
            self._next_unused = at + fresh
            _fresh(ref, table, at, fresh)
        k = need - fresh
        if k <= 2:  # a decode's growth: one at a time is quicker
            for _ in range(k):
                b = self._pop_free()
                ref[b] = 1
                table.append(b)
        else:
            blocks = self._pop_many(k)
            ref.update(dict.fromkeys(blocks, 1))
            table += blocks

    def _pop_many(self, k: int) -> list[int]:
        """The ``k`` least recently freed blocks, front first, their hashes
        evicted: ``k`` calls of :meth:`_pop_free`, with the loops in C where no
        hash has a duplicate block (the common case)."""
        if self._dups:  # a duplicate's eviction moves the answer: one at a time
            return [self._pop_free() for _ in range(k)]
        freed = self._freed
        blocks = list(islice(freed, k))
        deque(map(freed.__delitem__, blocks), maxlen=0)
        hash_of = self._hash_of
        if not hash_of:
            return blocks
        hashes = [h for h in map(hash_of.pop, blocks, repeat(None)) if h is not None]
        if hashes:  # without duplicates, each evicted block answers for its hash
            deque(map(self._cached.__delitem__, hashes), maxlen=0)
            self._note_changed_many(hashes)
            self.num_evicted_blocks += len(hashes)
            if self.num_host_blocks:
                for h in hashes:
                    self._offload(h)
        return blocks

    def _pop_free(self) -> int:
        """The least recently freed block, its hash (if any) evicted."""
        b, _ = self._freed.popitem(last=False)
        h = self._hash_of.pop(b, None)
        if h is not None:  # evict: the block is about to hold other tokens
            if self._cached[h] == b:
                dups = self._dups.get(h)
                if dups:
                    self._cached[h] = dups.pop(0)
                    if not dups:
                        del self._dups[h]
                else:
                    del self._cached[h]
                self._note_changed(h)
            else:
                dups = self._dups[h]
                dups.remove(b)
                if not dups:
                    del self._dups[h]
            self.num_evicted_blocks += 1
            if self.num_host_blocks:
                self._offload(h)
        return b

    def _offload(self, h: int) -> None:
        host = self._host
        if h in host:  # already there (loaded from it earlier): no copy needed
            host.move_to_end(h)
            return
        host[h] = None
        self.num_stored_blocks += 1
        if len(host) > self.num_host_blocks:
            host.popitem(last=False)

    def cache_full_blocks(self, request_id: int, hasher: BlockHasher, num_tokens: int) -> None:
        """Register the request's full blocks among its first ``num_tokens``
        tokens (those computed by the end of this iteration)."""
        self.cache_full_blocks_many([request_id], [hasher], [num_tokens])

    def cache_full_blocks_many(self, request_ids: list[int], hashers: list[BlockHasher],
                               num_tokens: list[int]) -> None:
        """:meth:`cache_full_blocks` of each request in turn (one call for the
        running requests of an iteration: the same registrations in the same
        order)."""
        if not self.enable_caching:
            return
        tables, registered, B = self._tables, self._num_registered, self.block_size
        hash_of, cached = self._hash_of, self._cached
        for request_id, hasher, n in zip(request_ids, hashers, num_tokens):
            table = tables[request_id]
            start = registered.get(request_id, 0)
            stop = n // B
            if stop > len(table):
                stop = len(table)
            if stop <= start:
                continue  # no block became full
            hashes = hasher.hashes
            if len(hashes) <= stop:  # hashes[k + 1] names block k
                hasher.extend(stop)
            blocks, names = table[start:stop], hashes[start + 1:stop + 1]
            if hash_of.keys().isdisjoint(blocks) and cached.keys().isdisjoint(names) \
                    and len(set(names)) == len(names):
                # The common case, in C: new blocks (a hit is registered already)
                # and new hashes (no duplicate, none repeated: a request's
                # chained hashes differ short of a 64-bit collision).
                hash_of.update(zip(blocks, names))
                cached.update(zip(names, blocks))
                registered[request_id] = stop
                continue
            for k in range(start, stop):
                b = table[k]
                if b in hash_of:  # already registered (a block reached by a hit)
                    continue
                h = hashes[k + 1]
                hash_of[b] = h
                if h in cached:  # a duplicate: computed again while the first was cached
                    self._dups.setdefault(h, []).append(b)
                else:
                    cached[h] = b
            registered[request_id] = stop

    def free(self, request_id: int) -> list[int]:
        """Drop the request's references; blocks left unreferenced join the back
        of the free queue, tail first, and stay cached. Returns its blocks."""
        table = self._tables.pop(request_id, [])
        self._num_registered.pop(request_id, None)
        ref, free = self._ref, self._freed
        head = table
        if len(table) > 1:
            # Shared blocks are usually a leading run (prefix hits): the blocks
            # after it, referenced only here, are freed in C, tail first; then
            # the run, one at a time (the same queue order as one loop).
            refs = list(map(ref.__getitem__, table))
            try:
                first = refs.index(1)
            except ValueError:  # every block shared
                first = len(refs)
            if first < len(refs) and max(refs[first:]) == 1:
                tail = table[first:]
                deque(map(ref.__delitem__, tail), maxlen=0)
                free.update(dict.fromkeys(reversed(tail)))
                head = table[:first]
        for b in reversed(head):
            n = ref[b] - 1
            if n:
                ref[b] = n
            else:
                del ref[b]
                free[b] = None
        return table

    def reset_prefix_cache(self) -> None:
        """Forget every registered hash (vLLM's ``reset_prefix_cache``)."""
        self._hash_of.clear()
        self._cached.clear()
        self._changed.clear()
        self._epoch += 1
        self._dups.clear()
        self._num_registered.clear()
