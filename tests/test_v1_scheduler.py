"""The vLLM V1 scheduler: token budget, prefix-cache-aware admission, preemption by
recompute, priority order, and token conservation on random workloads."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb.config import SchedulerConfig
from llmsim_nb.scheduler import PrefixCachingKVManager, V1Scheduler
from llmsim_nb.scheduler.request_state import RequestStatus
from llmsim_nb.workload.content import RequestContent


def make(num_blocks=1000, block_size=4, caching=True, **flags):
    config = SchedulerConfig(policy="vllm-v1", block_size=block_size, **flags)
    kv = PrefixCachingKVManager(num_blocks, block_size, enable_caching=caching)
    return V1Scheduler(config, kv, kv_bytes_per_token=100)


def run(sched, now=0.0, dt=1.0, limit=10_000):
    plans = []
    while sched.has_unfinished and len(plans) < limit:
        plan = sched.step(now)
        if plan.is_empty:
            sched.update(plan, now)
            now = sched.next_event_at()
            continue
        sched.update(plan, now + dt)
        now += dt
        plans.append(plan)
    return plans


def content(system, unique, system_len, unique_len, output_id):
    return RequestContent((system, unique), (system_len, unique_len), output_id)


def test_token_budget_running_first_then_chunked_admission():
    sched = make(max_num_batched_tokens=10)
    sched.add(0, 0.0, 6, 3)
    sched.add(1, 0.0, 12, 2)
    plan = sched.step(0.0)
    assert plan.batch.request_ids.tolist() == [0, 1]
    assert plan.batch.num_query_tokens.tolist() == [6, 4]      # 1 is chunked
    assert plan.batch.num_logit_tokens.tolist() == [1, 0]
    sched.update(plan, 1.0)
    plan = sched.step(1.0)                                      # decode 1 + 8 of the rest
    assert plan.batch.num_query_tokens.tolist() == [1, 8]
    assert plan.batch.num_logit_tokens.tolist() == [1, 1]
    assert plan.batch.num_context_tokens.tolist() == [6, 4]
    assert plan.num_prefill_tokens == 8 and plan.num_decode_tokens == 1


def test_long_prefill_threshold_and_chunking_off():
    sched = make(max_num_batched_tokens=100, long_prefill_token_threshold=5)
    sched.add(0, 0.0, 12, 1)
    assert sched.step(0.0).batch.num_query_tokens.tolist() == [5]
    sched = make(max_num_batched_tokens=14, enable_chunked_prefill=False)
    sched.add(0, 0.0, 4, 1)
    sched.add(1, 0.0, 12, 1)    # over the 10 tokens left: waits, it is never chunked
    plan = sched.step(0.0)
    assert plan.batch.request_ids.tolist() == [0]


def test_max_num_seqs_caps_running_requests():
    sched = make(max_batch=2)
    for i in range(3):
        sched.add(i, 0.0, 4, 5)
    assert sched.step(0.0).batch.request_ids.tolist() == [0, 1]


def test_shared_prefix_is_taken_from_the_cache_and_ttft_counts_only_the_rest():
    sched = make(max_num_batched_tokens=1000)
    G, S, Q = 4, 13, 6
    for g in range(G):
        sched.add(g, 0.0, S + Q, 2, content(7, 100 + g, S, Q, 500 + g))
    plan = sched.step(0.0)
    # Request 0 registers its 3 full system blocks at allocation; the others,
    # admitted in the same iteration, find them (as in vLLM V1).
    assert plan.batch.num_query_tokens.tolist() == [19, 7, 7, 7]
    assert plan.batch.num_context_tokens.tolist() == [0, 12, 12, 12]
    assert plan.num_prefix_query_tokens == G * (S + Q)
    assert plan.num_cached_tokens == (G - 1) * 12
    assert plan.prefix_hit_rate == pytest.approx(36 / 76)
    sched.update(plan, 1.0)
    assert sched.table.column("num_cached_tokens").tolist() == [0, 12, 12, 12]


def test_finished_requests_leave_their_blocks_cached_for_later_arrivals():
    sched = make()
    sched.add(0, 0.0, 16, 1, content(1, 2, 8, 8, 3))
    sched.add(1, 5.0, 17, 1, content(1, 9, 8, 9, 4))
    plans = run(sched)
    assert [p.batch.num_query_tokens.tolist() for p in plans] == [[16], [9]]
    assert plans[1].num_cached_tokens == 8


def test_preemption_by_recompute_frees_blocks_and_requeues_at_the_front():
    # 6 blocks of 4 tokens; two requests of 8-token prompts, 10 outputs each:
    # each grows to 17 tokens (5 blocks), so both cannot stay.
    sched = make(num_blocks=6, max_num_batched_tokens=100)
    sched.add(0, 0.0, 8, 10)
    sched.add(1, 0.0, 8, 10)
    plans = run(sched)
    preempting = [p for p in plans if p.preempted_request_ids]
    assert preempting and preempting[0].preempted_request_ids == (1,)
    table = sched.table
    assert table.column("num_preemptions").tolist()[1] >= 1
    assert table.column("num_preemptions").tolist()[0] == 0
    # Request 1 recomputes what it had computed, less what stayed cached.
    computed = sum(int(p.batch.num_query_tokens.sum()) for p in plans)
    expected = (2 * (8 + 10 - 1) + int(table.column("num_recomputed_tokens").sum())
                - sum(p.num_cached_tokens + p.num_recompute_cached_tokens for p in plans))
    assert computed == expected
    assert all(s.status is RequestStatus.FINISHED for s in sched.requests)
    assert all(p.num_used_blocks <= 6 for p in plans)


def test_no_admission_in_an_iteration_that_preempted():
    sched = make(num_blocks=3, max_num_batched_tokens=100)
    sched.add(0, 0.0, 4, 6)
    sched.add(1, 0.0, 4, 6)
    sched.add(2, 0.0, 1, 1)
    plans = run(sched)
    assert any(plan.preempted_request_ids for plan in plans)  # the case under test occurs
    for plan in plans:
        if plan.preempted_request_ids:
            assert not set(plan.batch.request_ids.tolist()) & set(plan.preempted_request_ids)


def test_priority_order_admits_and_preempts_by_priority():
    sched = make(scheduling_policy="priority", max_batch=1)
    sched.add(0, 0.0, 4, 2, priority=5)
    sched.add(1, 0.0, 4, 2, priority=1)
    assert sched.step(0.0).batch.request_ids.tolist() == [1]
    sched = make(num_blocks=6, scheduling_policy="priority")
    sched.add(0, 0.0, 8, 10, priority=0)
    sched.add(1, 0.0, 8, 10, priority=9)
    plans = run(sched)
    victims = [v for p in plans for v in p.preempted_request_ids]
    assert victims and set(victims) == {1}


@pytest.mark.parametrize("mode", ["recompute", "swap"])
@pytest.mark.parametrize("seed", range(8))
def test_invariants_on_random_workloads(seed, mode):
    rng = np.random.default_rng(seed)
    block_size = int(rng.choice([1, 4, 16]))
    sched = make(num_blocks=int(rng.integers(40, 200)), block_size=block_size,
                 max_num_batched_tokens=int(rng.integers(8, 256)),
                 max_batch=int(rng.integers(0, 8)),
                 long_prefill_token_threshold=int(rng.choice([0, 0, 16])),
                 preemption_mode=mode)
    n = 40
    arrivals = np.sort(rng.uniform(0, 20, n))
    prompts, outputs = rng.integers(1, 60, n), rng.integers(0, 40, n)
    for i in range(n):
        if rng.random() < 0.6:
            shared = int(min(prompts[i], rng.integers(1, 40)))
            rest = int(prompts[i]) - shared
            c = (RequestContent((int(rng.integers(3)), 1000 + i), (shared, rest), 5000 + i)
                 if rest else RequestContent((int(rng.integers(3)),), (shared,), 5000 + i))
        else:
            c = None
        sched.add(i, float(arrivals[i]), int(prompts[i]), int(outputs[i]), c)
    plans = run(sched, dt=0.25)
    table = sched.table
    assert sched.num_finished == n
    assert (table.column("num_generated_tokens") == outputs).all()
    computed = sum(int(p.batch.num_query_tokens.sum()) for p in plans)
    assert computed == (int((prompts + np.maximum(outputs - 1, 0)).sum())
                        + int(table.column("num_recomputed_tokens").sum())
                        - sum(p.num_cached_tokens + p.num_recompute_cached_tokens for p in plans))
    if not table.column("num_preemptions").any():
        assert all(p.computed_prompt_tokens == p.num_prefill_tokens for p in plans)
    assert sum(p.computed_prompt_tokens for p in plans) >= int(prompts.sum()) - sum(
        p.num_cached_tokens for p in plans)
    for p in plans:
        assert p.computed_prompt_tokens <= p.num_prefill_tokens
        assert p.batch.num_tokens <= sched.config.max_num_batched_tokens
        assert p.num_used_blocks <= p.num_blocks
        assert len(set(p.batch.request_ids.tolist())) == p.batch_size
    assert sched.kv.num_used_blocks == 0


def test_host_tier_hit_is_loaded_not_computed():
    config = SchedulerConfig(policy="vllm-v1", block_size=4)
    kv = PrefixCachingKVManager(4, 4, num_host_blocks=8)
    sched = V1Scheduler(config, kv, kv_bytes_per_token=100)
    sched.add(0, 0.0, 8, 1, RequestContent((1,), (8,), 50))
    sched.add(1, 1.0, 16, 1, RequestContent((2,), (16,), 51))   # needs all 4 blocks
    sched.add(2, 2.0, 9, 1, RequestContent((1,), (9,), 52))
    plans = run(sched)
    assert [p.batch.num_query_tokens.tolist() for p in plans] == [[8], [16], [1]]
    assert plans[1].evicted_bytes == 2 * 4 * 100         # request 0's two blocks stored
    assert plans[2].num_cached_tokens == 8 and plans[2].num_host_cached_tokens == 8
    assert plans[2].reloaded_bytes == 2 * 4 * 100


def test_trace_priorities_reach_the_scheduler_and_order_admission():
    from llmsim_nb import SimConfig, Simulator
    from llmsim_nb.workload import Trace

    trace = Trace(np.zeros(3), np.array([64, 64, 64]), np.array([4, 4, 4]),
                  priority=np.array([5, 0, 2]))
    config = SimConfig.from_flags(model_name="gpt2", scheduling="vllm-v1", max_batch=1,
                                  scheduling_policy="priority")
    ds = Simulator(config, trace).run()
    assert ds["priority"].values.tolist() == [5, 0, 2]
    order = np.argsort(ds["admitted_at"].values, kind="stable").tolist()
    assert order == [1, 2, 0]


def test_a_request_that_preempts_itself_leaves_no_empty_iteration():
    # Priority: request 0 (priority 1) is the lowest and preempts itself while
    # request 1 runs; the same step schedules again instead of idling.
    sched = make(num_blocks=4, scheduling_policy="priority")
    sched.add(0, 0.0, 4, 8, priority=1)
    sched.add(1, 1e-4, 4, 8, priority=0)
    plans = run(sched, dt=1e-3)
    assert all(not p.is_empty for p in plans)
    assert sched.num_finished == 2
    assert sum(len(p.preempted_request_ids) for p in plans) == \
        int(sched.table.column("num_preemptions").sum()) > 0


def test_chunked_prefill_off_refuses_a_request_over_the_budget():
    sched = make(max_num_batched_tokens=16, enable_chunked_prefill=False)
    sched.add(0, 0.0, 10, 7)                   # 10 + 6 = 16 tokens: fits
    with pytest.raises(ValueError, match="max_num_batched_tokens=16 with "
                                         "enable_chunked_prefill=off"):
        sched.add(1, 0.0, 10, 8)


def test_host_stores_of_running_requests_are_counted():
    # A decode that needs a new block evicts a cached block into the host tier.
    config = SchedulerConfig(policy="vllm-v1", block_size=4)
    kv = PrefixCachingKVManager(3, 4, num_host_blocks=8)
    sched = V1Scheduler(config, kv, kv_bytes_per_token=100)
    sched.add(0, 0.0, 8, 1, RequestContent((1,), (8,), 50))      # caches 2 blocks, leaves
    sched.add(1, 1.0, 4, 6, RequestContent((2,), (4,), 51))      # grows to 9 tokens: 3 blocks
    plans = run(sched)
    assert sum(p.evicted_bytes for p in plans) == kv.num_stored_blocks * 4 * 100 > 0


def test_swap_preemption_moves_kv_to_host_and_back_and_computes_nothing_twice():
    sched = make(num_blocks=6, max_num_batched_tokens=100, preemption_mode="swap")
    sched.add(0, 0.0, 8, 10)
    sched.add(1, 0.0, 8, 10)
    plans = run(sched)
    table = sched.table
    out = [v for p in plans for v in p.evicted_request_ids]
    back = [v for p in plans for v in p.reloaded_request_ids]
    assert out and out == back == [1] * len(out)
    assert table.column("num_recomputed_tokens").sum() == 0
    computed = sum(int(p.batch.num_query_tokens.sum()) for p in plans)
    assert computed == 2 * (8 + 10 - 1)                      # swap keeps computed tokens
    # Both reach 12 tokens in 3 blocks each (6 of 6); request 0's 13th token needs a
    # 4th block, so request 1 (the last running) is swapped out with its 12 tokens,
    # and comes back once request 0 has finished: 12 x 100 bytes each way.
    assert out == [1] and [p.evicted_bytes for p in plans if p.evicted_bytes] == [1200.0]
    assert [p.reloaded_bytes for p in plans if p.reloaded_bytes] == [1200.0]
    assert all(s.status is RequestStatus.FINISHED for s in sched.requests)
