"""Admission's result object, the cluster hand-over's memoised KV sizes, and the
Request checks' fast path (the common case must accept, refuse and store
exactly what the full checks do)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmsim_nb import SimConfig
from llmsim_nb.cluster import Cluster, ClusterConfig, InstanceGroup
from llmsim_nb.config import SchedulerConfig
from llmsim_nb.scheduler import PrefixCachingKVManager, V1Scheduler
from llmsim_nb.scheduler.admission import NOTHING_ADMITTED, Admission, admit_waiting
from llmsim_nb.workload.content import RequestContent
from llmsim_nb.workload.request import Request
from llmsim_nb.workload.trace_columns import MAX_PRIORITY, MIN_PRIORITY


def _sched(budget=64, num_blocks=100, block_size=4):
    config = SchedulerConfig(policy="vllm-v1", block_size=block_size,
                             max_num_batched_tokens=budget, enable_prefix_caching=True)
    return V1Scheduler(config, PrefixCachingKVManager(num_blocks, block_size),
                       kv_bytes_per_token=100)


def _admit(sched, now, budget):
    sched._release_arrivals(now)
    return admit_waiting(sched.table, sched.kv, sched.config, sched._waiting, sched._running,
                         sched.transfers, sched.hasher, sched.registration, now, budget)


def test_admission_reports_ids_tokens_and_prefix_figures_by_hand():
    # Block size 4. Request 0: 8 system + 6 own tokens; request 1 shares the
    # 8-token system prompt (2 full blocks) and has 5 own tokens.
    sched = _sched()
    sched.add(0, 0.0, 14, 3, RequestContent((7, 100), (8, 6), 500))
    first = _admit(sched, 0.0, 64)
    assert first == Admission([0], [14], 14, 0, 0, 0)
    # Request 0's blocks of its computed 14 tokens are registered (3 full blocks).
    sched.add(1, 0.0, 13, 3, RequestContent((7, 101), (8, 5), 501))
    second = _admit(sched, 0.0, 64)
    # 2 shared blocks = 8 cached tokens; 13 - 8 = 5 computed; 13 looked up.
    assert second == Admission([1], [5], 13, 8, 0, 0)
    assert sched.table.num_cached_tokens[1] == 8
    assert sched._running == [0, 1] and len(sched._waiting) == 0


def test_admission_stops_at_the_budget_and_the_empty_one_is_empty():
    sched = _sched(budget=10)
    sched.add(0, 0.0, 8, 2)
    sched.add(1, 0.0, 8, 2)
    got = _admit(sched, 0.0, 10)
    # The second prompt gets the 2 tokens left (chunked), the budget is spent.
    assert got.request_ids == [0, 1] and got.num_tokens == [8, 2]
    assert got.num_query_tokens == 16 and got.num_cached_tokens == 0
    assert (NOTHING_ADMITTED.request_ids, NOTHING_ADMITTED.num_tokens) == ((), ())
    assert NOTHING_ADMITTED[2:] == (0, 0, 0, 0)


def test_handover_transfer_sizes_equal_the_formula_for_every_pair():
    # Unequal instances (TP 1 and TP 2 on both sides), so that sizes kept
    # under the wrong pair would be wrong.
    flags = dict(model_name="llama-3.1-8b", hardware="h100-sxm", scheduling="vllm-v1")
    one = SimConfig.from_flags(**flags)
    two = SimConfig.from_flags(**flags, npu_num=2)
    cluster = Cluster(ClusterConfig((InstanceGroup("p1", one, 1, "prefill"),
                                     InstanceGroup("p2", two, 1, "prefill"),
                                     InstanceGroup("d1", one, 1, "decode"),
                                     InstanceGroup("d2", two, 1, "decode"))))
    pd = cluster.disaggregation
    for prefill in (0, 1):
        for decode in (2, 3):
            for tokens in (1, 17, 4096):
                sender, receiver = cluster.instances[prefill], cluster.instances[decode]
                tp = sender.layout.tp
                want = float(sum(kv * tp for kv in sender.memory.kv_bytes_per_token) * tokens)
                per_device = max(max(sender.memory.kv_bytes_per_token) * tokens,
                                 max(receiver.memory.kv_bytes_per_token) * tokens)
                seconds = pd._network.send_time(0, 1, float(per_device))
                assert pd.transfer(prefill, decode, tokens) == (want, seconds)
                assert pd.transfer(prefill, decode, tokens) == (want, seconds)  # memoised


# Each argument tuple: (request_id, arrival_at, num_prompt_tokens, num_output_tokens, priority).
CASES = [
    (0, 0.0, 1, 0, 0), (3, 1.5, 10, 5, -7), (2**40, 1e9, 2**31, 0, MAX_PRIORITY),
    (1, 0.0, 1, 1, MIN_PRIORITY), (1, -0.0, 1, 1, 0),
    (np.int64(4), np.float64(2.5), np.int32(3), np.int64(0), np.int64(2)),
    (1, 2, 3, 4, 0), (1, np.int64(2), 3, 4, 0), (1, np.float32(0.1), 3, 4, 0),
    (-1, 0.0, 1, 0, 0), (0, -1e-9, 1, 0, 0), (0, math.nan, 1, 0, 0), (0, math.inf, 1, 0, 0),
    (0, 0.0, 0, 0, 0), (0, 0.0, 1, -1, 0), (True, 0.0, 1, 0, 0), (0, True, 1, 0, 0),
    (0, 0.0, 1, 0, MAX_PRIORITY + 1), (0, 0.0, 1, 0, MIN_PRIORITY - 1), (0, 0.0, 1.0, 0, 0),
    (0, 0.0, 1, 0, 1.0), (0, "0", 1, 0, 0), (0, 0.0, 1, 0, np.bool_(True)),
]


def _outcome(args):
    try:
        r = Request(*args[:4], priority=args[4])
    except ValueError as exc:
        return "refused", str(exc)
    return "accepted", tuple((type(getattr(r, f)), getattr(r, f)) for f in (
        "request_id", "arrival_at", "num_prompt_tokens", "num_output_tokens", "priority"))


@pytest.mark.parametrize("args", CASES, ids=[str(i) for i in range(len(CASES))])
def test_request_fast_path_matches_the_full_checks(args):
    """The fast path (plain ints and a float) and the full checks agree: the
    full checks run on the same values given as numpy scalars, which the fast
    path never takes; whatever is accepted is stored as plain ints and a float."""
    got = _outcome(args)
    ints = (args[0], args[2], args[3], args[4])
    ok = all(type(a) is int for a in ints) and type(args[1]) is float
    if ok and all(MIN_PRIORITY <= a <= MAX_PRIORITY for a in ints):  # numpy holds them
        slow = tuple(np.int64(a) if i != 1 else np.float64(a) for i, a in enumerate(args))
        want = _outcome(slow)  # the same values through the full checks
        assert got[0] == want[0]
        if got[0] == "refused":
            assert got[1].split(", got")[0] == want[1].split(", got")[0]
        else:
            assert got[1] == want[1]
    if got[0] == "accepted":  # stored as plain Python ints and a float, in range
        (t_id, v_id), (t_at, v_at), (t_p, v_p), (t_o, v_o), (t_q, v_q) = got[1]
        assert (t_id, t_at, t_p, t_o, t_q) == (int, float, int, int, int)
        assert v_id >= 0 and 0.0 <= v_at < math.inf and v_p >= 1 and v_o >= 0
        assert MIN_PRIORITY <= v_q <= MAX_PRIORITY


def test_request_fast_path_refuses_what_it_must():
    for args in [(-1, 0.0, 1, 0, 0), (0, math.nan, 1, 0, 0), (0, math.inf, 1, 0, 0),
                 (0, -1e-9, 1, 0, 0), (0, 0.0, 0, 0, 0), (0, 0.0, 1, -1, 0),
                 (0, 0.0, 1, 0, MAX_PRIORITY + 1), (True, 0.0, 1, 0, 0)]:
        assert _outcome(args)[0] == "refused", args
    with pytest.raises(ValueError, match="content describes 5 prompt tokens"):
        Request(0, 0.0, 4, 1, RequestContent((1,), (5,), 2))
    with pytest.raises(ValueError, match="must be a RequestContent"):
        Request(0, 0.0, 4, 1, "text")
