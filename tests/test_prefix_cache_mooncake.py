"""Prefix caching on the real Mooncake conversation trace: with room for every
block, the simulator's cache hits exactly the blocks an independent count over
the trace's hash ids says it should (skipped without ../shared/data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsim_nb.scheduler import BlockHasher, PrefixCachingKVManager
from llmsim_nb.workload.trace_mooncake import load_mooncake_trace

TRACE = (Path(__file__).resolve().parents[2] / "shared" / "data" / "traces" / "prefix"
         / "mooncake_conversation_trace.jsonl")
pytestmark = pytest.mark.skipif(not TRACE.exists(), reason="needs ../shared/data")
LIMIT = 3000


def cached_tokens(trace, block_size):
    """Serve each request in arrival order with no eviction; per-request hits."""
    kv = PrefixCachingKVManager(10 ** 7, block_size)
    hits = []
    for i in range(len(trace)):
        n = int(trace.num_prompt_tokens[i])
        h = BlockHasher(trace.content.row(i), i, n, block_size)
        found = kv.find_cached_prefix(h, n)
        assert kv.allocate_slots(i, n, found)
        kv.cache_full_blocks(i, h, n)
        kv.free(i)
        hits.append(len(found) * block_size)
    return hits


def test_hits_equal_an_independent_count_over_the_hash_ids():
    import json

    rows = [json.loads(line) for line in TRACE.read_text().splitlines()[:LIMIT]]
    trace = load_mooncake_trace(TRACE, limit=LIMIT)
    expected, seen_full = [], set()
    for row in rows:
        ids, n = row["hash_ids"], row["input_length"]
        run = 0
        for k in range((n - 1) // 512):    # a request computes its last token
            if ids[k] not in seen_full:
                break
            run += 1
        expected.append(run * 512)
        seen_full.update(ids[: n // 512])  # only full blocks are cached
    assert cached_tokens(trace, 512) == expected
    assert sum(expected) > 0.3 * sum(r["input_length"] for r in rows)


def test_smaller_blocks_hit_at_least_as_much():
    trace = load_mooncake_trace(TRACE, limit=300)
    coarse, fine = cached_tokens(trace, 512), cached_tokens(trace, 64)
    assert all(f >= c for f, c in zip(fine, coarse))
    assert sum(fine) > sum(coarse)
