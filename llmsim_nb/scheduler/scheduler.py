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
"""

from __future__ import annotations

import bisect
from collections import deque

import numpy as np

from ..config import SchedulerConfig
from ..models.ops import BatchShape
from .kv_cache import KVCacheManager
from .plan import IterationPlan
from .request_state import RequestState, RequestStatus


class Scheduler:
    """Forms one batch per iteration and tracks every request's progress.

    Parameters
    ----------
    config : SchedulerConfig
    kv_cache : KVCacheManager
        The device's block pool (sized by the simulator from memory and model).
    kv_bytes_per_token : int
        Bytes one token's K and V take over all layers (eviction traffic).
    """

    def __init__(self, config: SchedulerConfig, kv_cache: KVCacheManager,
                 kv_bytes_per_token: int) -> None:
        self.config = config
        self.kv = kv_cache
        self.kv_bytes_per_token = kv_bytes_per_token
        self.requests: list[RequestState] = []
        self._pending: deque[RequestState] = deque()
        self.waiting: deque[RequestState] = deque()
        self.running: list[RequestState] = []   # in admission order
        self.evicted: list[RequestState] = []   # in admission order
        self._admission_seq: dict[int, int] = {}
        self._num_admitted = 0
        self.num_finished = 0
        self._iteration = 0
        self._open_plan: IterationPlan | None = None

    # ------------------------------------------------------------ requests
    def add(self, request_id: int, arrival_at: float, num_prompt_tokens: int,
            num_output_tokens: int) -> RequestState:
        """Register a request; ids must be 0, 1, 2, ... in arrival order."""
        if request_id != len(self.requests):
            raise ValueError(f"request ids must be consecutive from 0; got {request_id} "
                             f"after {len(self.requests)} requests")
        if self.requests and arrival_at < self.requests[-1].arrival_at:
            raise ValueError(f"request {request_id} arrives at {arrival_at} s, before the "
                             f"previous request ({self.requests[-1].arrival_at} s)")
        state = RequestState(request_id, arrival_at, num_prompt_tokens, num_output_tokens,
                             gen=self.config.gen)
        need = self.kv.blocks_for(state.max_kv_tokens)
        if need > self.kv.num_blocks:
            raise ValueError(
                f"request {request_id} needs {need} KV blocks ({state.max_kv_tokens} tokens) "
                f"but the device holds only {self.kv.num_blocks}; it could never run "
                f"(give more memory or shorten the request)")
        self.requests.append(state)
        self._pending.append(state)
        return state

    @property
    def has_unfinished(self) -> bool:
        return self.num_finished < len(self.requests)

    def next_event_at(self) -> float | None:
        """When the next pending request becomes schedulable (None if none is)."""
        if not self._pending:
            return None
        return self._pending[0].arrival_at + self.config.batch_delay

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
        entries: list[tuple[RequestState, int]] = []
        reloaded: list[int] = []
        reloaded_bytes = 0.0
        policy = self.config.policy
        budget = self.config.max_num_batched_tokens if policy == "chunked" else None

        prefill_only = False
        if policy == "vllm" and not self.evicted and self.waiting:
            entries = self._admit_waiting(now, None)
            prefill_only = bool(entries)
        if not prefill_only:
            reloaded, reloaded_bytes = self._reload()
            entries, budget = self._schedule_running(budget)
            if not self.evicted and policy != "vllm":
                entries += self._admit_waiting(now, budget)

        plan = self._make_plan(now, entries, tuple(reloaded), reloaded_bytes)
        self._open_plan = plan
        return plan

    def _release_arrivals(self, now: float) -> None:
        delay = self.config.batch_delay
        while self._pending and self._pending[0].arrival_at + delay <= now:
            state = self._pending.popleft()
            if state.is_done:  # zero-output request whose prompt is already cached (gen)
                state.status = RequestStatus.FINISHED
                state.admitted_at = state.finished_at = now
                self.num_finished += 1
                continue
            state.status = RequestStatus.WAITING
            self.waiting.append(state)

    def _batch_full(self) -> bool:
        return 0 < self.config.max_batch <= len(self.running)

    def _tokens_to_hold(self, state: RequestState, num_tokens: int) -> int:
        if self.config.kv_manage == "max":
            return state.max_kv_tokens
        return state.num_computed_tokens + num_tokens

    def _reload(self) -> tuple[list[int], float]:
        reloaded: list[int] = []
        moved = 0.0
        while self.evicted and not self._batch_full():
            state = self.evicted[0]
            hold = self._tokens_to_hold(state, state.next_num_tokens())
            spare = len(self.running)
            if self.kv.num_new_blocks(state.request_id, hold) + spare > self.kv.num_free_blocks:
                break
            self.evicted.pop(0)
            self.kv.allocate(state.request_id, hold)
            state.status = RequestStatus.RUNNING
            self._insert_running(state)
            reloaded.append(state.request_id)
            moved += state.num_computed_tokens * self.kv_bytes_per_token
        return reloaded, moved

    def _schedule_running(self, budget: int | None) -> tuple[list[tuple[RequestState, int]],
                                                              int | None]:
        entries: list[tuple[RequestState, int]] = []
        kv, capacity_of = self.kv, self.kv.tokens_held_capacity
        running = RequestStatus.RUNNING
        reserve_max = self.config.kv_manage == "max"
        for state in list(self.running):
            if state.status is not running:
                continue  # evicted earlier in this loop
            if budget is not None and budget <= 0:
                break
            computed = state.num_computed_tokens
            if computed >= state.num_prompt_tokens:
                n = 1  # a decode step (running requests are never done)
            else:
                n = state.next_num_tokens(budget)
            hold = state.max_kv_tokens if reserve_max else computed + n
            if hold <= capacity_of(state.request_id):
                # Most decode steps: the token fits the request's last block.
                entries.append((state, n))
                if budget is not None:
                    budget -= n
                continue
            while not kv.can_allocate(state.request_id, hold):
                victim = self.running[-1]
                self._evict(victim)
                if victim is state:
                    break
            if state.status is not RequestStatus.RUNNING:
                break  # it evicted itself; everything admitted after it is gone too
            self.kv.allocate(state.request_id, hold)
            entries.append((state, n))
            if budget is not None:
                budget -= n
        return entries, budget

    def _admit_waiting(self, now: float, budget: int | None) -> list[tuple[RequestState, int]]:
        entries: list[tuple[RequestState, int]] = []
        while self.waiting and not self._batch_full():
            if budget is not None and budget <= 0:
                break
            state = self.waiting[0]
            n = state.next_num_tokens(budget)
            hold = self._tokens_to_hold(state, n)
            if not self.kv.can_allocate(state.request_id, hold):
                break  # FCFS: the head of the queue waits for memory
            self.waiting.popleft()
            self.kv.allocate(state.request_id, hold)
            state.status = RequestStatus.RUNNING
            state.admitted_at = now
            self._admission_seq[state.request_id] = self._num_admitted
            self._num_admitted += 1
            self.running.append(state)
            entries.append((state, n))
            if budget is not None:
                budget -= n
        return entries

    def _evict(self, state: RequestState) -> None:
        self.kv.free(state.request_id)
        self.running.remove(state)
        state.status = RequestStatus.EVICTED
        state.num_evictions += 1
        seq = self._admission_seq
        keys = [seq[s.request_id] for s in self.evicted]
        self.evicted.insert(bisect.bisect(keys, seq[state.request_id]), state)
        self._evicted_now.append(state.request_id)
        self._evicted_bytes += state.num_computed_tokens * self.kv_bytes_per_token

    def _insert_running(self, state: RequestState) -> None:
        seq = self._admission_seq
        keys = [seq[s.request_id] for s in self.running]
        self.running.insert(bisect.bisect(keys, seq[state.request_id]), state)

    def _make_plan(self, now: float, entries: list[tuple[RequestState, int]],
                   reloaded: tuple[int, ...], reloaded_bytes: float) -> IterationPlan:
        # Python lists first, one numpy conversion each (per-element numpy
        # writes cost more than the list appends in this per-iteration path).
        ids, query, context, logits, prompt = [], [], [], [], []
        for state, n in entries:
            ids.append(state.request_id)
            query.append(n)
            context.append(state.num_computed_tokens)
            logits.append(1 if state.emits_token(n) else 0)
            prompt.append(min(n, state.num_prompt_tokens_left))
        ids, query, context, logits, prompt = (np.array(v, dtype=np.int64) for v in
                                               (ids, query, context, logits, prompt))
        # A request reloaded and then evicted again in the same step moved both ways.
        return IterationPlan(
            iteration=self._iteration, scheduled_at=now,
            batch=BatchShape(ids, query, context, logits), num_prompt_tokens=prompt,
            evicted_request_ids=tuple(self._evicted_now),
            reloaded_request_ids=reloaded, evicted_bytes=self._evicted_bytes,
            reloaded_bytes=reloaded_bytes, num_used_blocks=self.kv.num_used_blocks,
            num_blocks=self.kv.num_blocks)

    # -------------------------------------------------------------- update
    def update(self, plan: IterationPlan, finished_at: float) -> list[RequestState]:
        """Advance the plan's requests by their tokens; return those that finished."""
        if plan is not self._open_plan:
            raise RuntimeError("update() must receive the plan returned by the last step()")
        if finished_at < plan.scheduled_at:
            raise ValueError(f"finished_at={finished_at} is before the iteration's start "
                             f"{plan.scheduled_at}")
        self._open_plan = None
        if not plan.is_empty:
            self._iteration += 1
        done: list[RequestState] = []
        batch = plan.batch
        for rid, n in zip(batch.request_ids.tolist(), batch.num_query_tokens.tolist()):
            state = self.requests[rid]
            state.num_computed_tokens += n
            if (state.num_computed_tokens >= state.num_prompt_tokens
                    and state.num_generated_tokens < state.num_output_tokens):
                state.num_generated_tokens += 1
                if state.num_generated_tokens == 1:
                    state.first_token_at = finished_at
            if state.is_done:
                state.status = RequestStatus.FINISHED
                state.finished_at = finished_at
                self.kv.free(rid)
                done.append(state)
        if done:
            self.running = [s for s in self.running if s.status is RequestStatus.RUNNING]
            self.num_finished += len(done)
        return done
