"""Scheduler and paged KV cache: exact block ids, eviction and reload order."""

import numpy as np
import pytest

from llmsim_nb.config import SchedulerConfig
from llmsim_nb.scheduler import KVCacheManager, RequestStatus, Scheduler


def make_scheduler(num_blocks=8, block_size=4, **cfg):
    kv = KVCacheManager(num_blocks, block_size)
    return Scheduler(SchedulerConfig(block_size=block_size, **cfg), kv, kv_bytes_per_token=10)


def drive(sched, dt=1.0, max_iters=10_000):
    """Run step/update until every request finishes; return the plans."""
    now, plans = 0.0, []
    while sched.has_unfinished and len(plans) < max_iters:
        plan = sched.step(now)
        if plan.is_empty:
            sched.update(plan, now)
            now = max(now, sched.next_event_at())
            continue
        assert sched.kv.num_used_blocks <= sched.kv.num_blocks
        now += dt
        sched.update(plan, now)
        plans.append(plan)
    return plans


# --------------------------------------------------------------- KV cache
def test_kv_blocks_allocated_in_order_and_reused_fifo():
    kv = KVCacheManager(6, 4)
    assert kv.allocate(0, 10) == [0, 1, 2]
    assert kv.allocate(1, 4) == [3]
    assert kv.allocate(0, 12) == []          # 12 tokens still fit in 3 blocks
    assert kv.allocate(0, 13) == [4]
    assert kv.block_table() == {0: [0, 1, 2, 4], 1: [3]}
    assert kv.free(0) == [0, 1, 2, 4]
    # Never-used block 5 comes before the freed ones.
    assert kv.allocate(2, 8) == [5, 0]
    assert kv.num_free_blocks == 3 and kv.num_used_blocks == 3


def test_kv_allocate_many_hands_out_the_ids_one_allocate_each_would():
    one, many = KVCacheManager(8, 4), KVCacheManager(8, 4)
    for kv in (one, many):
        kv.allocate(0, 8)            # blocks 0, 1
        kv.allocate(1, 4)            # block 2
        kv.free(0)                   # 0, 1 go to the back of the queue
    one.allocate(1, 8)
    one.allocate(2, 12)
    many.allocate_many([1, 2], [1, 3])
    assert many.block_table() == one.block_table() == {1: [2, 3], 2: [4, 5, 6]}
    many.allocate_many([1, 2], [2, 1])   # 7 never used, then the freed 0 and 1
    assert many.block_table() == {1: [2, 3, 7, 0], 2: [4, 5, 6, 1]}
    with pytest.raises(RuntimeError, match="need 1 blocks but only 0"):
        many.allocate_many([3], [1])
    assert many.num_free_blocks == 0 and 3 not in many.block_table()


def test_kv_refuses_over_capacity():
    kv = KVCacheManager(2, 4)
    assert not kv.can_allocate(0, 9)
    with pytest.raises(RuntimeError, match="needs 3 blocks"):
        kv.allocate(0, 9)
    assert kv.num_free_blocks == 2


@pytest.mark.parametrize("blocks,size", [(0, 4), (4, 0)])
def test_kv_rejects_bad_sizes(blocks, size):
    with pytest.raises(ValueError):
        KVCacheManager(blocks, size)


# --------------------------------------------------------------- tokens
def test_orca_prefill_then_decode_tokens():
    sched = make_scheduler()
    sched.add(0, 0.0, 5, 3)
    plan = sched.step(0.0)
    assert plan.batch.num_query_tokens.tolist() == [5]
    assert plan.num_prefill_tokens == 5 and plan.num_decode_tokens == 0
    assert plan.batch.num_logit_tokens.tolist() == [1]
    assert sched.kv.block_ids(0) == [0, 1]
    sched.update(plan, 1.0)
    assert sched.requests[0].first_token_at == 1.0
    plan = sched.step(1.0)
    assert plan.batch.num_query_tokens.tolist() == [1]
    assert plan.batch.num_context_tokens.tolist() == [5]
    sched.update(plan, 2.0)
    plan = sched.step(2.0)
    sched.update(plan, 3.0)
    state = sched.requests[0]
    # 5 prompt + 3 outputs - 1 (last output never fed back) = 7 tokens computed.
    assert state.num_computed_tokens == 7 and state.num_generated_tokens == 3
    assert state.status is RequestStatus.FINISHED and state.finished_at == 3.0
    assert sched.kv.num_used_blocks == 0


def test_zero_output_request_finishes_after_prefill():
    sched = make_scheduler()
    sched.add(0, 0.0, 6, 0)
    plans = drive(sched)
    assert len(plans) == 1 and plans[0].batch.num_logit_tokens.tolist() == [0]
    assert sched.requests[0].status is RequestStatus.FINISHED


def test_gen_skips_prefill():
    sched = make_scheduler(gen=True)
    sched.add(0, 0.0, 6, 3)
    plans = drive(sched)
    assert [p.batch.num_query_tokens.tolist() for p in plans] == [[1], [1], [1]]
    assert all(p.num_prefill_tokens == 0 for p in plans)
    assert plans[0].batch.num_context_tokens.tolist() == [6]


def test_step_update_must_alternate():
    sched = make_scheduler()
    sched.add(0, 0.0, 4, 2)
    plan = sched.step(0.0)
    with pytest.raises(RuntimeError, match="twice"):
        sched.step(0.0)
    sched.update(plan, 1.0)
    with pytest.raises(RuntimeError):
        sched.update(plan, 2.0)


def test_request_that_can_never_fit_is_refused():
    sched = make_scheduler(num_blocks=2, block_size=4)
    with pytest.raises(ValueError, match="could never run"):
        sched.add(0, 0.0, 8, 2)  # 9 tokens need 3 blocks


# --------------------------------------------------------------- policies
def test_max_batch_limits_running_requests():
    sched = make_scheduler(num_blocks=64, max_batch=2)
    for i in range(4):
        sched.add(i, 0.0, 2, 3)
    plans = drive(sched)
    assert max(p.batch_size for p in plans) == 2
    assert plans[0].batch.request_ids.tolist() == [0, 1]


def test_vllm_policy_runs_prefills_alone():
    sched = make_scheduler(num_blocks=64, policy="vllm")
    sched.add(0, 0.0, 4, 4)
    sched.add(1, 1.5, 4, 4)
    plans = drive(sched)
    kinds = [(p.num_prefill_tokens > 0, p.num_decode_tokens > 0) for p in plans]
    assert (True, True) not in kinds
    # Request 1 arrives during iteration 2; iteration 3 is its prefill alone.
    assert plans[2].batch.request_ids.tolist() == [1]


def test_orca_mixes_prefill_and_decode():
    sched = make_scheduler(num_blocks=64, policy="orca")
    sched.add(0, 0.0, 4, 4)
    sched.add(1, 1.5, 4, 4)
    plans = drive(sched)
    assert plans[2].batch.request_ids.tolist() == [0, 1]
    assert plans[2].num_prefill_tokens == 4 and plans[2].num_decode_tokens == 1


def test_chunked_policy_respects_token_budget():
    sched = make_scheduler(num_blocks=64, policy="chunked", max_num_batched_tokens=6)
    sched.add(0, 0.0, 10, 3)
    sched.add(1, 0.0, 3, 2)
    plans = drive(sched)
    assert all(p.batch.num_tokens <= 6 for p in plans)
    assert plans[0].batch.num_query_tokens.tolist() == [6]          # chunk of request 0
    assert plans[1].batch.num_query_tokens.tolist() == [4, 2]       # rest of 0, chunk of 1
    assert plans[1].batch.num_logit_tokens.tolist() == [1, 0]
    total = sum(p.batch.num_tokens for p in plans)
    assert total == (10 + 3 - 1) + (3 + 2 - 1)


def test_batch_delay_holds_requests_back():
    sched = make_scheduler(num_blocks=64, batch_delay=0.5)
    sched.add(0, 0.0, 4, 1)
    assert sched.step(0.2).is_empty
    sched.update(sched._open_plan, 0.2)
    assert sched.next_event_at() == 0.5
    assert not sched.step(0.5).is_empty


# --------------------------------------------------------------- eviction
def test_eviction_of_most_recent_and_reload_in_admission_order():
    # 4 blocks of 2 tokens. Three requests of prompt 2 fill 3 blocks; decode
    # growth forces evictions of the most recently admitted first.
    sched = make_scheduler(num_blocks=4, block_size=2)
    for i in range(3):
        sched.add(i, 0.0, 2, 4)
    plan = sched.step(0.0)
    assert plan.batch.request_ids.tolist() == [0, 1, 2]
    assert sched.kv.block_table() == {0: [0], 1: [1], 2: [2]}
    sched.update(plan, 1.0)
    # Each needs a second block (3 tokens); only block 3 is free: request 0
    # takes it, request 1 gets the block freed by evicting request 2.
    plan = sched.step(1.0)
    assert plan.evicted_request_ids == (2,)
    assert plan.evicted_bytes == 2 * 10          # 2 computed tokens x 10 B
    assert plan.batch.request_ids.tolist() == [0, 1]
    assert sched.kv.block_table() == {0: [0, 3], 1: [1, 2]}
    sched.update(plan, 2.0)
    # At 5 tokens both need a third block; request 1 is evicted for request 0.
    plan = sched.step(2.0)
    sched.update(plan, 3.0)
    plan = sched.step(3.0)
    assert plan.evicted_request_ids == (1,)
    assert [s.request_id for s in sched.evicted] == [1, 2]
    sched.update(plan, 4.0)
    plans = drive(sched)
    first_reload = next(p for p in plans if p.reloaded_request_ids)
    assert first_reload.reloaded_request_ids[0] == 1
    assert all(s.status is RequestStatus.FINISHED for s in sched.requests)
    assert sched.kv.num_used_blocks == 0
    assert sum(s.num_evictions for s in sched.requests) >= 2


def test_kv_manage_max_reserves_and_never_evicts():
    sched = make_scheduler(num_blocks=6, block_size=2, kv_manage="max")
    for i in range(3):
        sched.add(i, 0.0, 2, 4)  # each reserves ceil(5/2) = 3 blocks
    plans = drive(sched)
    assert plans[0].batch.request_ids.tolist() == [0, 1]
    assert not any(p.evicted_request_ids for p in plans)


def test_token_conservation_under_pressure():
    rng = np.random.default_rng(3)
    sched = make_scheduler(num_blocks=12, block_size=4)
    prompts = rng.integers(1, 20, 30)
    outputs = rng.integers(0, 15, 30)
    arrivals = np.sort(rng.uniform(0, 5, 30))
    for i in range(30):
        sched.add(i, float(arrivals[i]), int(prompts[i]), int(outputs[i]))
    plans = drive(sched, dt=0.1)
    assert sum(p.batch.num_tokens for p in plans) == int(
        (prompts + np.maximum(outputs - 1, 0)).sum())
    assert sum(int(p.batch.num_logit_tokens.sum()) for p in plans) == int(outputs.sum())
    assert sum(p.num_prefill_tokens for p in plans) == int(prompts.sum())
    assert all(s.status is RequestStatus.FINISHED for s in sched.requests)
    assert sched.kv.num_used_blocks == 0
