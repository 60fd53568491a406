"""Heterogeneous NPU + PIM: the PIM engine, operator mapping, sub-batches, scheduling."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.engines.hardware import make_engine
from llmsim_nb.engines.mapping import (FastestPolicy, all_attention, apply_policy,
                                       decode_attention, get_policy, take)
from llmsim_nb.engines.op_schedule import Task, repeat_layers, resource, schedule_tasks
from llmsim_nb.engines.pim import PIMEngine, PIMSpec, get_pim, list_pim
from llmsim_nb.graph.nodes import NodeType
from llmsim_nb.models.ops import Op, OpKind
from llmsim_nb.models.decoder import decoder_template
from llmsim_nb.parallel.partition import partition_indices, request_costs, split_batch
from llmsim_nb.testing import check_engine, make_batch, tiny_model
from llmsim_nb.workload import Trace

NS = 1e-9


def gemm(m: int, k: int, n: int) -> Op:
    one = np.ones(1, dtype=np.int64)
    return Op("g", OpKind.GEMM, one * m, one * n, one * k, 1, np.array([2.0 * m * k * n]),
              np.array([(m * k + k * n) * 2.0]), np.array([m * n * 2.0]),
              weight_bytes=k * n * 2.0)


def decode_trace(n: int, context: int | np.ndarray = 200, output: int = 1) -> Trace:
    prompts = np.broadcast_to(np.asarray(context, dtype=np.int64), (n,)).copy()
    return Trace(arrival_at=np.zeros(n), num_prompt_tokens=prompts,
                 num_output_tokens=np.full(n, output, dtype=np.int64), source="test")


# ------------------------------------------------------------------ PIM engine
def test_pim_engine_passes_conformance():
    check_engine(PIMEngine(get_pim()))
    check_engine(PIMEngine(get_pim("newton-hbm2")))


def test_gemv_time_matches_the_hand_computed_command_sequence():
    spec = get_pim("neupims-hbm2")
    engine = PIMEngine(spec)
    # 1024 x 1024 weights, fp16: K is 2 row-chunks of 512 elements; the 1024 output
    # columns spread over 32 channels are 32 per channel = 1 tile of 32 banks.
    # GWRITE 512 el = tCWL 4 + 1024 B / 32 B 32 + tWR 16            = 52 cycles
    # tile: ACT..32 COMPs = max(tRAS 34, tRCD 14 + 32 * tCCD 2) = 78
    #       + 1 READRES (CL 14 + 32 banks * 2 B / 32 B = 2)   = 16
    #       + PRE tRP                                          = 14  -> 108 cycles
    # 2 chunks * (52 + 108) = 320 cycles; refresh stretches by 3900 / (3900 - 260).
    expected = 320 * 3900 / 3640 * NS
    timing = engine.time_op(gemm(1, 1024, 1024))
    assert timing.total == pytest.approx(expected, rel=1e-12)
    # COMP issue time: 2 chunks * 32 COMPs * tCCD 2 = 128 cycles.
    assert float(timing.compute_latency[0]) == pytest.approx(128 * 3900 / 3640 * NS)


def test_attention_cycles_match_the_layouts():
    engine = PIMEngine(get_pim())
    score, score_comp, context, context_comp = engine.attention_cycles(
        np.array([1]), np.array([64]), heads=1, kv_heads=1, head_dim=128)
    # Keys token-major: GWRITE of one 128-element query (4 + 8 + 16 = 28), then
    # ceil(64 / 32 banks) = 2 tiles of 8 COMPs and 1 READRES: max(34, 14 + 16) + 16 + 14.
    assert int(score[0]) == 28 + 2 * (34 + 16 + 14)
    assert int(score_comp[0]) == 2 * 8 * 2
    # Values dimension-major: one chunk of 64 tokens: GWRITE (4 + 4 + 16 = 24), then
    # ceil(128 dims / 32 banks) = 4 tiles of 4 COMPs and 1 READRES: 34 + 16 + 14.
    assert int(context[0]) == 24 + 4 * (34 + 16 + 14)
    assert int(context_comp[0]) == 4 * 4 * 2


def test_gemv_beats_the_npu_but_a_large_gemm_does_not():
    pim, npu = PIMEngine(get_pim()), make_engine("npu-128x128")
    assert pim.time_op(gemm(1, 4096, 4096)).total < npu.time_op(gemm(1, 4096, 4096)).total / 4
    assert pim.time_op(gemm(2048, 4096, 4096)).total > npu.time_op(gemm(2048, 4096, 4096)).total
    # Decode attention (GEMV per request) is faster on PIM than on the NPU.
    template = decoder_template(tiny_model())
    _, block, _ = template.instantiate(make_batch([1] * 64, 1000))
    score = next(op for op in block.ops if op.kind is OpKind.ATTN_SCORE)
    assert pim.time_op(score).total < npu.time_op(score).total


def test_requests_share_channels_and_refresh_stretches_time():
    engine = PIMEngine(get_pim())
    template = decoder_template(tiny_model())
    ops = {n: next(o for o in template.instantiate(make_batch([1] * n, 300))[1].ops
                   if o.kind is OpKind.ATTN_SCORE) for n in (1, 32, 33)}
    one, full, over = (engine.time_op(ops[n]).total for n in (1, 32, 33))
    assert full == pytest.approx(one)        # 32 requests on 32 channels run in parallel
    assert over == pytest.approx(2 * one)     # the 33rd doubles up on one channel
    no_refresh = PIMEngine(dataclasses.replace(get_pim(), t_rfc=0))
    ratio = engine.time_op(gemm(1, 1024, 1024)).total / no_refresh.time_op(
        gemm(1, 1024, 1024)).total
    assert ratio == pytest.approx(3900 / 3640)


def test_pim_spec_rejects_bad_values_and_presets_exist():
    assert {"neupims-hbm2", "newton-hbm2"} <= set(list_pim())
    assert get_pim().capacity_bytes == 32 * 2 ** 30
    with pytest.raises(ValueError, match="PIMSpec.banks_per_channel must be >= 1"):
        PIMSpec(banks_per_channel=0)
    with pytest.raises(ValueError, match="t_rfc=4000 must be < t_refi"):
        PIMSpec(t_rfc=4000)
    with pytest.raises(ValueError, match="pim_hardware='hbm9' is not a known PIM preset"):
        get_pim("hbm9")


# ------------------------------------------------------------------ mapping
def test_default_mapping_of_each_op_kind():
    template = decoder_template(tiny_model())
    emb, block, head = template.instantiate(make_batch([8, 1, 1], [0, 40, 90]))
    for op in emb.ops + block.ops + head.ops:
        mask = apply_policy(decode_attention, op)
        if op.kind in (OpKind.ATTN_SCORE, OpKind.ATTN_CONTEXT):
            assert mask.tolist() == [False, True, True]  # the prefill request stays on NPU
        else:  # GEMMs, softmax, norms, activations, residuals, embedding
            assert not mask.any(), op.kind
        assert apply_policy(all_attention, op).all() == (
            op.kind in (OpKind.ATTN_SCORE, OpKind.ATTN_CONTEXT))


def test_fastest_policy_follows_the_models_and_custom_policies_are_checked():
    fastest = get_policy("fastest", make_engine("npu-128x128"), PIMEngine(get_pim()))
    assert isinstance(fastest, FastestPolicy)
    assert fastest(gemm(1, 4096, 4096)).all()
    assert not fastest(gemm(2048, 4096, 4096)).any()
    with pytest.raises(ValueError, match="must return a bool array of shape"):
        apply_policy(lambda op: [True], gemm(1, 8, 8).__class__(
            "a", OpKind.ATTN_SCORE, np.array([1, 1]), np.array([4, 4]), np.array([2, 2]), 1,
            np.ones(2), np.ones(2), np.ones(2), request_ids=np.arange(2)))
    with pytest.raises(ValueError, match="pim_mapping='magic' is not one of"):
        get_policy("magic")
    op = next(o for o in decoder_template(tiny_model()).instantiate(
        make_batch([1, 1, 1], [5, 6, 7]))[1].ops if o.kind is OpKind.ATTN_SCORE)
    part = take(op, np.array([False, True, True]))
    assert part.request_ids.tolist() == [1, 2] and part.n.tolist() == [7, 8]


# ------------------------------------------------------------------ sub-batches
@pytest.mark.parametrize("criterion", ["memory", "compute"])
def test_sub_batch_partition_is_balanced_and_complete(criterion):
    rng = np.random.default_rng(3)
    context = rng.integers(5, 500, size=101)
    batch = make_batch([1] * 101, context)
    template = decoder_template(tiny_model())
    cost = request_costs(batch, template, criterion)
    parts = partition_indices(cost, 2)
    assert sorted(np.concatenate(parts).tolist()) == list(range(101))
    loads = [cost[p].sum() for p in parts]
    assert max(loads) - min(loads) <= cost.max()     # LPT's guarantee
    assert max(loads) / min(loads) < 1.02
    subs = split_batch(batch, template, 3, criterion)
    assert len(subs) == 3 and sum(s.num_requests for s in subs) == 101
    assert len(partition_indices(cost[:1], 2)) == 1  # never an empty sub-batch
    with pytest.raises(ValueError, match="criterion='speed' is not one of"):
        request_costs(batch, template, "speed")


# ------------------------------------------------------------------ operator schedule
def _check_schedule(schedule, blocked=False):
    tasks = schedule.tasks
    for i, t in enumerate(tasks):
        for d in t.deps:
            assert schedule.start[i] >= schedule.end[d] - 1e-15
    by_unit = {}
    for i, t in enumerate(tasks):
        unit = resource(t.unit, blocked)
        if unit is not None:
            by_unit.setdefault(unit, []).append((schedule.start[i], schedule.end[i]))
    for spans in by_unit.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end - 1e-15


def _layer(sub_batches=2):
    # NPU 3 -> PIM 2 -> NPU 1 -> PIM 2 -> NPU 4 per sub-batch (a decode layer's shape).
    tasks = []
    for b in range(sub_batches):
        prev = ()
        for name, unit, d, phase in (("qkv", "npu", 3.0, 0), ("score", "pim", 2.0, 0),
                                     ("softmax", "npu", 1.0, 0), ("context", "pim", 2.0, 0),
                                     ("ffn", "npu", 4.0, 1)):
            tasks.append(Task(name, len(tasks), b, unit, d, prev, phase=phase))
            prev = (len(tasks) - 1,)
    return tasks


def test_operator_schedule_respects_dependencies_and_units():
    tasks = repeat_layers(_layer(), 6)
    schedule = schedule_tasks(tasks)
    _check_schedule(schedule)
    serial = schedule_tasks(repeat_layers(_layer(1), 6))
    # Interleaving two sub-batches of the same work beats running them one after
    # the other, and the PIM works while the NPU does.
    assert schedule.makespan < 2 * serial.makespan
    npu = [(s, e) for t, s, e in zip(tasks, schedule.start, schedule.end) if t.unit == "npu"]
    pim = [(s, e) for t, s, e in zip(tasks, schedule.start, schedule.end) if t.unit == "pim"]
    assert any(max(a, c) < min(b, d) for a, b in npu for c, d in pim)
    blocked = schedule_tasks(tasks, blocked=True)
    _check_schedule(blocked, blocked=True)
    assert blocked.makespan == pytest.approx(sum(t.duration for t in tasks))
    with pytest.raises(ValueError, match="depends on 3, not an earlier task"):
        schedule_tasks([Task("a", 0, 0, "npu", 1.0, (3,))])


# ------------------------------------------------------------------ end to end
def _flags(**extra):
    return dict(model_name="gpt2", npu_num=4, npu_mem=4, gen=True, pim_channels=4, **extra)


def _check_graph(graph, schedule):
    """Every dependency honoured; one COMP node at a time per (device, unit)."""
    busy = {}
    for n in graph.nodes:
        for d in n.data_deps:
            assert schedule.start_at[n.id] >= schedule.end_at[d] - 1e-15
        if n.type is NodeType.COMP:
            busy.setdefault((n.device, n.unit), []).append(
                (schedule.start_at[n.id], schedule.end_at[n.id]))
    for spans in busy.values():
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end - 1e-15


def test_local_pim_end_to_end_overlaps_npu_and_pim():
    trace = decode_trace(64, 900, output=3)
    sim = Simulator(SimConfig.from_flags(**_flags(pim_type="local", sub_batch=True)), trace)
    ds = sim.step()
    graph, schedule = sim.last_graph, sim.last_schedule
    _check_graph(graph, schedule)
    pim_nodes = [n for n in graph.nodes if n.unit == 1]
    npu_nodes = [n for n in graph.nodes if n.type is NodeType.COMP and n.unit == 0]
    assert pim_nodes and all(n.op in ("attn_score", "attn_context") for n in pim_nodes)
    spans = lambda ns: [(schedule.start_at[n.id], schedule.end_at[n.id]) for n in ns]  # noqa
    assert any(max(a, c) < min(b, d) for a, b in spans(npu_nodes) for c, d in spans(pim_nodes))
    full = sim.run()
    assert float(full.pim_busy_time.sum()) > 0
    assert full.pim_busy_time.attrs["units"] == "s"
    assert int(full.num_generated_tokens.sum()) == 64 * 3
    assert float(ds.op_latency.sel(op="attn_score").sum()) > 0


def test_sub_batch_interleaving_beats_serial_npu_plus_pim():
    trace = decode_trace(128, 1500)
    serial = Simulator(SimConfig.from_flags(**_flags(pim_type="local", max_model_len=2048)), trace).run()
    inter = Simulator(SimConfig.from_flags(**_flags(pim_type="local", sub_batch=True, max_model_len=2048)),
                      trace).run()
    assert float(inter.t_end.max()) < float(serial.t_end.max())


def test_blocked_pim_never_computes_with_its_npu():
    trace = decode_trace(32, 600)
    sim = Simulator(SimConfig.from_flags(**_flags(pim_type="local", sub_batch=True,
                                                  pim_hardware="newton-hbm2")), trace)
    sim.step()
    assert all(n.unit == 0 for n in sim.last_graph.nodes)
    _check_graph(sim.last_graph, sim.last_schedule)


def test_pim_pool_end_to_end_moves_data_over_the_interconnect():
    trace = decode_trace(32, 300, output=2)
    config = SimConfig.from_flags(model_name="gpt2", npu_num=16, npu_mem=4, gen=True,
                                  pim_type="pool", network="pim_pool_32.json", sub_batch=True)
    sim = Simulator(config, trace)
    sim.step()
    graph, schedule = sim.last_graph, sim.last_schedule
    _check_graph(graph, schedule)
    pim_devices = set(range(16, 32))
    sends = [n for n in graph.nodes if n.type is NodeType.COMM_SEND]
    assert any(n.device < 16 and n.peer in pim_devices for n in sends)   # q, k, v out
    assert any(n.device in pim_devices and n.peer < 16 for n in sends)   # results back
    assert all(n.size > 0 for n in sends)
    ds = sim.run()
    assert float(ds.pim_busy_time.sel(device=list(pim_devices)).sum()) > 0
    assert float(ds.pim_busy_time.sel(device=list(range(16))).sum()) == 0
    assert float(ds.link_bytes.sum()) > 0


def test_pool_of_fewer_pim_devices_splits_their_channels():
    config = SimConfig.from_flags(model_name="gpt2", npu_num=4, npu_mem=4, gen=True,
                                  pim_type="pool", pim_num=2)
    sim = Simulator(config, decode_trace(8, 100))
    assert sim.pim.share.channels == 16 and sim.topology.num_devices == 6
    assert sim.pim.pim_of[0][0] == sim.pim.pim_of[2][0] == 4
    assert sim.pim.pim_of[0][1] != sim.pim.pim_of[2][1]
    sim.run()
    with pytest.raises(ValueError, match="must split its 5 channels evenly"):
        Simulator(SimConfig.from_flags(model_name="gpt2", npu_num=4, gen=True,
                                       pim_type="pool", pim_num=2, pim_channels=5))


def test_kv_cache_lives_in_pim_and_too_small_a_pim_is_a_clear_error():
    sim = Simulator(SimConfig.from_flags(**_flags(pim_type="local")), decode_trace(4, 100))
    per_token = sim.memory.kv_bytes_per_token[0] * sim.config.scheduler.block_size
    assert sim.kv_cache.num_blocks == int(4 * 2 ** 30 // per_token)
    # GPT3-6.7B on 4 NPUs keeps 128 KiB of KV per token on each NPU: 1 GiB = 8192 tokens.
    with pytest.raises(ValueError, match="the longest request needs 9001 tokens of KV"):
        Simulator(SimConfig.from_flags(model_name="gpt3-6.7b", npu_num=4, gen=True,
                                       pim_type="local", pim_channels=1),
                  decode_trace(2, 9000))
    tiny = dataclasses.replace(get_pim(), channel_bytes=1024)
    system = dataclasses.replace(sim.pim, share=tiny, device=tiny)
    with pytest.raises(ValueError, match="cannot hold one KV block"):
        system.num_kv_blocks(sim.memory, 16, "gpt2")


def test_same_config_gives_the_same_dataset():
    config = SimConfig.from_flags(**_flags(pim_type="local", sub_batch=True))
    trace = decode_trace(24, np.arange(24) * 20 + 10, output=2)
    a = Simulator(config, trace).run().drop_vars(["wall_time", "reuse_hits", "reuse_misses"])
    b = Simulator(config, trace).run().drop_vars(["wall_time", "reuse_hits", "reuse_misses"])
    assert a.identical(b)


def test_sub_batch_off_runs_one_sub_batch_and_mapping_can_be_a_notebook_function():
    seen = []

    def everything_on_npu(op):
        seen.append(op.kind)
        return np.zeros(op.num_instances, dtype=bool)

    trace = decode_trace(16, 200)
    sim = Simulator(SimConfig.from_flags(**_flags(pim_type="local")), trace,
                    pim_mapping=everything_on_npu)
    sim.step()
    assert seen and not any(n.unit for n in sim.last_graph.nodes)
    trace_ = sim.stack.simulate(make_batch([1] * 16, 200))
    assert trace_.micro_batches[0].schedule.num_sub_batches == 1
