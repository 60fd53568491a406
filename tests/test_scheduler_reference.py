"""The vectorised scheduler against a plain one-request-at-a-time oracle.

Random requests and scheduler settings (every policy, both KV modes, batch
caps, token budgets, batch delays, ``gen``, and memory small enough to force
evictions, self-evictions and reloads) drive both schedulers in lockstep;
every plan, every block table and every request's timestamps must agree.
"""

import math

import numpy as np
from hypothesis import event, given, settings
from hypothesis import strategies as st

from llmsim_nb.config import SchedulerConfig
from llmsim_nb.scheduler import KVCacheManager, RequestStatus, Scheduler

from .reference_scheduler import ReferenceScheduler

KV_BYTES_PER_TOKEN = 10


@st.composite
def cases(draw):
    block_size = draw(st.integers(1, 6))
    gen = draw(st.booleans())
    config = SchedulerConfig(
        policy=draw(st.sampled_from(["orca", "vllm", "chunked"])),
        kv_manage=draw(st.sampled_from(["vllm", "max"])),
        max_batch=draw(st.integers(0, 4)),
        block_size=block_size,
        max_num_batched_tokens=draw(st.integers(1, 40)),
        batch_delay=draw(st.sampled_from([0.0, 0.5])),
        gen=gen)
    n = draw(st.integers(1, 14))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.3, 1.0, 4.0]), min_size=n, max_size=n))
    prompts = draw(st.lists(st.integers(1, 20), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(0, 25), min_size=n, max_size=n))
    largest = max(p + (o if gen else max(o - 1, 0)) for p, o in zip(prompts, outputs))
    need = -(-largest // block_size)
    num_blocks = need + draw(st.integers(0, need))  # tight: evictions are common
    arrivals = np.cumsum(gaps).tolist()
    return config, num_blocks, list(zip(arrivals, prompts, outputs))


def plan_fields(plan):
    batch = plan.batch
    return {
        "request_ids": batch.request_ids.tolist(),
        "num_query_tokens": batch.num_query_tokens.tolist(),
        "num_context_tokens": batch.num_context_tokens.tolist(),
        "num_logit_tokens": batch.num_logit_tokens.tolist(),
        "num_prompt_tokens": plan.num_prompt_tokens.tolist(),
        "evicted": list(plan.evicted_request_ids), "reloaded": list(plan.reloaded_request_ids),
        "evicted_bytes": plan.evicted_bytes, "reloaded_bytes": plan.reloaded_bytes,
        "num_used_blocks": plan.num_used_blocks,
    }


@settings(max_examples=500, deadline=None)
@given(cases())
def test_vectorised_scheduler_matches_the_reference_step_by_step(case):
    config, num_blocks, requests = case
    sched = Scheduler(config, KVCacheManager(num_blocks, config.block_size), KV_BYTES_PER_TOKEN)
    ref = ReferenceScheduler(config, num_blocks, config.block_size, KV_BYTES_PER_TOKEN)
    for i, (arrival, prompt, output) in enumerate(requests):
        sched.add(i, arrival, prompt, output)
        ref.add(arrival, prompt, output)
    now, iterations = 0.0, 0
    while sched.has_unfinished:
        plan, expected = sched.step(now), ref.step(now)
        assert plan_fields(plan) == expected, f"iteration {iterations} at t={now}"
        assert sched.kv.block_table() == ref.kv.block_table()
        if plan.is_empty:
            sched.update(plan, now)
            ref.update(expected, now)
            assert sched.next_event_at() == ref.next_event_at()
            if sched.next_event_at() is None:
                break  # zero-output requests finished on arrival (gen)
            now = max(now, sched.next_event_at())
            continue
        if plan.evicted_request_ids:
            event("evicted")
        if plan.reloaded_request_ids:
            event("reloaded")
        if set(plan.evicted_request_ids) & set(plan.reloaded_request_ids):
            event("reloaded and evicted in one step")
        now += 1.0
        done = sched.update(plan, now)
        assert [s.request_id for s in done] == ref.update(expected, now)
        iterations += 1
        assert iterations < 5000, "no progress"
    assert ref.num_finished == len(requests) == sched.num_finished
    for state, r in zip(sched.requests, ref.requests):
        assert state.status is RequestStatus.FINISHED
        for ours, theirs in ((state.admitted_at, r.admitted_at),
                             (state.first_token_at, r.first_token_at),
                             (state.finished_at, r.finished_at)):
            assert ours == theirs or (math.isnan(ours) and math.isnan(theirs))
        assert (state.num_computed_tokens, state.num_generated_tokens, state.num_evictions) \
            == (r.computed, r.generated, r.evictions)
    assert sched.kv.num_used_blocks == 0
