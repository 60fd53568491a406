"""Admission of waiting requests by the vLLM V1 scheduler (step 2 of its iteration).

Follows the waiting-queue half of vLLM's ``Scheduler.schedule``: while budget
remains and fewer than ``max_num_seqs`` requests run, the head of the waiting
queue (:mod:`.waiting_queue`) takes the longest cached prefix of its full
blocks from the device cache, and then from the host tier (:mod:`.prefix_cache`),
and is scheduled for the rest of what it knows, chunked to the budget and to
``long_prefill_token_threshold`` (with ``enable_chunked_prefill=False`` the
queue waits instead of chunking). Admission is FCFS: it stops at the first
request whose blocks do not fit (with ``scheduler_reserve_full_isl``, the
blocks of everything it knows, not just of this iteration's chunk). A request
whose KV comes from another instance (:mod:`.kv_transfer`) is admitted by its
transfer instead and computes nothing here.
"""

from __future__ import annotations

from .request_state import RUNNING


def admit_waiting(sched, now: float, budget: int) -> tuple[list[int], list[int], int, int]:
    """Admit waiting requests of ``sched`` (a :class:`~.v1_scheduler.V1Scheduler`)
    into the iteration starting at ``now`` with ``budget`` tokens left.

    Returns the admitted ids and their tokens, in admission order, and the
    prefix-cache figures of first admissions: tokens looked up and tokens found.
    Adds the host-tier hits to ``sched._host_hits`` and the cached tokens of
    re-admissions after a preemption to ``sched._recompute_cached`` (vLLM keeps
    those out of its hit rate).
    """
    table, kv, config = sched.table, sched.kv, sched.config
    waiting, running, transfers = sched._waiting, sched._running, sched.transfers
    max_seqs, chunked = config.max_batch, config.enable_chunked_prefill
    reserve_full = config.scheduler_reserve_full_isl
    threshold, B = config.long_prefill_token_threshold, kv.block_size
    ids: list[int] = []
    tokens: list[int] = []
    queried = cached = 0
    while budget > 0:
        if 0 < max_seqs <= len(running):
            break
        i = waiting.peek()
        if i is None:
            break
        if transfers.external_tokens(i) and not table.num_preemptions.item(i):
            if not transfers.admit(sched, i, now):
                break  # FCFS: the transfer waits for the decode side's memory
            waiting.pop()
            continue
        known = table.num_prompt_tokens.item(i) + table.num_generated_tokens.item(i)
        hasher = sched.hasher(i)
        hits = kv.find_cached_prefix(hasher, known)
        host = kv.find_host_prefix(hasher, known, len(hits))
        num_cached = (len(hits) + host) * B
        n = known - num_cached
        if 0 < threshold < n:
            n = threshold
        if not chunked and n > budget:
            break
        n = min(n, budget)
        host_hashes = hasher.hashes[len(hits) + 1: len(hits) + host + 1]
        if reserve_full and not kv.can_hold(i, known, hits):
            break  # vLLM's full_sequence_must_fit: the whole prompt's blocks first
        if not kv.allocate_slots(i, num_cached + n, hits, host_hashes):
            break  # FCFS: the head of the queue waits for memory
        sched._host_hits += host
        hasher.lookup = None  # remembered only while it waits (prefix_lookup)
        kv.cache_full_blocks(i, hasher, num_cached + n)
        waiting.pop()
        running.append(i)
        table.status[i] = RUNNING
        table.num_computed_tokens[i] = num_cached
        admitted_at = table.admitted_at.item(i)
        if admitted_at != admitted_at:  # NaN: first admission
            table.admitted_at[i] = now
            table.num_cached_tokens[i] = num_cached
        if kv.enable_caching:
            if table.num_preemptions.item(i):  # vLLM keeps these out of its hit-rate counters
                sched._recompute_cached += num_cached
            else:
                queried += known
                cached += num_cached
        ids.append(i)
        tokens.append(n)
        budget -= n
    return ids, tokens, queried, cached


__all__ = ["admit_waiting"]
