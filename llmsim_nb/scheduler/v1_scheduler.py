"""The vLLM V1 scheduler: one token budget, prefix caching, preemption by recompute.

Follows ``Scheduler.schedule`` of ``vllm/v1/core/sched/scheduler.py``. There are
no phases, only tokens: a request knows ``P + g`` tokens (its prompt and the
``g`` outputs generated so far) and has ``num_computed_tokens`` of them in
the KV cache; each iteration it computes some of the rest, and when it reaches
the end of what it knows it emits one token (until it has all ``O``)::

    plan = scheduler.step(now)            # IterationPlan
    ... engines time the plan ...
    scheduler.update(plan, finished_at)

One iteration:

1. **Running requests first**, in their order: each gets
   ``min(P + g - computed, long_prefill_token_threshold, budget left)`` tokens
   (a decode is 1 token, a partial prompt its next chunk). When its blocks
   cannot be allocated, the lowest-priority running request is preempted
   (``fcfs``: the last one in ``running``; ``priority``: the largest
   ``(priority, arrival)``) until they can, or it preempts itself.
2. **Waiting requests**, FCFS (or lowest ``(priority, arrival)`` first), only
   if nothing was preempted this iteration and while budget remains and fewer
   than ``max_num_seqs`` are running: the longest cached prefix of full blocks
   is taken from the cache (:mod:`.prefix_cache`), the rest is scheduled
   (chunked when over the budget; with ``enable_chunked_prefill=False`` the
   queue waits instead), and admission stops at the first request whose
   blocks do not fit. With ``scheduler_reserve_full_isl`` (vLLM's
   ``full_sequence_must_fit`` admission check, on by default in vLLM 0.19),
   "fit" means the blocks of everything it knows (its prompt, plus its outputs
   after a preemption), not just of this iteration's chunk, so a long prompt
   is not admitted only to be preempted a few chunks later.

A preempted request frees its blocks (they stay cached), forgets its computed
tokens and goes back to the front of the waiting queue (by its key under
``priority``); re-admitted, it recomputes its prompt and outputs minus what is
still cached, and those lookups count apart from the hit rate
(``num_recompute_cached_tokens``, as vLLM's ``PrefixCacheStats``). The host
tier (``kv_offload_gib``): see :mod:`.prefix_cache` and docs/prefix-caching.md.

Invariants
----------
- A request is pending, waiting, running or finished; only running requests
  hold blocks (and, under prefill/decode disaggregation, those receiving
  their KV or holding it for a transfer: :mod:`.kv_transfer`);
  ``kv.num_used_blocks <= kv.num_blocks``.
- A request computes ``P + O - 1`` tokens in all, plus what preemption discards.
- Tokens in an iteration never exceed ``max_num_batched_tokens``.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ..config import SchedulerConfig
from ..workload.content import RequestContent
from .admission import NOTHING_ADMITTED, Admission, admit_waiting
from .block_hasher import BlockHasher
from .block_registration import BlockRegistration
from .kv_transfer import KVTransfers
from .plan import IterationPlan, check_update
from .v1_plan import BatchRows, gather_rows, plan_of_rows
from .preemption import Preemption
from .prefix_cache import PrefixCachingKVManager
from .waiting_queue import WaitingQueue
from .request_state import WAITING, RequestState, RequestTable, max_kv_tokens

#: ``np.add.reduce``: what ``ndarray.sum()`` computes for a 1-d array, without
#: the method's Python-level wrapper (this runs every iteration).
_reduce = np.add.reduce


class V1Scheduler:
    """Forms one batch per iteration the way vLLM V1 does.

    Parameters
    ----------
    config : SchedulerConfig
        ``policy='vllm-v1'``; reads ``max_num_batched_tokens``, ``max_batch``
        (max_num_seqs), ``long_prefill_token_threshold``, ``enable_chunked_prefill``
        and ``scheduling_policy``.
    kv_cache : PrefixCachingKVManager
    kv_bytes_per_token : int
        Bytes one token's K and V take over all layers: the host tier's copies
        (recompute itself moves none).
    registration : BlockRegistration, optional
        When full blocks are registered in the prefix cache (default: blocks
        no other request can hit are registered when given back; the same
        results as registering every block when allocated, which
        ``BlockRegistration(lazy=False)`` does: :mod:`.block_registration`).
    """

    def __init__(self, config: SchedulerConfig, kv_cache: PrefixCachingKVManager,
                 kv_bytes_per_token: int, registration: BlockRegistration | None = None
                 ) -> None:
        self.config = config
        self.kv = kv_cache
        self.kv_bytes_per_token = kv_bytes_per_token
        self.registration = BlockRegistration() if registration is None else registration
        self.table = RequestTable()
        self.requests: list[RequestState] = []
        self._contents: list[RequestContent | None] = []
        self._hashers: dict[int, BlockHasher] = {}
        self._pending: deque[int] = deque()
        self._priority = config.scheduling_policy == "priority"
        self._waiting = WaitingQueue(self._priority)
        self._running: list[int] = []
        self._preemption = Preemption(config.preemption_mode or "recompute", kv_bytes_per_token)
        self.num_finished = 0
        self._iteration = 0
        self._open_plan: IterationPlan | None = None
        self.transfers = KVTransfers()  # prefill/decode disaggregation (:mod:`.kv_transfer`)

    # ------------------------------------------------------------ requests
    def add(self, request_id: int, arrival_at: float, num_prompt_tokens: int,
            num_output_tokens: int, content: RequestContent | None = None,
            priority: int = 0, num_external_tokens: int = 0, external_latency: float = 0.0,
            hold_kv: bool = False, first_token_at: float = float("nan")) -> RequestState:
        """Register a request; ids must be 0, 1, 2, ... in arrival order. The rest:
        its KV comes from, or goes to, another instance (:mod:`.kv_transfer`)."""
        table = self.table
        max_kv = max_kv_tokens(num_prompt_tokens, num_output_tokens)
        table.check_new(request_id, arrival_at, max_kv, self.kv.blocks_for, self.kv.num_blocks)
        budget, cap = self.config.max_num_batched_tokens, self.config.long_prefill_token_threshold
        if not self.config.enable_chunked_prefill and not 0 < cap <= budget and max_kv > budget:
            raise ValueError(f"request {request_id} may have to compute {max_kv} tokens in one "
                             f"iteration (its prompt, and its outputs again after a preemption) "
                             f"but max_num_batched_tokens={budget} with enable_chunked_prefill=off;"
                             f" raise --max_num_batched_tokens to the longest request (as vLLM "
                             f"requires of max_model_len) or turn chunked prefill on")
        if num_external_tokens:  # checked before the request is added
            self.transfers.expect(request_id, num_external_tokens, external_latency,
                                  num_prompt_tokens, num_output_tokens)
        table.add(arrival_at, num_prompt_tokens, num_output_tokens)
        table.num_generated_tokens[request_id] = 1 if num_external_tokens else 0
        table.last_token_at[request_id] = first_token_at
        table.priority[request_id] = priority
        self._contents.append(content)
        self.registration.add(request_id, content, num_prompt_tokens, self.kv.block_size,
                              self.kv, self.hasher, self._held_tokens, num_external_tokens)
        state = RequestState(table, request_id)
        self.requests.append(state)
        self._pending.append(request_id)
        if hold_kv:
            self.transfers.hold_when_finished(request_id)
        return state

    @property
    def running(self) -> list[RequestState]:
        return [self.requests[i] for i in self._running]

    @property
    def num_running(self) -> int:
        """``len(running)``, without building the states."""
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        """``len(waiting)``, without building the states."""
        return len(self._waiting)

    @property
    def waiting(self) -> list[RequestState]:
        """Arrived requests not running (new or preempted), in the order they
        would be admitted."""
        return [self.requests[i] for i in self._waiting.ids()]

    @property
    def evicted(self) -> list[RequestState]:
        """Requests swapped to host memory (``preemption_mode='swap'``), in order."""
        return [self.requests[i] for i in self._preemption.swapped]

    @property
    def has_unfinished(self) -> bool:
        return self.num_finished < len(self.table)

    @property
    def num_active(self) -> int:
        return len(self._running) + len(self._waiting) + len(self._preemption.swapped)

    def next_event_at(self) -> float | None:
        """The next arrival (plus ``batch_delay``) or KV transfer event, or None."""
        transfer = self.transfers.next_event_at()
        if not self._pending:
            return transfer
        arrival = self.table.arrival_at.item(self._pending[0]) + self.config.batch_delay
        return arrival if transfer is None else min(transfer, arrival)

    def _held_tokens(self, i: int) -> int:
        """Tokens request ``i``'s blocks were given for: its computed ones, and
        those it computes in the open iteration (between step and update)."""
        n = self.table.num_computed_tokens.item(i)
        plan = self._open_plan
        if plan is not None:
            at = np.flatnonzero(plan.batch.request_ids == i)
            if len(at):
                n += int(plan.batch.num_query_tokens[at[0]])
        return n

    def hasher(self, i: int) -> BlockHasher:
        """Request ``i``'s block hashes (made on first use)."""
        h = self._hashers.get(i)
        if h is None:
            h = self._hashers[i] = BlockHasher(self._contents[i], i,
                                               int(self.table.num_prompt_tokens[i]),
                                               self.kv.block_size)
        return h

    # ---------------------------------------------------------------- step
    def step(self, now: float) -> IterationPlan:
        """Decide the batch of the iteration starting at ``now`` (maybe empty)."""
        if self._open_plan is not None:
            raise RuntimeError("step() called twice without update(); feed the previous "
                               "plan back with update(plan, finished_at) first")
        self._release_arrivals(now)
        self.transfers.step(self.table, self.kv, self._running, self.config.max_batch, now)
        stored = self.kv.num_stored_blocks
        admitted = NOTHING_ADMITTED
        preempted_all: list[int] = []
        swap = self._preemption
        swap.reset()
        swap.swap_in(self.table, self.kv, self._running, self.config.max_batch, self.hasher)
        for i in swap.swapped_in:
            self.registration.resumed(i, self.table.num_computed_tokens.item(i))
        while True:
            rows, budget, preempted = self._schedule_running(self.config.max_num_batched_tokens)
            preempted_all += preempted
            if not preempted and not swap.swapped:  # swapped requests come back first
                admitted = admit_waiting(self.table, self.kv, self.config, self._waiting,
                                         self._running, self.transfers, self.hasher,
                                         self.registration, now, budget)
                if admitted.request_ids:  # the rows are gathered again, with the admitted ones
                    rows = gather_rows(self.table, rows.ids.tolist() + admitted.request_ids,
                                       rows.num_tokens.tolist() + admitted.num_tokens)
            # A request that preempted itself (the lowest priority) leaves an empty
            # batch although the state changed: vLLM's next step, at the same time,
            # schedules again (it terminates: the preemptions freed blocks).
            if len(rows.ids) or not preempted:
                break
        plan = self._make_plan(now, rows, admitted, self.kv.num_stored_blocks - stored,
                               tuple(preempted_all))
        self._open_plan = plan
        return plan

    def _release_arrivals(self, now: float) -> None:
        delay, table, pending = self.config.batch_delay, self.table, self._pending
        while pending and table.arrival_at[pending[0]] + delay <= now:
            i = pending.popleft()
            table.status[i] = WAITING
            self._waiting.push(i, table.priority.item(i), table.arrival_at.item(i))

    def _want(self, i: int) -> int:
        table = self.table
        want = (table.num_prompt_tokens.item(i) + table.num_generated_tokens.item(i)
                - table.num_computed_tokens.item(i))
        threshold = self.config.long_prefill_token_threshold
        return min(want, threshold) if 0 < threshold < want else want

    def _schedule_running(self, budget: int) -> tuple[BatchRows, int, list[int]]:
        """Tokens for the running requests in order; preempts when blocks run out.

        Returns the scheduled requests' :class:`BatchRows`, the budget left and
        the preempted requests. The common case (every running request's new
        blocks fit, FCFS) is planned with array operations on the rows it
        gathers anyway; otherwise the loop below does it one by one.
        """
        run = self._running
        if not run:
            return gather_rows(self.table, [], []), budget, []
        if self._priority:  # a victim by priority: one by one
            return self._schedule_running_slowly(budget)
        table, kv, B = self.table, self.kv, self.kv.block_size
        ids = np.array(run, dtype=np.int64)
        computed = table.num_computed_tokens[ids]
        generated = table.num_generated_tokens[ids]
        rest = table.num_prompt_tokens[ids] + generated - computed
        threshold = self.config.long_prefill_token_threshold
        want = np.minimum(rest, threshold) if threshold > 0 else rest
        total = int(_reduce(want))
        if total < budget:  # the common case (decodes): every request gets all it wants
            num_tokens = want
        else:  # the budget ends inside running: cut there
            avail = budget - (np.cumsum(want) - want)
            count = int(np.count_nonzero(avail > 0))  # avail only decreases
            num_tokens = np.minimum(want[:count], avail[:count])
            ids, computed = ids[:count], computed[:count]
            generated, rest = generated[:count], rest[:count]
            total = int(_reduce(num_tokens))
        # A running request holds exactly the blocks of its computed tokens: it
        # was given blocks for the tokens of its last iteration, all computed.
        # ceil(x / B) == (x - 1) // B + 1, so the new blocks are
        # ceil(hold / B) - ceil(computed / B) with one floor division each.
        before = computed - 1
        grow = (before + num_tokens) // B - before // B
        if int(_reduce(grow)) > kv.num_free_blocks:
            return self._schedule_running_slowly(budget)
        short = grow.nonzero()[0].tolist()
        if short:
            kv.grow_many([run[k] for k in short], grow[short].tolist())
        # Register the blocks the iteration fills, if any request registers
        # them when allocated (block_registration: the others wait until the
        # request gives its blocks back; a decode's blocks usually do).
        reg = self.registration
        if kv.enable_caching and (reg.num_unfinished_all or reg.zone):
            hold = computed + num_tokens
            crossed = (hold // B > computed // B).nonzero()[0].tolist()
            if crossed:
                hasher = self.hasher
                filled = [run[k] for k in crossed]
                kv.cache_full_blocks_many(filled, [hasher(i) for i in filled],
                                          hold[crossed].tolist())
        return BatchRows(ids, num_tokens, computed, generated, rest, total), budget - total, []

    def _schedule_running_slowly(self, budget: int) -> tuple[BatchRows, int, list[int]]:
        table, kv, run = self.table, self.kv, self._running
        scheduled: dict[int, int] = {}  # request -> tokens, in scheduling order
        preempted: list[int] = []
        k = 0
        while k < len(run):
            i = run[k]
            n = min(self._want(i), budget)
            if n <= 0:
                k += 1
                continue
            hold = table.num_computed_tokens.item(i) + n
            while not kv.allocate_slots(i, hold):
                victim = self._victim()
                at = run.index(victim)
                budget += scheduled.pop(victim, 0)
                self.registration.release([victim], table, kv, self.hasher, finished=False)
                self._preemption.preempt(self.table, self.kv, self._running, self._waiting,
                                         victim)
                preempted.append(victim)
                if victim == i:
                    break
                if at < k:
                    k -= 1
            else:
                kv.cache_full_blocks(i, self.hasher(i), hold)
                scheduled[i] = n
                budget -= n
                k += 1
                continue
            break  # the request preempted itself; the rest of running waits
        return gather_rows(table, list(scheduled), list(scheduled.values())), budget, preempted

    def _victim(self) -> int:
        if not self._priority:
            return self._running[-1]
        table = self.table
        return max(self._running, key=lambda i: (table.priority.item(i),
                                                 table.arrival_at.item(i), i))

    def _make_plan(self, now: float, rows: BatchRows, admitted: Admission,
                   num_stored_blocks: int, preempted: tuple[int, ...]) -> IterationPlan:
        """The plan of ``rows``, with this step's admissions, the blocks it stored
        to the host tier and the requests it preempted."""
        swap, kv = self._preemption, self.kv
        block_bytes = kv.block_size * self.kv_bytes_per_token
        host_blocks = admitted.num_host_blocks
        return plan_of_rows(
            self.table, self._iteration, now, rows,
            evicted_request_ids=tuple(swap.swapped_out),
            reloaded_request_ids=tuple(swap.swapped_in),
            evicted_bytes=float(num_stored_blocks * block_bytes) + swap.bytes_out,
            reloaded_bytes=float(host_blocks * block_bytes) + swap.bytes_in,
            num_used_blocks=kv.num_used_blocks, num_blocks=kv.num_blocks,
            num_prefix_query_tokens=admitted.num_query_tokens,
            num_cached_tokens=admitted.num_cached_tokens,
            preempted_request_ids=preempted,
            num_host_cached_tokens=host_blocks * kv.block_size,
            num_recompute_cached_tokens=admitted.num_recompute_cached_tokens)

    # -------------------------------------------------------------- update
    def update(self, plan: IterationPlan, finished_at: float) -> list[RequestState]:
        """Advance the plan's requests by their tokens; return those that finished."""
        check_update(self._open_plan, plan, finished_at)
        self._open_plan = None
        if plan.is_empty:
            return []
        self._iteration += 1
        batch = plan.batch
        done_ids = self.table.advance(batch.request_ids, batch.num_query_tokens,
                                      batch.num_logit_tokens.astype(bool), finished_at).tolist()
        reg = self.registration
        if reg.zone:
            reg.prune(self.table)
        if not done_ids:
            return []
        self.registration.release(done_ids, self.table, self.kv, self.hasher, finished=True)
        for i in done_ids:
            if not self.transfers.keeps(i):  # a prefill side holds it until sent
                self.kv.free(i)
            self._hashers.pop(i, None)
        gone = set(done_ids)
        self._running = [i for i in self._running if i not in gone]
        self.num_finished += len(done_ids)
        return [self.requests[i] for i in done_ids]
