"""A plain, one-request-at-a-time scheduler: the oracle for the vectorised one.

It states the scheduling rules of :mod:`llmsim_nb.scheduler.scheduler` as
directly as possible (a Python object per request, loops over the running
list, one block allocation at a time) and is used only by
``test_scheduler_reference.py``, which drives both with the same requests and
demands identical plans, block tables and request timestamps.
"""

from __future__ import annotations

import math
from collections import deque

from llmsim_nb.scheduler import KVCacheManager


class Request:
    def __init__(self, request_id, arrival_at, prompt, output, gen):
        self.request_id = request_id
        self.arrival_at = arrival_at
        self.prompt = prompt
        self.output = output
        self.computed = prompt if gen else 0
        self.generated = 0
        self.status = "pending"
        self.admitted_at = self.first_token_at = self.finished_at = math.nan
        self.evictions = 0
        self.max_kv = prompt + (output if gen else max(output - 1, 0))
        self.seq = -1  # admission order

    @property
    def done(self):
        return self.generated >= self.output and self.computed >= self.prompt

    def next_tokens(self, budget=None):
        left = max(0, self.prompt - self.computed)
        if left:
            return left if budget is None else min(left, budget)
        return 0 if self.done else 1

    def emits(self, n):
        return self.computed + n >= self.prompt and self.generated < self.output


class ReferenceScheduler:
    """Same rules as ``Scheduler``; ``step`` returns a dict of the plan's fields."""

    def __init__(self, config, num_blocks, block_size, kv_bytes_per_token):
        self.config = config
        self.kv = KVCacheManager(num_blocks, block_size)
        self.bytes_per_token = kv_bytes_per_token
        self.requests, self.pending, self.waiting = [], deque(), deque()
        self.running, self.evicted = [], []
        self.num_admitted = self.num_finished = 0

    def add(self, arrival_at, prompt, output):
        r = Request(len(self.requests), arrival_at, prompt, output, self.config.gen)
        self.requests.append(r)
        self.pending.append(r)

    def next_event_at(self):
        return self.pending[0].arrival_at + self.config.batch_delay if self.pending else None

    def _full(self):
        return 0 < self.config.max_batch <= len(self.running)

    def _hold(self, r, n):
        return r.max_kv if self.config.kv_manage == "max" else r.computed + n

    def _evict(self, r):
        self.kv.free(r.request_id)
        self.running.remove(r)
        r.status = "evicted"
        r.evictions += 1
        self.evicted.append(r)
        self.evicted.sort(key=lambda x: x.seq)
        self.evicted_now.append(r.request_id)
        self.evicted_bytes += r.computed * self.bytes_per_token

    def step(self, now):
        while self.pending and self.pending[0].arrival_at + self.config.batch_delay <= now:
            r = self.pending.popleft()
            if r.done:
                r.status = "finished"
                r.admitted_at = r.finished_at = now
                self.num_finished += 1
            else:
                r.status = "waiting"
                self.waiting.append(r)
        self.evicted_now, self.evicted_bytes = [], 0.0
        entries, reloaded, reloaded_bytes = [], [], 0.0
        policy = self.config.policy
        budget = self.config.max_num_batched_tokens if policy == "chunked" else None
        prefill_only = False
        if policy == "vllm" and not self.evicted and self.waiting:
            entries = self._admit(now, None)[0]
            prefill_only = bool(entries)
        if not prefill_only:
            while self.evicted and not self._full():  # reload, earliest admitted first
                r = self.evicted[0]
                hold = self._hold(r, r.next_tokens())
                if (self.kv.num_new_blocks(r.request_id, hold) + len(self.running)
                        > self.kv.num_free_blocks):
                    break
                self.evicted.pop(0)
                self.kv.allocate(r.request_id, hold)
                r.status = "running"
                self.running.append(r)
                self.running.sort(key=lambda x: x.seq)
                reloaded.append(r.request_id)
                reloaded_bytes += r.computed * self.bytes_per_token
            for r in list(self.running):
                if r.status != "running":
                    continue
                if budget is not None and budget <= 0:
                    break
                n = r.next_tokens(budget)
                hold = self._hold(r, n)
                while not self.kv.can_allocate(r.request_id, hold):
                    victim = self.running[-1]
                    self._evict(victim)
                    if victim is r:
                        break
                if r.status != "running":
                    break
                self.kv.allocate(r.request_id, hold)
                entries.append((r, n))
                if budget is not None:
                    budget -= n
            if not self.evicted and policy != "vllm":
                entries += self._admit(now, budget)[0]
        return {
            "request_ids": [r.request_id for r, _ in entries],
            "num_query_tokens": [n for _, n in entries],
            "num_context_tokens": [r.computed for r, _ in entries],
            "num_logit_tokens": [int(r.emits(n)) for r, n in entries],
            "num_prompt_tokens": [min(n, max(0, r.prompt - r.computed)) for r, n in entries],
            "evicted": list(self.evicted_now), "reloaded": reloaded,
            "evicted_bytes": self.evicted_bytes, "reloaded_bytes": reloaded_bytes,
            "num_used_blocks": self.kv.num_used_blocks,
        }

    def _admit(self, now, budget):
        entries = []
        while self.waiting and not self._full():
            if budget is not None and budget <= 0:
                break
            r = self.waiting[0]
            n = r.next_tokens(budget)
            hold = self._hold(r, n)
            if not self.kv.can_allocate(r.request_id, hold):
                break
            self.waiting.popleft()
            self.kv.allocate(r.request_id, hold)
            r.status, r.admitted_at, r.seq = "running", now, self.num_admitted
            self.num_admitted += 1
            self.running.append(r)
            entries.append((r, n))
            if budget is not None:
                budget -= n
        return entries, budget

    def update(self, plan, finished_at):
        done = []
        for rid, n in zip(plan["request_ids"], plan["num_query_tokens"]):
            r = self.requests[rid]
            r.computed += n
            if r.computed >= r.prompt and r.generated < r.output:
                r.generated += 1
                if r.generated == 1:
                    r.first_token_at = finished_at
            if r.done:
                r.status, r.finished_at = "finished", finished_at
                self.kv.free(rid)
                done.append(rid)
        self.running = [r for r in self.running if r.status == "running"]
        self.num_finished += len(done)
        return done
