"""The vLLM V1 scheduler's side of moving KV between instances (exact block ids
and times): a decode side receiving a prompt's KV, a prefill side holding it."""

from __future__ import annotations

import pytest

from llmsim_nb.config import SchedulerConfig
from llmsim_nb.scheduler import PrefixCachingKVManager, V1Scheduler


def make(num_blocks=100, block_size=16, **flags):
    config = SchedulerConfig(policy="vllm-v1", block_size=block_size, **flags)
    kv = PrefixCachingKVManager(num_blocks, block_size, enable_caching=True)
    return V1Scheduler(config, kv, kv_bytes_per_token=100)


def test_a_received_request_holds_its_blocks_then_decodes_from_its_external_tokens():
    sched = make()
    # A 40-token prompt computed elsewhere with its first output token, 3 more outputs.
    sched.add(0, 1.0, 40, 4, num_external_tokens=40, external_latency=0.5)
    plan = sched.step(1.0)
    assert plan.is_empty                                 # admitted: receiving, nothing computed
    assert sched.kv.block_table()[0] == [0, 1, 2]          # ceil(40 / 16) blocks
    assert sched.transfers.take_admitted() == [(0, 1.0, 1.5)]
    assert sched.next_event_at() == 1.5
    sched.update(plan, 1.0)
    assert sched.step(1.2).is_empty and sched.kv.num_used_blocks == 3
    sched.update(sched._open_plan, 1.2)
    plan = sched.step(1.5)                               # the KV is there: a decode step
    assert plan.batch.num_query_tokens.tolist() == [1]
    assert plan.batch.num_context_tokens.tolist() == [40]
    assert plan.batch.num_logit_tokens.tolist() == [1]
    assert plan.num_prefill_tokens == 0 and plan.num_decode_tokens == 1   # the first token fed back
    assert sched.kv.block_table()[0] == [0, 1, 2]          # 41 tokens still fit in 3 blocks
    assert sched.table.admitted_at[0] == 1.0


def test_a_decode_side_short_of_blocks_admits_the_transfer_later():
    sched = make(num_blocks=4)
    sched.add(0, 0.0, 48, 3, num_external_tokens=48, external_latency=0.1)   # 3 blocks
    sched.add(1, 0.0, 32, 3, num_external_tokens=32, external_latency=0.1)   # 2 blocks
    plan = sched.step(0.0)
    assert [a[0] for a in sched.transfers.take_admitted()] == [0]           # 1 waits
    sched.update(plan, 0.0)
    t = 0.1
    while sched.table.num_generated_tokens[0] < 3:
        plan = sched.step(t)
        sched.update(plan, t + 0.01)
        t += 0.01
    plan = sched.step(t)                                  # 0 finished, its blocks freed
    assert sched.transfers.take_admitted() == [(1, t, t + 0.1)]


def test_a_prefill_side_holds_a_finished_requests_blocks_until_released():
    sched = make()
    sched.add(0, 0.0, 40, 1, hold_kv=True)
    plan = sched.step(0.0)
    sched.update(plan, 0.2)
    assert sched.num_finished == 1 and sched.kv.num_used_blocks == 3
    with pytest.raises(ValueError, match=r"release_at\(at=nan\)"):
        sched.transfers.release_at(0, float("nan"))
    sched.transfers.release_at(0, 0.7)
    assert sched.next_event_at() == 0.7
    sched.update(sched.step(0.5), 0.5)
    assert sched.kv.num_used_blocks == 3
    sched.update(sched.step(0.7), 0.7)
    assert sched.kv.num_used_blocks == 0
    with pytest.raises(ValueError, match=r"request 0 holds no KV for a transfer"):
        sched.transfers.release_at(0, 1.0)


@pytest.mark.parametrize("tokens, latency, outputs, match", [
    (42, 0.1, 2, r"num_external_tokens=42 must be an integer in 1..41"),
    (0.5, 0.1, 2, r"num_external_tokens=0.5"),
    (10, -1.0, 2, r"external_latency=-1.0 must be a finite number of seconds >= 0"),
    (10, 0.1, 1, r"must have tokens left to generate \(num_output_tokens >= 2"),
])
def test_bad_transfer_arguments_are_refused(tokens, latency, outputs, match):
    sched = make()
    with pytest.raises(ValueError, match=match):
        sched.add(0, 0.0, 41, outputs, num_external_tokens=tokens, external_latency=latency)
    assert len(sched.table) == 0                         # nothing half-added


def test_an_instance_refuses_transfer_arguments_it_does_not_know_or_cannot_take():
    from llmsim_nb import SimConfig
    from llmsim_nb.instance import Instance
    from llmsim_nb.system import build_instance
    from llmsim_nb.workload.request import Request
    v1 = Instance(build_instance(SimConfig.from_flags(model_name="gpt2", hardware="h100-sxm",
                                                      scheduling="vllm-v1")))
    with pytest.raises(ValueError, match=r"unknown argument 'hold'; a request whose KV moves"):
        v1.submit(Request(0, 0.0, 10, 2), hold=True)
    orca = Instance(build_instance(SimConfig.from_flags(model_name="gpt2")))
    with pytest.raises(ValueError, match=r"needs scheduling='vllm-v1'"):
        orca.submit(Request(0, 0.0, 10, 2), hold_kv=True)
