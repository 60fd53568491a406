"""vLLM 0.19's ``scheduler_reserve_full_isl``: a waiting request is admitted only
when the KV blocks of everything it knows are free (``allocate_slots(...,
full_sequence_must_fit=True)``), hits counted as vLLM counts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmsim_nb import SimConfig
from llmsim_nb.config import SchedulerConfig
from llmsim_nb.scheduler import PrefixCachingKVManager, V1Scheduler
from llmsim_nb.scheduler.block_hasher import BlockHasher
from llmsim_nb.workload.content import RequestContent

VLLM_RUN = Path(__file__).resolve().parents[2] / "shared" / "data" / "serving" \
    / "vllm019_rtx4090_llama31_8b"


def make(reserve: bool, num_blocks=10, block_size=4, budget=8):
    config = SchedulerConfig(policy="vllm-v1", block_size=block_size,
                             max_num_batched_tokens=budget,
                             scheduler_reserve_full_isl=reserve)
    kv = PrefixCachingKVManager(num_blocks, block_size)
    return V1Scheduler(config, kv, kv_bytes_per_token=100)


def run(sched):
    now, plans = 0.0, []
    while sched.has_unfinished:
        plan = sched.step(now)
        assert sched.kv.num_used_blocks <= sched.kv.num_blocks
        sched.update(plan, now + 1.0)
        now += 1.0
        plans.append(plan)
    return plans


def two_requests(reserve: bool) -> V1Scheduler:
    sched = make(reserve)
    sched.add(0, 0.0, 8, 20)    # 2 blocks of prompt, grows to 7 blocks
    sched.add(1, 0.0, 40, 1)    # a 10-block prompt: the whole pool
    return sched


def test_second_iteration_admits_a_chunk_only_when_reserving_is_off():
    for reserve, admitted in ((False, [0, 1]), (True, [0])):
        sched = two_requests(reserve)
        plan = sched.step(0.0)
        assert plan.batch.request_ids.tolist() == [0]             # 8 tokens: the budget
        sched.update(plan, 1.0)
        plan = sched.step(1.0)
        # Off: request 1's 7-token chunk needs 2 blocks and 10 - 3 = 7 are free.
        # On: its whole 40-token prompt needs 10 blocks; only 7 are free.
        assert plan.batch.request_ids.tolist() == admitted
        assert sched.kv.num_used_blocks == (5 if not reserve else 3)


def test_reserving_avoids_the_preemptions_and_still_finishes_everything():
    off, on = two_requests(False), two_requests(True)
    plans_off, plans_on = run(off), run(on)
    preempted_off = sum(len(p.preempted_request_ids) for p in plans_off)
    preempted_on = sum(len(p.preempted_request_ids) for p in plans_on)
    assert preempted_off > 0 and preempted_on == 0
    for sched in (off, on):
        assert sched.num_finished == 2
        assert sched.table.num_generated_tokens[:2].tolist() == [20, 1]
    # On, request 1 starts only when request 0 has given back every block:
    # request 0 finishes in iteration 20 (8 prompt tokens, then 19 decodes).
    first = next(k for k, p in enumerate(plans_on) if 1 in p.batch.request_ids.tolist())
    assert first == 20
    # Tokens computed on: exactly the prompts and all outputs but the last.
    assert sum(int(p.batch.num_query_tokens.sum()) for p in plans_on) == 8 + 19 + 40 + 0


def cached_prompt(free_after: bool):
    kv = PrefixCachingKVManager(6, 4)
    first = BlockHasher(RequestContent((7,), (12,), 900), 0, 12, 4)
    assert kv.allocate_slots(0, 12)
    kv.cache_full_blocks(0, first, 12)
    if free_after:
        kv.free(0)                  # its 3 blocks stay cached, in the free queue
    second = BlockHasher(RequestContent((7, 8), (12, 12), 901), 1, 24, 4)
    hits = kv.find_cached_prefix(second, 24)
    assert len(hits) == 3
    return kv, hits


def test_can_hold_counts_hits_as_vllm_does():
    # Hits held by a running request save blocks: 24 tokens = 6 blocks = 3 hits
    # + 3 new, and 6 - 3 = 3 are free; 28 tokens would need 4 new.
    kv, hits = cached_prompt(free_after=False)
    assert kv.can_hold(1, 24, hits) and not kv.can_hold(1, 28, hits)
    # Hits in the free queue leave it when touched, so they save nothing: 3 hits
    # + 3 new out of 6 free fits, 7 blocks do not.
    kv, hits = cached_prompt(free_after=True)
    assert kv.num_free_blocks == 6
    assert kv.can_hold(1, 24, hits) and not kv.can_hold(1, 28, hits)
    assert kv.num_free_blocks == 6 and kv.num_used_blocks == 0   # nothing changed


def test_config_and_flags():
    with pytest.raises(ValueError, match="scheduler_reserve_full_isl=True needs "
                                         "scheduling='vllm-v1'"):
        SchedulerConfig(policy="orca", scheduler_reserve_full_isl=True)
    with pytest.raises(ValueError, match="scheduler_reserve_full_isl='yes' must be a bool"):
        SchedulerConfig(policy="vllm-v1", scheduler_reserve_full_isl="yes")
    config = SimConfig.from_flags(scheduling="vllm-v1", scheduler_reserve_full_isl="on")
    assert config.scheduler.scheduler_reserve_full_isl is True
    with pytest.raises(ValueError, match=r"scheduler_reserve_full_isl='yes' is not one of "
                                         r"\['on', 'off'\]"):
        SimConfig.from_flags(scheduling="vllm-v1", scheduler_reserve_full_isl="yes")
    assert SchedulerConfig().scheduler_reserve_full_isl is False


@pytest.mark.skipif(not VLLM_RUN.exists(), reason="../shared/data/serving not present")
def test_a_vllm_run_brings_its_recorded_setting():
    from llmsim_nb.fidelity.vllm_run import load_vllm_run

    assert load_vllm_run(VLLM_RUN).flags["scheduler_reserve_full_isl"] is True
