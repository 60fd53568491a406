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

from typing import NamedTuple

from .request_state import RUNNING


class Admission(NamedTuple):
    """What :func:`admit_waiting` admitted into one iteration.

    Attributes
    ----------
    request_ids : list of int
        Admitted requests, in admission order (receiving transfers excluded:
        they compute nothing this iteration).
    num_tokens : list of int
        Tokens each computes this iteration.
    num_query_tokens, num_cached_tokens : int
        Prefix-cache figures of first admissions: tokens looked up, tokens found.
    num_host_blocks : int
        Blocks found in the host tier (loaded back before the prefill).
    num_recompute_cached_tokens : int
        Cached tokens of re-admissions after a preemption (vLLM keeps them out
        of its hit rate).
    """

    request_ids: list[int]
    num_tokens: list[int]
    num_query_tokens: int
    num_cached_tokens: int
    num_host_blocks: int
    num_recompute_cached_tokens: int


#: No admission (an iteration whose admission step did not run).
NOTHING_ADMITTED = Admission((), (), 0, 0, 0, 0)


def admit_waiting(table, kv, config, waiting, running: list[int], transfers, hasher_of,
                  registration, now: float, budget: int) -> Admission:
    """Admit waiting requests into the iteration starting at ``now`` with
    ``budget`` tokens left.

    The arguments are a :class:`~.v1_scheduler.V1Scheduler`'s parts: its
    request ``table``, block pool ``kv``, ``config``, ``waiting`` queue
    (:class:`~.waiting_queue.WaitingQueue`), ``running`` ids, ``transfers``
    (:class:`~.kv_transfer.KVTransfers`), ``hasher_of`` (request id -> its
    :class:`~.block_hasher.BlockHasher`) and ``registration``
    (:class:`~.block_registration.BlockRegistration`: which requests can
    find anything, which admitted blocks are registered now). Admitted requests move from
    ``waiting`` to the end of ``running``, except receiving transfers: they
    leave ``waiting`` and join ``running`` when their KV has arrived
    (:meth:`~.kv_transfer.KVTransfers.step`). What was admitted is returned
    as an :class:`Admission`.
    """
    max_seqs, chunked = config.max_batch, config.enable_chunked_prefill
    reserve_full = config.scheduler_reserve_full_isl
    threshold, B = config.long_prefill_token_threshold, kv.block_size
    ids: list[int] = []
    tokens: list[int] = []
    queried = cached = host_blocks = recompute_cached = 0
    while budget > 0:
        if 0 < max_seqs <= len(running):
            break
        i = waiting.peek()
        if i is None:
            break
        if transfers.external_tokens(i) and not table.num_preemptions.item(i):
            if not transfers.admit(table, kv, hasher_of, registration, i, now):
                break  # FCFS: the transfer waits for the decode side's memory
            waiting.pop()
            continue
        known = table.num_prompt_tokens.item(i) + table.num_generated_tokens.item(i)
        preempted = table.num_preemptions.item(i)
        if registration.may_hit(i, preempted):
            hasher = hasher_of(i)
            hits = kv.find_cached_prefix(hasher, known)
            host = kv.find_host_prefix(hasher, known, len(hits))
        else:  # nothing to find (block_registration)
            hasher, hits, host = None, [], 0
        num_cached = (len(hits) + host) * B
        n = known - num_cached
        if 0 < threshold < n:
            n = threshold
        if not chunked and n > budget:
            break
        n = min(n, budget)
        host_hashes = hasher.hashes[len(hits) + 1: len(hits) + host + 1] if host else ()
        if reserve_full and not kv.can_hold(i, known, hits):
            break  # vLLM's full_sequence_must_fit: the whole prompt's blocks first
        if not kv.allocate_slots(i, num_cached + n, hits, host_hashes):
            break  # FCFS: the head of the queue waits for memory
        host_blocks += host
        if hasher is not None:
            hasher.lookup = None  # remembered only while it waits (prefix_lookup)
            registration.admitted(i, hasher_of, num_cached + n, kv)
        waiting.pop()
        running.append(i)
        table.status[i] = RUNNING
        table.num_computed_tokens[i] = num_cached
        admitted_at = table.admitted_at.item(i)
        if admitted_at != admitted_at:  # NaN: first admission
            table.admitted_at[i] = now
            table.num_cached_tokens[i] = num_cached
        if kv.enable_caching:
            if preempted:  # vLLM keeps these out of its hit-rate counters
                recompute_cached += num_cached
            else:
                queried += known
                cached += num_cached
        ids.append(i)
        tokens.append(n)
        budget -= n
    return Admission(ids, tokens, queried, cached, host_blocks, recompute_cached)


__all__ = ["NOTHING_ADMITTED", "Admission", "admit_waiting"]
