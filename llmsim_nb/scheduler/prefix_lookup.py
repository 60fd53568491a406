"""Prefix lookups of a prefix-caching block pool, device tier and host tier.

vLLM's ``get_computed_blocks``: a request's cached prefix is the longest run of
its leading full blocks whose hashes are registered in the device pool, then
continued in the host tier. :class:`PrefixLookup` is the lookup half of
:class:`~.prefix_cache.PrefixCachingKVManager` (which keeps the state it
reads: ``enable_caching``, ``block_size``, ``_cached`` hash -> block,
``_host`` the host-tier hashes, and the changed-hash log ``_changed`` with its
``_epoch``).

A request waiting at the head of the queue is looked up again every iteration
until it fits, a prompt of thousands of blocks each time, so the answer is
remembered on its :class:`~.block_hasher.BlockHasher` with the position in
the pool's log of hashes whose answer changed (evicted, or moved to a
duplicate block). It still holds while none of its run's hashes is in the log
since, and it grows when its first missing hash has been registered since
(registering a new hash never changes another's block).
"""

from __future__ import annotations

from typing import NamedTuple

from .block_hasher import BlockHasher

#: Entries of the changed-hash log before it is emptied (and every remembered
#: lookup forgotten): a bound on its memory, large enough that a lookup is
#: normally remembered across many iterations.
CHANGE_LOG_LIMIT = 1 << 16


class RememberedLookup(NamedTuple):
    """A pool's last answer for one request's hashes (kept on its hasher)."""

    pool: object               # the pool that answered (a hasher may meet several)
    epoch: int                 # the pool's log epoch then
    most: int                  # blocks looked at: (num_tokens - 1) // block_size
    found: list[int]           # the blocks of the cached run
    since: int                 # the log position then
    names: set[int] | None     # the run's hashes, made when first needed


class PrefixLookup:
    """The device- and host-tier prefix lookups (see the module docstring)."""

    def find_cached_prefix(self, hasher: BlockHasher, num_tokens: int) -> list[int]:
        """Blocks of the longest cached run of leading full blocks of a request
        with ``num_tokens`` known tokens (``get_computed_blocks``); a new list.
        Remembered on ``hasher`` (see the module docstring): the same blocks
        as a full lookup, tested against one after random changes."""
        if not self.enable_caching:
            return []
        most = (num_tokens - 1) // self.block_size
        if most == 0:
            return []
        hasher.hash_of(most - 1)  # the whole chain at once
        hashes, changed = hasher.hashes, self._changed
        memo = hasher.lookup
        found = names = None
        if memo is not None and memo.pool is self and memo.epoch == self._epoch \
                and memo.most == most:
            found, names = memo.found, memo.names
            if memo.since != len(changed):
                if names is None:  # the run's hashes, as a set when first needed
                    names = set(hashes[1:len(found) + 1])
                if not names.isdisjoint(changed[memo.since:]):
                    found = None  # a hash of the run was evicted or moved: look again
        if found is None:
            found, names = self._scan(hashes, 0, most), None
        elif len(found) < most and hashes[len(found) + 1] in self._cached:
            found, names = found + self._scan(hashes, len(found), most), None  # it grew
        hasher.lookup = RememberedLookup(self, self._epoch, most, found, len(changed), names)
        return found[:]

    def _note_changed(self, block_hash: int) -> None:
        """Log that ``block_hash`` now answers with another block or none."""
        changed = self._changed
        changed.append(block_hash)
        if len(changed) > CHANGE_LOG_LIMIT:  # forget every remembered lookup
            changed.clear()
            self._epoch += 1

    def _note_changed_many(self, block_hashes: list[int]) -> None:
        """:meth:`_note_changed` of each in turn, the log emptied (if long) once
        at the end: the same for every lookup remembered afterwards."""
        changed = self._changed
        changed += block_hashes
        if len(changed) > CHANGE_LOG_LIMIT:
            changed.clear()
            self._epoch += 1

    def _scan(self, hashes: list[int], start: int, most: int) -> list[int]:
        """Blocks of the cached run of ``hashes[start + 1 .. most]`` from its start."""
        # One dict lookup per block, in C, in doubling chunks so that a run
        # which ends early (a long prompt sharing a short prefix) stops early.
        get = self._cached.get
        found: list[int] = []
        start, step = start + 1, 32
        while start <= most:
            chunk = list(map(get, hashes[start:min(start + step, most + 1)]))
            try:
                found += chunk[:chunk.index(None)]
                return found
            except ValueError:
                found += chunk
            start, step = start + step, 2 * step
        return found

    def find_host_prefix(self, hasher: BlockHasher, num_tokens: int, num_device_hits: int
                         ) -> int:
        """Blocks after the ``num_device_hits`` device hits found in the host
        tier, in a run (the prefix continues there); 0 without a host tier."""
        most = (num_tokens - 1) // self.block_size
        if not self._host or most <= num_device_hits:
            return 0
        hasher.hash_of(most - 1)
        host, n = self._host, 0
        for h in hasher.hashes[num_device_hits + 1: most + 1]:
            if h not in host:
                break
            n += 1
        return n


__all__ = ["CHANGE_LOG_LIMIT", "PrefixLookup", "RememberedLookup"]
