"""Iteration-level scheduler (Orca) with a paged KV cache (vLLM).

The cycle is decide -> execute -> feed back::

    plan = scheduler.step(now)            # IterationPlan: who computes how many tokens
    ... engines time the plan ...
    scheduler.update(plan, finished_at)   # advance tokens, retire finished requests

``step`` and ``update`` must alternate; each is usable on its own in a notebook.

Policies (``SchedulerConfig.policy``), all expressed as tokens per request:

- ``orca``: every running request computes its next tokens (a whole prompt or
  one decode token) and waiting requests are admitted with their whole prompt
  into the same batch, while memory and ``max_batch`` allow.
- ``vllm``: prefill-first, as vLLM v0. If any waiting request can be admitted,
  the iteration holds only newly admitted prompts; otherwise it decodes.
- ``chunked``: a budget of ``max_num_batched_tokens`` per iteration, spent on
  running requests first (decodes and the next chunk of a partial prompt),
  then on prompt chunks of newly admitted requests (Sarathi-Serve, vLLM v1).

Memory (the paper's KV cache-aware modelling): blocks are allocated on demand.
When a running request cannot get the block it needs, the most recently
admitted running request is evicted: its blocks are freed and its KV bytes are
charged as a store to host memory. Evicted requests are reloaded, earliest
admitted first, before any new request is admitted, once their blocks fit with
one spare block per running request left over (so a reload does not force an
eviction in the same iteration).

Invariants
----------
- A request is in exactly one of: pending, waiting, running, evicted, finished.
- Only running requests hold KV blocks; ``kv.num_used_blocks <= kv.num_blocks``.
- Requests are admitted in arrival order (FCFS) and finish exactly once.
- ``running`` is in admission order; eviction takes its last entry.

State is kept as arrays (:class:`~.request_state.RequestTable`) and the running
set as an array of ids, so a batch of decodes is planned and advanced with a
few array operations; only the requests that need a new KV block, are
admitted, evicted, reloaded or finish are handled one by one.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from ..config import SchedulerConfig
from ..models.ops import BatchShape
from .kv_cache import KVCacheManager
from .plan import IterationPlan, check_update
from .request_state import (EVICTED, FINISHED, RUNNING, WAITING, RequestState, RequestTable,
                            max_kv_tokens)

_NO_IDS = np.zeros(0, dtype=np.int64)


class Scheduler:
    """Forms one batch per iteration and tracks every request's progress.

    Parameters
    ----------
    config : SchedulerConfig
    kv_cache : KVCacheManager
        The device's block pool (sized by the simulator from memory and model).
    kv_bytes_per_token : int
        Bytes one token's K and V take over all layers (eviction traffic).

    Attributes
    ----------
    table : RequestTable
        Every request's state (arrays indexed by request id).
    requests : list of RequestState
        A read-only view per request, in id order.
    """

    def __init__(self, config: SchedulerConfig, kv_cache: KVCacheManager,
                 kv_bytes_per_token: int) -> None:
        self.config = config
        self.kv = kv_cache
        self.kv_bytes_per_token = kv_bytes_per_token
        self.table = RequestTable()
        self.requests: list[RequestState] = []
        self._pending: deque[int] = deque()
        self._waiting: deque[int] = deque()
        self._running = _NO_IDS                 # ids in admission order
        self._evicted: list[int] = []           # ids in admission order
        self._admission_seq = np.zeros(64, dtype=np.int64)
        # Blocks each request holds, mirroring kv's tables: the scheduler owns
        # kv and allocates and frees only through _allocate / _free.
        self._blocks_held = np.zeros(64, dtype=np.int64)
        self._num_admitted = 0
        self.num_finished = 0
        self._iteration = 0
        self._open_plan: IterationPlan | None = None

    # ------------------------------------------------------------ requests
    def add(self, request_id: int, arrival_at: float, num_prompt_tokens: int,
            num_output_tokens: int, content=None, priority: int = 0) -> RequestState:
        """Register a request; ids must be 0, 1, 2, ... in arrival order.

        ``content`` (a :class:`~llmsim_nb.workload.content.RequestContent`) only
        matters to prefix caching, which these policies do not do (vllm-v1
        does); ``priority`` is stored, and these policies admit FCFS.
        """
        table = self.table
        gen = self.config.gen
        max_kv = max_kv_tokens(num_prompt_tokens, num_output_tokens, gen)
        table.check_new(request_id, arrival_at, max_kv, self.kv.blocks_for, self.kv.num_blocks)
        table.add(arrival_at, num_prompt_tokens, num_output_tokens, gen=gen)
        table.priority[request_id] = priority
        if len(table) > len(self._blocks_held):
            grown = 2 * len(self._blocks_held)
            self._blocks_held = np.concatenate((self._blocks_held,
                                                np.zeros(grown // 2, dtype=np.int64)))
            self._admission_seq = np.concatenate((self._admission_seq,
                                                  np.zeros(grown // 2, dtype=np.int64)))
        state = RequestState(table, request_id)
        self.requests.append(state)
        self._pending.append(request_id)
        return state

    @property
    def running(self) -> list[RequestState]:
        """Requests holding KV blocks on the device, in admission order."""
        return [self.requests[i] for i in self._running.tolist()]

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
        """Arrived requests never admitted, in arrival order."""
        return [self.requests[i] for i in self._waiting]

    @property
    def evicted(self) -> list[RequestState]:
        """Requests whose KV cache is in host memory, in admission order."""
        return [self.requests[i] for i in self._evicted]

    @property
    def has_unfinished(self) -> bool:
        return self.num_finished < len(self.table)

    @property
    def num_active(self) -> int:
        """Requests released to the scheduler and not finished: running,
        waiting or evicted (not the pending ones, which have not arrived)."""
        return len(self._running) + len(self._waiting) + len(self._evicted)

    def next_event_at(self) -> float | None:
        """When the next pending request becomes schedulable (None if none is)."""
        if not self._pending:
            return None
        return float(self.table.arrival_at[self._pending[0]]) + self.config.batch_delay

    # ---------------------------------------------------------------- step
    def step(self, now: float) -> IterationPlan:
        """Decide the batch of the iteration starting at ``now``.

        The returned plan may be empty (nothing schedulable yet); the caller
        then advances time to :meth:`next_event_at`.
        """
        if self._open_plan is not None:
            raise RuntimeError("step() called twice without update(); feed the previous "
                               "plan back with update(plan, finished_at) first")
        self._release_arrivals(now)
        self._evicted_now: list[int] = []
        self._evicted_bytes = 0.0
        ids, num_tokens = _NO_IDS, _NO_IDS
        reloaded: list[int] = []
        reloaded_bytes = 0.0
        policy = self.config.policy
        budget = self.config.max_num_batched_tokens if policy == "chunked" else None

        prefill_only = False
        if policy == "vllm" and not self._evicted and self._waiting:
            ids, num_tokens, _ = self._admit_waiting(now, None)
            prefill_only = len(ids) > 0
        if not prefill_only:
            reloaded, reloaded_bytes = self._reload()
            ids, num_tokens, budget = self._schedule_running(budget)
            if not self._evicted and policy != "vllm":
                new_ids, new_tokens, budget = self._admit_waiting(now, budget)
                if len(new_ids):
                    ids = np.concatenate((ids, new_ids))
                    num_tokens = np.concatenate((num_tokens, new_tokens))

        plan = self._make_plan(now, ids, num_tokens, tuple(reloaded), reloaded_bytes)
        self._open_plan = plan
        return plan

    def _release_arrivals(self, now: float) -> None:
        delay, table = self.config.batch_delay, self.table
        pending = self._pending
        while pending and table.arrival_at[pending[0]] + delay <= now:
            i = pending.popleft()
            if table.is_done(i):  # zero-output request whose prompt is already cached (gen)
                table.status[i] = FINISHED
                table.admitted_at[i] = table.finished_at[i] = now
                self.num_finished += 1
                continue
            table.status[i] = WAITING
            self._waiting.append(i)

    def _tokens_to_hold(self, i: int, num_tokens: int) -> int:
        if self.config.kv_manage == "max":
            return self.table.max_kv_tokens.item(i)
        return self.table.num_computed_tokens.item(i) + num_tokens

    def _allocate(self, i: int, num_tokens: int) -> None:
        self.kv.allocate(i, num_tokens)
        self._blocks_held[i] = self.kv.num_blocks_held(i)

    def _free(self, i: int) -> None:
        self.kv.free(i)
        self._blocks_held[i] = 0

    def _reload(self) -> tuple[list[int], float]:
        reloaded: list[int] = []
        moved = 0.0
        table = self.table
        while self._evicted and not self._batch_full_with(0):
            i = self._evicted[0]
            hold = self._tokens_to_hold(i, table.next_num_tokens(i))
            spare = len(self._running)
            if self.kv.num_new_blocks(i, hold) + spare > self.kv.num_free_blocks:
                break
            self._evicted.pop(0)
            self._allocate(i, hold)
            table.status[i] = RUNNING
            seq = self._admission_seq
            at = int(np.searchsorted(seq[self._running], seq[i], side="right"))
            self._running = np.insert(self._running, at, i)
            reloaded.append(i)
            moved += int(table.num_computed_tokens[i]) * self.kv_bytes_per_token
        return reloaded, moved

    def _schedule_running(self, budget: int | None) -> tuple[np.ndarray, np.ndarray,
                                                              int | None]:
        """Tokens for every running request, in admission order: the rest of
        its prompt (a chunk of it within ``budget``) or one decode token.

        Requests whose tokens do not fit their blocks get a block, evicting
        from the back of ``running`` (the most recently admitted) while the
        pool is short. Returns the batch's ids and tokens and the budget left.
        """
        run = self._running
        if not len(run):
            return _NO_IDS, _NO_IDS, budget
        table = self.table
        computed = table.num_computed_tokens[run]
        left = table.num_prompt_tokens[run] - computed
        want = np.maximum(left, 1)  # the rest of the prompt, else one decode token
        if budget is None:
            count, num_tokens = len(run), want
        else:
            # Requests are served in order while budget remains; a prompt
            # chunk takes what is left of it (a decode needs only 1 <= budget).
            avail = budget - (np.cumsum(want) - want)
            count = int(np.count_nonzero(avail > 0))  # avail only decreases
            num_tokens = np.minimum(want[:count], avail[:count])
        hold = (table.max_kv_tokens[run[:count]] if self.config.kv_manage == "max"
                else computed[:count] + num_tokens)
        held = self._blocks_held[run[:count]]
        short = np.flatnonzero(hold > held * self.kv.block_size)
        if len(short):
            need = -(-hold[short] // self.kv.block_size) - held[short]
            if int(need.sum()) <= self.kv.num_free_blocks:  # the common case: no eviction
                ids = run[short]
                self.kv.allocate_many(ids.tolist(), need.tolist())
                self._blocks_held[ids] += need
                short = short[:0]
        for k in short.tolist():
            i = int(run[k])
            if table.status[i] != RUNNING:
                break  # evicted for an earlier request; so is everything after it
            tokens = int(hold[k])
            while not self.kv.can_allocate(i, tokens):
                victim = int(self._running[-1])
                self._evict(victim)
                if victim == i:
                    break
            if table.status[i] != RUNNING:
                break  # it evicted itself; everything admitted after it is gone too
            self._allocate(i, tokens)
        # Eviction only shortens running from the back, and never below the
        # request that caused it, so the batch is a prefix of the old order.
        count = min(count, len(self._running))
        if budget is not None:
            budget -= int(num_tokens[:count].sum())
        return run[:count], num_tokens[:count], budget

    def _admit_waiting(self, now: float, budget: int | None) -> tuple[np.ndarray, np.ndarray,
                                                                      int | None]:
        ids: list[int] = []
        num_tokens: list[int] = []
        table = self.table
        while self._waiting and not self._batch_full_with(len(ids)):
            if budget is not None and budget <= 0:
                break
            i = self._waiting[0]
            n = table.next_num_tokens(i, budget)
            hold = self._tokens_to_hold(i, n)
            if not self.kv.can_allocate(i, hold):
                break  # FCFS: the head of the queue waits for memory
            self._waiting.popleft()
            self._allocate(i, hold)
            table.status[i] = RUNNING
            table.admitted_at[i] = now
            self._admission_seq[i] = self._num_admitted
            self._num_admitted += 1
            ids.append(i)
            num_tokens.append(n)
            if budget is not None:
                budget -= n
        if not ids:
            return _NO_IDS, _NO_IDS, budget
        admitted = np.array(ids, dtype=np.int64)
        self._running = np.concatenate((self._running, admitted))
        return admitted, np.array(num_tokens, dtype=np.int64), budget

    def _batch_full_with(self, num_admitted: int) -> bool:
        return 0 < self.config.max_batch <= len(self._running) + num_admitted

    def _evict(self, i: int) -> None:
        """Move the last running request ``i`` to host memory."""
        self._free(i)
        self._running = self._running[:-1]
        table = self.table
        table.status[i] = EVICTED
        table.num_evictions[i] += 1
        seq = self._admission_seq
        at = int(np.searchsorted(seq[self._evicted], seq[i], side="right")) \
            if self._evicted else 0
        self._evicted.insert(at, i)
        self._evicted_now.append(i)
        self._evicted_bytes += int(table.num_computed_tokens[i]) * self.kv_bytes_per_token

    def _make_plan(self, now: float, ids: np.ndarray, num_tokens: np.ndarray,
                   reloaded: tuple[int, ...], reloaded_bytes: float) -> IterationPlan:
        table = self.table
        computed = table.num_computed_tokens[ids]
        prompt = table.num_prompt_tokens[ids]
        emits = ((computed + num_tokens >= prompt)
                 & (table.num_generated_tokens[ids] < table.num_output_tokens[ids]))
        prompt_tokens = np.minimum(num_tokens, np.maximum(prompt - computed, 0))
        return IterationPlan(
            iteration=self._iteration, scheduled_at=now,
            batch=BatchShape(ids.copy(), num_tokens.copy(), computed,
                             emits.astype(np.int64)),
            num_prompt_tokens=prompt_tokens,
            evicted_request_ids=tuple(self._evicted_now),
            reloaded_request_ids=reloaded, evicted_bytes=self._evicted_bytes,
            reloaded_bytes=reloaded_bytes, num_used_blocks=self.kv.num_used_blocks,
            num_blocks=self.kv.num_blocks)

    # -------------------------------------------------------------- update
    def update(self, plan: IterationPlan, finished_at: float) -> list[RequestState]:
        """Advance the plan's requests by their tokens; return those that finished."""
        check_update(self._open_plan, plan, finished_at)
        self._open_plan = None
        if plan.is_empty:
            return []
        self._iteration += 1
        batch = plan.batch
        # The plan's logits are this policy's emissions: the prompt is in and
        # outputs remain (_make_plan).
        done_ids = self.table.advance(batch.request_ids, batch.num_query_tokens,
                                      batch.num_logit_tokens.astype(bool), finished_at)
        if not len(done_ids):
            return []
        for i in done_ids.tolist():
            self._free(i)
        self._running = self._running[self.table.status[self._running] == RUNNING]
        self.num_finished += len(done_ids)
        return [self.requests[i] for i in done_ids.tolist()]
