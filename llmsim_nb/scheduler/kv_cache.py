"""Paged KV cache: a pool of fixed-size blocks and a per-request block table.

Layout of one request's cache (``block_size = 4``, 10 tokens)::

    tokens   | 0 1 2 3 | 4 5 6 7 | 8 9 . . |
    blocks   |  id 0   |  id 1   |  id 5   |   <- ids come from the free queue

Invariants
----------
- A block id is either in the free queue or in exactly one request's table.
- ``num_free_blocks + sum(len(table) for table in tables) == num_blocks``.
- A request holding ``t`` tokens holds exactly ``ceil(t / block_size)`` blocks
  (``kv_manage='max'`` reserves up front, so it may hold more than it uses).

Block ids are handed out from the front of a FIFO free queue and returned to
its back, so a freshly started cache allocates 0, 1, 2, ... in order and a
freed block is reused only after every never-used one (as vLLM's free queue).
The never-used ids are not materialised (a large system can hold hundreds of
millions of blocks): they are the range ``[_next_unused, num_blocks)``, which
stands at the front of the queue, followed by the freed ids in ``_freed``.
"""

from __future__ import annotations

from collections import deque


class PagedBlocks:
    """What every paged KV block pool answers: capacity, occupancy, block tables.

    A subclass keeps ``_freed`` (the freed block ids, in reuse order) and
    ``_tables`` (request -> its block ids); the never-used ids are the range
    ``[_next_unused, num_blocks)``.

    Parameters
    ----------
    num_blocks : int
        Blocks that fit in device memory after weights and activations.
    block_size : int
        Tokens per block.
    """

    def __init__(self, num_blocks: int, block_size: int) -> None:
        name = type(self).__name__
        if num_blocks < 1:
            raise ValueError(f"{name}.num_blocks must be >= 1, got {num_blocks}")
        if block_size < 1:
            raise ValueError(f"{name}.block_size must be >= 1, got {block_size}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self._next_unused = 0
        self._tables: dict[int, list[int]] = {}

    @property
    def num_free_blocks(self) -> int:
        """Blocks no request holds (never used, or freed)."""
        return self.num_blocks - self._next_unused + len(self._freed)

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - self.num_free_blocks

    @property
    def usage(self) -> float:
        """Fraction of blocks held by requests, in [0, 1]."""
        return self.num_used_blocks / self.num_blocks

    def blocks_for(self, num_tokens: int) -> int:
        """Blocks needed to hold ``num_tokens`` tokens."""
        return -(-num_tokens // self.block_size)

    def num_blocks_held(self, request_id: int) -> int:
        return len(self._tables.get(request_id, ()))

    def block_ids(self, request_id: int) -> list[int]:
        """A copy of the request's block table (empty if it holds none)."""
        return list(self._tables.get(request_id, ()))

    def block_table(self) -> dict[int, list[int]]:
        """Every request's block ids, for teaching and plots."""
        return {rid: list(ids) for rid, ids in self._tables.items()}


class KVCacheManager(PagedBlocks):
    """Allocates KV blocks to requests on demand (see :class:`PagedBlocks`)."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        super().__init__(num_blocks, block_size)
        self._freed: deque[int] = deque()

    def num_new_blocks(self, request_id: int, num_tokens: int) -> int:
        """Blocks ``request_id`` must still get to hold ``num_tokens`` tokens."""
        return max(0, self.blocks_for(num_tokens) - self.num_blocks_held(request_id))

    def can_allocate(self, request_id: int, num_tokens: int) -> bool:
        return self.num_new_blocks(request_id, num_tokens) <= self.num_free_blocks

    def block_ids(self, request_id: int) -> list[int]:
        """A copy of the request's block table (empty if it holds none)."""
        return list(self._tables.get(request_id, ()))

    def block_table(self) -> dict[int, list[int]]:
        """Every request's block ids, for teaching and plots."""
        return {rid: list(ids) for rid, ids in self._tables.items()}

    # ------------------------------------------------------------- changes
    def allocate(self, request_id: int, num_tokens: int) -> list[int]:
        """Grow ``request_id``'s table to hold ``num_tokens``; return the new ids.

        Raises ``RuntimeError`` if the pool cannot supply them: callers check
        :meth:`can_allocate` first (and evict when it says no).
        """
        need = self.num_new_blocks(request_id, num_tokens)
        if need > self.num_free_blocks:
            raise RuntimeError(f"request {request_id} needs {need} blocks but only "
                               f"{self.num_free_blocks} are free")
        fresh = min(need, self.num_blocks - self._next_unused)
        new = list(range(self._next_unused, self._next_unused + fresh))
        self._next_unused += fresh
        new += [self._freed.popleft() for _ in range(need - fresh)]
        if new or request_id not in self._tables:
            self._tables.setdefault(request_id, []).extend(new)
        return new

    def allocate_many(self, request_ids: list[int], num_new_blocks: list[int]) -> None:
        """Give each request its number of new blocks, in order, as if by one
        :meth:`allocate` each (the same ids go to the same requests).

        Raises ``RuntimeError`` if the pool cannot supply them all (nothing is
        allocated then).
        """
        total = sum(num_new_blocks)
        if total > self.num_free_blocks:
            raise RuntimeError(f"{len(request_ids)} requests need {total} blocks but only "
                               f"{self.num_free_blocks} are free")
        fresh = min(total, self.num_blocks - self._next_unused)
        new = list(range(self._next_unused, self._next_unused + fresh))
        self._next_unused += fresh
        new += [self._freed.popleft() for _ in range(total - fresh)]
        at = 0
        tables = self._tables
        for request_id, count in zip(request_ids, num_new_blocks):
            if request_id in tables:
                tables[request_id].extend(new[at:at + count])
            else:
                tables[request_id] = new[at:at + count]
            at += count

    def free(self, request_id: int) -> list[int]:
        """Return all of ``request_id``'s blocks to the pool; the freed ids."""
        ids = self._tables.pop(request_id, [])
        self._freed.extend(ids)
        return ids
