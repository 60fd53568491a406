"""The prefix-caching block pool: exact block ids, LRU eviction, reference counts,
hash chains, and a differential test against a plain reference implementation."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb.scheduler import BlockHasher, PrefixCachingKVManager
from llmsim_nb.workload.content import RequestContent

B = 4


def hasher(segments, output_id=999, index=0, salt=0):
    content = RequestContent(tuple(s for s, _ in segments), tuple(n for _, n in segments),
                             output_id, salt)
    return BlockHasher(content, index, content.num_prompt_tokens, B)


def admit(kv, rid, h, num_tokens):
    """What the V1 scheduler does for a new request: hits, allocate, register."""
    hits = kv.find_cached_prefix(h, num_tokens)
    assert kv.allocate_slots(rid, num_tokens, hits)
    kv.cache_full_blocks(rid, h, num_tokens)
    return hits


def test_fresh_pool_hands_out_ids_in_order_and_frees_tail_first():
    kv = PrefixCachingKVManager(8, B)
    admit(kv, 0, hasher([(1, 10)]), 10)      # 3 blocks: 0 1 2
    admit(kv, 1, hasher([(2, 5)]), 5)        # 2 blocks: 3 4
    assert kv.block_ids(0) == [0, 1, 2] and kv.block_ids(1) == [3, 4]
    assert kv.num_free_blocks == 3 and kv.num_used_blocks == 5
    kv.free(0)
    assert kv.free_queue() == [2, 1, 0]       # reversed: the tail block is reused first
    assert kv.num_free_blocks == 6
    # Never-used blocks 5 6 7 come first, then the freed ones, LRU first.
    admit(kv, 2, hasher([(3, 20)]), 20)      # 5 blocks
    assert kv.block_ids(2) == [5, 6, 7, 2, 1]
    assert kv.num_evicted_blocks == 1        # block 1 held a hash; 2 (partial) none


def test_shared_prefix_group_caches_exactly_g_minus_1_times_the_full_blocks():
    G, S, Q = 5, 13, 6                        # 13-token system prompt: 3 full blocks
    kv = PrefixCachingKVManager(1000, B)
    cached = []
    for g in range(G):
        h = hasher([(7, S), (100 + g, Q)], output_id=500 + g, index=g)
        cached.append(len(admit(kv, g, h, S + Q)) * B)
    assert cached == [0] + [(S // B) * B] * (G - 1)
    assert sum(cached) == (G - 1) * (S // B) * B
    # The shared blocks are those of request 0, each referenced by all five.
    assert [kv.block_ids(g)[:3] for g in range(G)] == [[0, 1, 2]] * G
    assert [kv.ref_count(b) for b in (0, 1, 2)] == [G, G, G]


def test_fully_cached_prompt_still_computes_its_last_token():
    kv = PrefixCachingKVManager(100, B)
    admit(kv, 0, hasher([(1, 8)]), 8)         # exactly 2 full blocks
    kv.free(0)
    hits = kv.find_cached_prefix(hasher([(1, 8)], index=1), 8)
    assert hits == [0]                        # (8 - 1) // 4 = 1 block at most


def test_lru_eviction_order_and_referenced_blocks_never_evicted():
    kv = PrefixCachingKVManager(4, B)
    ha, hb = hasher([(1, 8)]), hasher([(2, 8)], index=1)
    admit(kv, 0, ha, 8)                      # blocks 0 1
    admit(kv, 1, hb, 8)                      # blocks 2 3
    kv.free(0)                               # queue: 1 0 (both cached)
    assert kv.free_queue() == [1, 0]
    # A new request needing one block takes 1 (least recently freed), evicting
    # its hash: request 0's prefix is now only block 0.
    admit(kv, 2, hasher([(3, 3)], index=2), 3)
    assert kv.block_ids(2) == [1]
    assert kv.find_cached_prefix(hasher([(1, 8)], index=3), 9) == [0]
    # Referenced blocks 2 3 (request 1) and 1 (request 2) are not free: a request
    # needing 2 blocks cannot get them although only block 0 is free.
    assert not kv.allocate_slots(3, 8)
    assert kv.block_ids(1) == [2, 3] and kv.ref_count(2) == 1


def test_hit_on_a_free_cached_block_takes_it_out_of_the_queue():
    kv = PrefixCachingKVManager(4, B)
    admit(kv, 0, hasher([(1, 8)]), 8)
    kv.free(0)
    hits = admit(kv, 1, hasher([(1, 8)], index=1), 9)   # 2 hits + 1 new block
    assert hits == [0, 1] and kv.block_ids(1) == [0, 1, 2]
    assert kv.free_queue() == [] and kv.num_free_blocks == 1
    # The hit blocks were free: they must not be counted as free for new blocks.
    kv2 = PrefixCachingKVManager(3, B)
    admit(kv2, 0, hasher([(1, 8)]), 8)
    kv2.free(0)                                          # 3 free: never-used 2, then 1 0
    h = hasher([(1, 8)], index=1)
    hits = kv2.find_cached_prefix(h, 17)                 # 2 hits, needs 3 more blocks
    assert hits == [0, 1] and not kv2.allocate_slots(1, 17, hits)
    assert kv2.num_free_blocks == 3 and kv2.free_queue() == [1, 0]


def test_hash_chain_distinguishes_equal_blocks_under_different_parents():
    # Block 1 of both requests is the same text (segment 9), after different blocks.
    a = hasher([(1, 4), (9, 4)])
    b = hasher([(2, 4), (9, 4)], index=1)
    assert a.hash_of(0) != b.hash_of(0)
    assert a.hash_of(1) != b.hash_of(1)
    kv = PrefixCachingKVManager(100, B)
    admit(kv, 0, a, 8)
    assert kv.find_cached_prefix(b, 9) == []


def test_block_size_independent_identity_and_salt():
    # Segments cut differently from the same content id agree token for token.
    a = hasher([(5, 6), (6, 6)])
    b = hasher([(5, 6), (6, 2)], index=1)
    assert a.hash_of(0) == b.hash_of(0) and a.hash_of(1) == b.hash_of(1)
    assert hasher([(5, 8)], salt=1).hash_of(0) != hasher([(5, 8)], salt=2).hash_of(0)
    # Generated tokens hash as the output segment: a next turn that repeats them hits.
    turn1 = hasher([(1, 6)], output_id=40)
    turn2 = hasher([(1, 6), (40, 3), (2, 5)], output_id=41, index=1)
    assert [turn1.hash_of(k) for k in range(2)] == [turn2.hash_of(k) for k in range(2)]
    assert turn1.hash_of(2) != turn2.hash_of(2)  # turn 1's output 3.. vs turn 2's message


def test_hashes_one_block_at_a_time_equal_the_whole_chain_at_once():
    # Decodes extend a chain a block at a time inside the output segment (a
    # shortcut); a whole chain at once takes the general walk over segments.
    for segments in ([(1, 6)], [(1, 4), (2, 8)], [(3, 1), (4, 2), (5, 3)]):
        whole, stepped = hasher(segments), hasher(segments, index=1)
        want = [whole.hash_of(11 - k) for k in range(12)][::-1]
        assert [stepped.hash_of(k) for k in range(12)] == want
    kv = PrefixCachingKVManager(100, B)
    content_less = BlockHasher(None, 3, 5, B)
    kv.allocate_slots(0, 20)
    kv.cache_full_blocks_many([0], [content_less], [20])
    assert [kv.is_cached(BlockHasher(None, 3, 5, B).hash_of(k)) for k in range(6)] == [
        True] * 5 + [False]


def test_content_less_requests_share_nothing():
    a = BlockHasher(None, 0, 16, B)
    b = BlockHasher(None, 1, 16, B)
    assert all(a.hash_of(k) != b.hash_of(k) for k in range(4))


def test_disabled_caching_finds_nothing():
    kv = PrefixCachingKVManager(100, B, enable_caching=False)
    admit(kv, 0, hasher([(1, 8)]), 8)
    kv.free(0)
    assert kv.find_cached_prefix(hasher([(1, 8)], index=1), 9) == []
    assert kv.num_cached_blocks == 0


class ReferencePool:
    """A plain reference: blocks named by their whole token prefix (no hashing),
    a Python list as the free queue."""

    def __init__(self, num_blocks):
        self.free = list(range(num_blocks))
        self.ref = [0] * num_blocks
        self.name = [None] * num_blocks
        self.by_name = {}
        self.tables = {}

    @staticmethod
    def tokens(segments):
        return [(s, o) for s, n in segments for o in range(n)]

    def admit(self, rid, segments):
        toks = self.tokens(segments)
        hits = []
        for k in range((len(toks) - 1) // B):
            name = tuple(toks[: (k + 1) * B])
            if name not in self.by_name:
                break
            hits.append(self.by_name[name][0])
        need = -(-len(toks) // B) - len(hits)
        free_hits = sum(1 for b in hits if self.ref[b] == 0)
        if need > len(self.free) - free_hits:
            return None
        for b in hits:
            if self.ref[b] == 0:
                self.free.remove(b)
            self.ref[b] += 1
        table = list(hits)
        for _ in range(need):
            b = self.free.pop(0)
            if self.name[b] is not None:
                holders = self.by_name[self.name[b]]
                holders.remove(b)
                if not holders:
                    del self.by_name[self.name[b]]
                self.name[b] = None
            self.ref[b] = 1
            table.append(b)
        for k in range(len(toks) // B):
            b = table[k]
            name = tuple(toks[: (k + 1) * B])
            if self.name[b] is None:  # a duplicate joins its name's list, as vLLM keeps it
                self.name[b] = name
                self.by_name.setdefault(name, []).append(b)
        self.tables[rid] = table
        return hits

    def release(self, rid):
        for b in reversed(self.tables.pop(rid)):
            self.ref[b] -= 1
            if self.ref[b] == 0:
                self.free.append(b)


@pytest.mark.parametrize("seed", range(12))
def test_differential_against_the_reference_on_random_workloads(seed):
    rng = np.random.default_rng(seed)
    num_blocks = int(rng.integers(6, 40))
    kv, ref = PrefixCachingKVManager(num_blocks, B), ReferencePool(num_blocks)
    live: list[int] = []
    for rid in range(150):
        if live and rng.random() < 0.45:
            victim = live.pop(int(rng.integers(len(live))))
            kv.free(victim)
            ref.release(victim)
            continue
        # A prompt: one of 3 system prompts, then 0-2 shared or unique segments.
        segments = [(int(rng.integers(3)), int(rng.integers(1, 12)))]
        for _ in range(int(rng.integers(0, 3))):
            segments.append((int(rng.integers(3, 8)) if rng.random() < 0.5 else 1000 + rid,
                             int(rng.integers(1, 9))))
        h = hasher(segments, output_id=5000 + rid, index=rid)
        n = sum(length for _, length in segments)
        hits = kv.find_cached_prefix(h, n)
        expected = ref.admit(rid, segments)
        ok = kv.allocate_slots(rid, n, hits)
        assert ok == (expected is not None)
        if ok:
            kv.cache_full_blocks(rid, h, n)
            assert hits == expected
            assert kv.block_ids(rid) == ref.tables[rid]
            live.append(rid)
        assert kv.free_queue() == [b for b in ref.free if b < kv._next_unused]
        assert kv.num_free_blocks == len(ref.free)
        assert kv.num_used_blocks <= num_blocks


def test_host_tier_keeps_evicted_blocks_and_its_own_lru():
    kv = PrefixCachingKVManager(4, B, num_host_blocks=2)
    a = hasher([(1, 8)])
    admit(kv, 0, a, 8)                        # blocks 0 1, registered
    kv.free(0)                                # queue 1 0
    admit(kv, 1, hasher([(2, 8)], index=1), 8)   # never-used 2 3
    kv.free(1)                                # queue 1 0 3 2
    admit(kv, 2, hasher([(3, 12)], index=2), 12)  # takes 1 0 3: evicts three hashes
    assert kv.num_stored_blocks == 3
    # The host tier holds 2: request 0's block 0 (hash a0) and request 1's block 1.
    b = hasher([(2, 8)], index=9)
    assert kv.host_queue() == [a.hash_of(0), b.hash_of(1)]
    c = hasher([(1, 8)], index=3)
    assert kv.find_cached_prefix(c, 9) == []
    assert kv.find_host_prefix(c, 9, 0) == 1  # a0 there, a1 dropped by the host LRU
    # Request 2 leaves: its blocks 1 0 3 (hashes x0 x1 x2) join the queue behind 2 (b0).
    kv.free(2)
    x = hasher([(3, 12)], index=2)
    # Loading a0 makes it the most recent in the host tier; then the 3 new blocks
    # (2, 3, 0) evict b0, x2, x1 into it, each push dropping the least recent.
    assert kv.allocate_slots(3, 9, [], [c.hash_of(0)])
    assert kv.block_ids(3) == [2, 3, 0]
    assert kv.host_queue() == [x.hash_of(2), x.hash_of(1)]
    assert kv.num_loaded_blocks == 1 and kv.num_stored_blocks == 6


def test_a_small_host_tier_loads_before_it_stores():
    # The allocation that loads a host hit also evicts device blocks into the
    # host tier; with a one-block tier the store pushes out the block just read.
    kv = PrefixCachingKVManager(3, B, num_host_blocks=1)
    admit(kv, 0, hasher([(1, 4)]), 4)             # block 0 = a0
    kv.free(0)
    admit(kv, 1, hasher([(2, 8)], index=1), 8)    # never-used 1 2
    kv.free(1)                                    # queue 0 2 1
    admit(kv, 2, hasher([(3, 4)], index=2), 4)    # takes 0: a0 -> host
    c = hasher([(1, 4), (5, 4)], index=3)
    assert kv.find_host_prefix(c, 8, 0) == 1
    # Takes blocks 2 then 1: b1 then b0 are stored, each push dropping the older.
    assert kv.allocate_slots(3, 8, [], [c.hash_of(0)])
    assert kv.block_ids(3) == [2, 1]
    assert kv.num_loaded_blocks == 1 and kv.num_stored_blocks == 3
    assert kv.host_queue() == [hasher([(2, 8)], index=1).hash_of(0)]


@pytest.mark.parametrize("seed,log_limit", [(0, 1 << 16), (1, 1 << 16), (2, 3), (3, 1)])
def test_remembered_lookups_equal_fresh_ones_after_random_changes(monkeypatch, seed, log_limit):
    # Requests wait while others are admitted, grow, finish and get evicted; a
    # waiting request's lookup is remembered on its hasher between tries. Each
    # remembered answer must equal a lookup by a new hasher of the same content.
    import llmsim_nb.scheduler.prefix_lookup as prefix_lookup
    monkeypatch.setattr(prefix_lookup, "CHANGE_LOG_LIMIT", log_limit)
    rng = np.random.default_rng(seed)
    kv = PrefixCachingKVManager(24, B)
    contents = [[(int(rng.integers(3)), 8), (10 + int(rng.integers(4)), int(rng.integers(1, 12)))]
                for _ in range(12)]
    waiting = {r: hasher(segments, output_id=100 + r, index=r)
               for r, segments in enumerate(contents)}
    running: dict[int, int] = {}
    for _ in range(2000):
        op = rng.integers(5)
        if op <= 1 and waiting:  # try to admit one (its lookup is remembered)
            r = int(rng.choice(list(waiting)))
            h = waiting[r]
            n = sum(length for _, length in contents[r])
            hits = kv.find_cached_prefix(h, n)
            assert hits == kv.find_cached_prefix(hasher(contents[r], 100 + r, r), n)
            if op == 0 and kv.allocate_slots(r, n, hits):
                kv.cache_full_blocks(r, h, n)
                running[r] = n
                del waiting[r]
        elif op == 2 and running:  # a running request grows by a block's worth
            r = int(rng.choice(list(running)))
            if kv.allocate_slots(r, running[r] + B):
                running[r] += B
                kv.cache_full_blocks(r, hasher(contents[r], 100 + r, r), running[r])
        elif op == 3 and running:  # one finishes; it may come back (a next turn)
            r = int(rng.choice(list(running)))
            kv.free(r)
            del running[r]
            waiting[r] = hasher(contents[r], 100 + r, r)
        elif op == 4 and rng.random() < 0.05:
            kv.reset_prefix_cache()
