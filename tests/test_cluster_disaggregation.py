"""Prefill/decode disaggregation: KV handed from a prefill to a decode instance.

Hand-computed transfer sizes and times, the KV held on both sides until the
transfer ends, decode-side memory shortage delaying (never dropping) a
transfer, invariants over whole runs and refused setups.
"""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb import SimConfig
from llmsim_nb.cluster import Cluster, ClusterConfig, InstanceGroup
from llmsim_nb.instance.instance import SimulationFinished
from llmsim_nb.network import Network
from llmsim_nb.network.interconnect import interconnect_topology
from llmsim_nb.results.dataset import summarize
from llmsim_nb.workload.generators import synthetic_trace
from llmsim_nb.workload.trace import Trace

FLAGS = dict(model_name="llama-3.1-8b", hardware="h100-sxm", scheduling="vllm-v1")
KV_PER_TOKEN = 32 * 2 * 8 * 128 * 2   # layers x (K, V) x KV heads x head size x bf16


def _pd(prefill=1, decode=1, kv_link="ib-ndr400", decode_flags=None, prefill_flags=None,
        **extra):
    p = SimConfig.from_flags(**{**FLAGS, **(prefill_flags or {})})
    d = SimConfig.from_flags(**{**FLAGS, **(decode_flags or {})})
    return Cluster(ClusterConfig((InstanceGroup("p", p, prefill, "prefill"),
                                  InstanceGroup("d", d, decode, "decode")),
                                 kv_link=kv_link, **extra))


def _run(cluster, trace):
    cluster.submit_trace(trace)
    return cluster.run()


def test_a_transfer_moves_the_prompts_kv_on_the_prefill_layout_in_the_network_time():
    c = _pd()
    ds = _run(c, Trace(np.array([0.0]), np.array([1000]), np.array([8])))
    h = c.disaggregation.handoffs[0]
    assert KV_PER_TOKEN == 131072
    assert h.num_bytes == 1000 * KV_PER_TOKEN
    link = Network(interconnect_topology("ib-ndr400", 2))
    assert h.latency == link.send_time(0, 1, 1000.0 * KV_PER_TOKEN)
    assert h.latency == pytest.approx(2e-6 * 2 + 1000 * KV_PER_TOKEN / 50e9 + 10e-6, rel=1e-9)
    assert ds.kv_transfer_bytes.values.tolist() == [1000 * KV_PER_TOKEN]
    assert ds.kv_transfer_latency.values.tolist() == [h.latency]
    # TTFT is the prefill side's first token; decoding starts when the KV is there.
    prefill = c.instances[0].results()
    decode = c.instances[1].results()
    assert ds.first_token_at.values[0] == prefill.first_token_at.values[0] == h.handed_at
    assert h.started_at == h.handed_at                     # the decode side had room at once
    assert decode.t_start.values[0] == h.started_at + h.latency
    assert ds.finished_at.values[0] == decode.finished_at.values[0]
    assert ds.request_instance.values.tolist() == [0]
    assert ds.request_decode_instance.values.tolist() == [1]
    # Two shards of a TP 2 prefill instance each send half, at once.
    tp2 = _pd(prefill_flags={"npu_num": 2})
    _run(tp2, Trace(np.array([0.0]), np.array([1000]), np.array([8])))
    h2 = tp2.disaggregation.handoffs[0]
    assert h2.num_bytes == 1000 * KV_PER_TOKEN           # 4 KV heads on each of 2 GPUs
    assert h2.latency == h.latency                        # the decode GPU receives it all


def test_every_request_finishes_once_on_one_decode_instance_and_tokens_are_conserved():
    trace = synthetic_trace(np.random.default_rng(1), 120, 30.0)
    c = _pd(prefill=2, decode=3, router="least_outstanding", decode_router="least_kv")
    ds = _run(c, trace)
    outputs = trace.num_output_tokens
    assert np.isfinite(ds.finished_at.values).all()
    handed = ds.request_decode_instance.values
    assert ((handed >= 2) == (outputs > 1)).all() and ((handed == -1) == (outputs == 1)).all()
    assert set(ds.request_instance.values.tolist()) <= {0, 1}
    generated = sum(int(inst.results().num_generated_tokens.sum()) for inst in c.instances)
    assert generated == outputs.sum()
    for d in (2, 3, 4):   # each handed request decoded, and finished, exactly once
        mine = c.local_requests[d]
        assert len(mine) == len(set(mine))
        assert np.isfinite(c.instances[d].results().finished_at.values).all()
    assert sorted(r for d in (2, 3, 4) for r in c.local_requests[d]) == \
        np.flatnonzero(outputs > 1).tolist()
    assert (ds.first_token_at.values <= ds.finished_at.values).all()
    assert (ds.kv_transfer_started_at.values[handed >= 0]
            >= ds.first_token_at.values[handed >= 0]).all()
    s = summarize(ds)
    assert s["num_finished"] == len(trace)


def test_the_prefill_side_holds_the_kv_until_the_transfer_ends():
    # A slow link: the first request's transfer outlasts the second's prefill.
    trace = Trace(np.array([0.0, 0.12]), np.array([4000, 160]), np.array([4, 4]))
    c = _pd(kv_link="ethernet-100g")
    _run(c, trace)
    first = c.disaggregation.handoffs[0]
    assert first.latency > 0.04
    prefill = c.instances[0].results()
    second = np.flatnonzero(prefill.num_computed_prompt_tokens.values == 160)[0]
    # Blocks of request 0 (4000 tokens: 250 of 16) are still held beside request 1's 10.
    assert prefill.t_start.values[second] < first.started_at + first.latency
    assert prefill.num_used_blocks.values[second] == 250 + 10


def test_a_decode_instance_short_of_memory_delays_the_transfer_and_drops_nothing():
    # The decode instance holds one of these requests at a time (120 blocks of 16 tokens).
    trace = Trace(np.array([0.0, 0.0001]), np.array([1500, 1500]), np.array([200, 200]))
    c = _pd(decode_flags={"num_kv_blocks": 120})
    ds = _run(c, trace)
    a, b = c.disaggregation.handoffs[0], c.disaggregation.handoffs[1]
    assert b.handed_at < a.started_at + a.latency + 1.0     # ready long before a finishes
    assert b.started_at >= ds.finished_at.values[0]          # waits for a's blocks
    assert np.isfinite(ds.finished_at.values).all()


def test_a_prefill_instance_waiting_for_its_held_blocks_resumes_when_they_are_freed():
    # The prefill instance holds one of these prompts: the second waits for the
    # first's transfer to end (it has nothing else to do meanwhile).
    trace = Trace(np.array([0.0, 0.0]), np.array([1500, 1500]), np.array([3, 3]))
    c = _pd(prefill_flags={"num_kv_blocks": 100}, kv_link="ethernet-100g")
    ds = _run(c, trace)
    first = c.disaggregation.handoffs[0]
    prefill = c.instances[0].results()
    assert prefill.admitted_at.values[1] >= first.started_at + first.latency
    assert np.isfinite(ds.finished_at.values).all()


def test_stepping_gives_the_run_and_repeats_under_its_seed():
    trace = synthetic_trace(np.random.default_rng(2), 40, 40.0)
    ran = _run(_pd(decode=2), trace)
    again = _run(_pd(decode=2), trace)
    stepped = _pd(decode=2)
    stepped.submit_trace(trace)
    while True:
        try:
            stepped.step()
        except SimulationFinished:
            break
    out = stepped.results()
    for name in ("finished_at", "first_token_at", "kv_transfer_started_at",
                 "request_decode_instance", "t_end"):
        assert np.array_equal(ran[name].values, out[name].values, equal_nan=True), name
        assert np.array_equal(ran[name].values, again[name].values, equal_nan=True), name


@pytest.mark.parametrize("groups, match", [
    ((("p", "prefill"),), r"needs prefill and decode groups"),
    ((("p", "prefill"), ("m", "mixed"), ("d", "decode")), r"needs prefill and decode groups"),
    ((("p", "prefill"), ("d", "cache")), r"role='cache' is not one of"),
])
def test_bad_pools_are_refused(groups, match):
    config = SimConfig.from_flags(**FLAGS)
    with pytest.raises(ValueError, match=match):
        ClusterConfig(tuple(InstanceGroup(name, config, 1, role) for name, role in groups))


def test_other_refused_setups_name_the_instance_or_key():
    v1 = SimConfig.from_flags(**FLAGS)
    with pytest.raises(ValueError, match=r"serve one model"):
        ClusterConfig((InstanceGroup("p", v1, 1, "prefill"),
                       InstanceGroup("d", SimConfig.from_flags(**{**FLAGS, "model_name":
                                                                  "llama-3.1-70b",
                                                                  "npu_num": 4}), 1, "decode")))
    orca = SimConfig.from_flags(**{**FLAGS, "scheduling": "orca"})
    with pytest.raises(ValueError, match=r"instance 'd-0': prefill/decode disaggregation needs "
                                         r"scheduling='vllm-v1'"):
        Cluster(ClusterConfig((InstanceGroup("p", v1, 1, "prefill"),
                               InstanceGroup("d", orca, 1, "decode"))))
    with pytest.raises(ValueError, match=r"interconnect='carrier-pigeon'"):
        ClusterConfig((InstanceGroup("p", v1, 1, "prefill"), InstanceGroup("d", v1, 1,
                                                                            "decode")),
                      kv_link="carrier-pigeon")
    small = _pd(decode_flags={"num_kv_blocks": 50})
    with pytest.raises(ValueError, match=r"instance 'd-0' cannot hold request 0: its 1599 "
                                         r"tokens need 100 KV blocks, the instance has 50"):
        small.submit_trace(Trace(np.array([0.0]), np.array([1500]), np.array([100])))


def _mixed_trace(n, seed, span, longest=800, most=40):
    rng = np.random.default_rng(seed)
    outputs = rng.integers(1, most, n)
    outputs[rng.random(n) < 0.2] = 1
    return Trace(np.sort(rng.uniform(0, span, n)), rng.integers(2, longest, n), outputs)


def test_a_prefill_side_full_of_held_kv_waits_and_the_run_finishes():
    # Three 3000-token prompts; the prefill side holds 320 blocks (one prompt is
    # 188), the decode side 220: prefills wait for transfers, transfers for decodes.
    c = _pd(prefill_flags={"num_kv_blocks": 320}, decode_flags={"num_kv_blocks": 220})
    ds = _run(c, Trace(np.array([0.0, 0.3, 0.6]), np.array([3000] * 3), np.array([300] * 3)))
    assert np.isfinite(ds.finished_at.values).all()
    h = c.disaggregation.handoffs
    assert h[1].started_at >= ds.finished_at.values[0]       # the decode side held request 0


def test_events_are_handled_in_time_order_when_stepping():
    trace = _mixed_trace(60, 1, 2.0)
    c = _pd(decode=2, decode_flags={"num_kv_blocks": 60})
    c.submit_trace(trace)
    starts, ends = [], {}
    while True:
        try:
            step = c.step()
        except SimulationFinished:
            break
        k = c.names.index(step.attrs["instance"])
        starts.append(float(step.t_start.values[0]))
        assert float(step.t_start.values[0]) >= ends.get(k, 0.0)     # each clock forward
        ends[k] = float(step.t_end.values[0])
    assert starts == sorted(starts)                                # globally in start order
    ran = _run(_pd(decode=2, decode_flags={"num_kv_blocks": 60}), trace)
    assert np.array_equal(ran.finished_at.values, c.results().finished_at.values)


def test_tokens_and_gaps_are_counted_as_a_co_located_run_counts_them():
    trace = Trace(np.array([0.0, 0.01, 0.02]), np.array([200, 200, 200]), np.array([10, 2, 5]))
    pd = _run(_pd(), trace)
    alone = _run(Cluster(ClusterConfig((InstanceGroup("m", SimConfig.from_flags(**FLAGS), 1),))),
                 trace)
    for ds in (pd, alone):
        assert ds.num_prefill_tokens.values.sum() == 600
        assert ds.num_decode_tokens.values.sum() == 9 + 1 + 4
        assert ds.sizes["token_gap"] == 9 + 1 + 4                 # every gap, the transfer's too
    # The gap between the first (prefill side) and second (decode side) token
    # holds the transfer: the mean gap over the request is its TPOT.
    assert pd.tpot.values[1] == pytest.approx(pd.finished_at.values[1] - pd.first_token_at.values[1])


def test_a_callable_decode_router_and_a_request_on_one_rank_of_a_dp_instance():
    v1 = SimConfig.from_flags(**FLAGS)
    c = Cluster(ClusterConfig((InstanceGroup("p", v1, 1, "prefill"),
                               InstanceGroup("d", v1, 2, "decode")),
                              decode_router=lambda request, states: states[-1].index))
    ds = _run(c, Trace(np.array([0.0, 0.01]), np.array([100, 100]), np.array([4, 4])))
    assert ds.request_decode_instance.values.tolist() == [2, 2]
    assert "decode_router" in ds.attrs["cluster"]
    # A prefill instance with 2 TP ranks, attention placed by request: a
    # request's KV is on one rank, whose NIC moves all of it.
    tp2 = _pd(prefill_flags={"npu_num": 2, "attention_placement": "requests"})
    _run(tp2, Trace(np.array([0.0]), np.array([1000]), np.array([8])))
    one = _pd()
    _run(one, Trace(np.array([0.0]), np.array([1000]), np.array([8])))
    assert tp2.disaggregation.handoffs[0].latency == one.disaggregation.handoffs[0].latency


def test_the_command_line_runs_a_disaggregated_cluster(tmp_path, capsys):
    from llmsim_nb.cli.main import main
    path = tmp_path / "pd.yaml"
    path.write_text("base: {model_name: llama-3.1-8b, hardware: h100-sxm, scheduling: vllm-v1}\n"
                    "instances:\n  - {name: prefill, count: 1, role: prefill}\n"
                    "  - {name: decode, count: 2, role: decode}\n"
                    "decode_router: least_kv\nkv_link: roce-200g\n")
    assert main(["cluster", "--config", str(path), "--num_requests", "6",
                 "--lengths", "fixed:64,4"]) == 0
    out = capsys.readouterr().out
    assert "KV transfers        6 requests, " in out and "over roce-200g" in out
    assert main(["cluster", "--config", str(path), "--decode_router", "least_kvv",
                 "--num_requests", "2"]) == 2
    assert "decode_router: router='least_kvv'" in capsys.readouterr().err


def test_a_request_arriving_before_a_routed_hand_over_is_refused():
    """Routers see instances as of a decision's time, never earlier than a
    decision already made: after stepping past a hand-over at time T, a request
    arriving before T cannot be routed as it was, and is refused (naming it)."""
    c = _pd()
    c.submit_trace(Trace(np.array([0.0]), np.array([200]), np.array([4])))
    while 0 not in c.disaggregation.handoffs or c.disaggregation.handoffs[0].decode < 0:
        c.step()
    routed_at = c._board.observed_until
    assert routed_at > 0.0
    late = Trace(np.array([routed_at / 2]), np.array([20]), np.array([2]))
    with pytest.raises(ValueError, match=r"request 0 arrives at .* already routed as of"):
        c.submit_trace(late)
    c.submit_trace(Trace(np.array([routed_at]), np.array([20]), np.array([2])))  # not earlier
    ds = c.run()
    assert ds.sizes["request"] == 2


def test_the_board_refuses_an_observation_back_in_time():
    from llmsim_nb.cluster.state_board import StateBoard

    board = StateBoard([4])
    board.view([0], 2.0)
    with pytest.raises(ValueError, match="observed as of 2.0 s already"):
        board.view([0], 1.0)
