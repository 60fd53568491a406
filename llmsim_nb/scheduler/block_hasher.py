"""Chained hashes of a request's full KV blocks, from its content identity.

vLLM V1 names a full block by a hash of its parent block's hash, the block's
token ids and any extra keys (``hash_block_tokens`` in
``vllm/v1/core/kv_cache_utils.py``). A simulated request has no token ids, so
a block's tokens are named by the content ids of
:class:`~llmsim_nb.workload.content.RequestContent`: the block covering tokens
``[k*B, (k+1)*B)`` is the run of ``(segment_id, offset, length)`` pieces those
tokens come from. Hash ``k`` is ``hash((hash_{k-1}, *pieces))`` with a root that
holds the cache salt, so

- equal text under different parents gets different hashes (the chain);
- requests whose contents start with the same segments share hashes exactly
  as long as their tokens agree, whatever the block size;
- a request's generated tokens hash as its ``output_id`` segment, so a later
  turn that repeats them (a conversation) or the request's own recomputation
  after a preemption finds them.

Only full blocks are hashed (the last, partial block is never shared). The
hash is Python's tuple hash of ints: deterministic across processes (integer
hashing does not depend on ``PYTHONHASHSEED``) and 64 bits wide, so a false
match among ``n`` cached blocks has probability about ``n**2 / 2**65`` (below
1e-5 for ten million blocks), the same risk vLLM takes with its builtin hash.
"""

from __future__ import annotations

from bisect import bisect_right

from ..workload.content import RequestContent

#: Salt of the root "parent" of every first block (a fixed int: tuple hashes of
#: ints are the same in every process).
_ROOT = -0x5EED


class BlockHasher:
    """Hashes of one request's full blocks, computed on demand and kept.

    Parameters
    ----------
    content : RequestContent or None
        The request's content; None gives it ids no other request has
        (``-(2 * index + 1)`` for the prompt, ``-(2 * index + 2)`` for the output).
    index : int
        The request's index in its scheduler (for the ids of content-less requests).
    num_prompt_tokens : int
    block_size : int

    Attributes
    ----------
    hashes : list of int
        ``hashes[k + 1]`` names full block ``k`` (tokens ``[k*B, (k+1)*B)``);
        ``hashes[0]`` is the root (the salt).
    lookup : RememberedLookup or None
        The last prefix lookup of these hashes in a block pool, kept by that
        pool (:meth:`.PrefixCachingKVManager.find_cached_prefix`).
    """

    __slots__ = ("block_size", "hashes", "lookup", "_ends", "_ids", "_starts")

    def __init__(self, content: RequestContent | None, index: int, num_prompt_tokens: int,
                 block_size: int) -> None:
        if content is None:
            ids: tuple[int, ...] = (-(2 * index + 1),)
            lengths: tuple[int, ...] = (num_prompt_tokens,)
            output_id, salt = -(2 * index + 2), 0
        else:
            ids, lengths = content.segment_ids, content.segment_lengths
            output_id, salt = content.output_id, content.cache_salt
        self.block_size = block_size
        self._ids = (*ids, output_id)
        starts, at = [], 0
        for n in lengths:
            starts.append(at)
            at += n
        starts.append(at)  # the output segment starts after the prompt and never ends
        self._starts = starts
        self._ends = [*starts[1:], float("inf")]
        self.hashes: list[int] = [hash((_ROOT, salt))]  # [0] is the root; see hash_of
        self.lookup = None  # a pool's last answer (prefix_lookup.RememberedLookup)

    def hash_of(self, k: int) -> int:
        """Hash of full block ``k`` (0-based); computes the chain up to it."""
        hashes = self.hashes
        if len(hashes) <= k + 1:
            self.extend(k + 1)
        return hashes[k + 1]

    def extend(self, num_blocks: int) -> None:
        """Hash blocks ``len(hashes) - 1 .. num_blocks - 1`` (one tight loop)."""
        hashes, B = self.hashes, self.block_size
        starts, ends, ids = self._starts, self._ends, self._ids
        k = len(hashes) - 1
        parent = hashes[-1]
        output_start = starts[-1]
        if k * B >= output_start:  # generated tokens only (a decode's block): one piece each
            output_id = ids[-1]
            while k < num_blocks:
                parent = hash((parent, output_id, k * B - output_start))
                hashes.append(parent)
                k += 1
            return
        s = bisect_right(starts, k * B) - 1
        while k < num_blocks:
            lo = k * B
            while ends[s] <= lo:
                s += 1
            end = ends[s]
            if lo + B <= end:  # the common case: a run of blocks inside one segment
                stop = min(num_blocks, (end - lo) // B + k) if end != float("inf") \
                    else num_blocks
                sid, first = ids[s], lo - starts[s]
                for offset in range(first, first + (stop - k) * B, B):
                    parent = hash((parent, sid, offset))
                    hashes.append(parent)
                k = stop
                continue
            hi = lo + B
            pieces: list[int] = [parent]
            at, t = lo, s
            while at < hi:
                n = min(hi, ends[t]) - at
                pieces += (ids[t], at - starts[t], int(n))
                at += n
                t += 1
            parent = hash(tuple(pieces))
            hashes.append(parent)
            k += 1
