"""Mixture-of-experts models on the heterogeneous NPU + PIM stack.

Exact values are the engines' own timings of the ops the template builds
(models/template.py), put together by hand: an op's iteration time is its
time in one layer times the layers that run it. Whole runs check invariants
(every request finishes once, tokens conserved) and determinism.
"""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.engines.op_schedule import Task, chain_layers, repeat_layers
from llmsim_nb.graph.nodes import NodeType
from llmsim_nb.models import ModelSpec
from llmsim_nb.models.catalog import register_model
from llmsim_nb.models.moe_spec import MoESpec
from llmsim_nb.system import build_instance
from llmsim_nb.system.model_checks import expert_routing
from llmsim_nb.testing import make_batch, tiny_moe
from llmsim_nb.workload import Trace

#: The routed-expert ops (instantiated from ``BatchShape.expert_tokens``).
EXPERT_OPS = ("expert_up", "expert_act", "expert_down")
DROP = ["wall_time", "reuse_hits", "reuse_misses"]


def _mixed(name="pim-moe-mixed", moe_layers=(1, 2, 3)) -> str:
    """DeepSeek-style without MLA: a dense first layer, then MoE layers (8 experts,
    top-2, one shared expert), full attention everywhere."""
    spec = ModelSpec(name, num_layers=4, hidden_size=64, num_heads=4, num_kv_heads=2,
                     ffn_hidden_size=192, vocab_size=1000, max_seq_len=4096,
                     activation="swiglu", norm="rmsnorm", position="rope", bias=False,
                     tied_embeddings=False, head_dim=32, qk_norm=True,
                     moe=MoESpec(num_experts=8, num_experts_per_token=2, expert_ffn_size=48,
                                 num_shared_experts=1, shared_expert_ffn_size=32,
                                 moe_layers=moe_layers))
    return register_model(spec, overwrite=True).name


def _all_moe() -> str:
    """Every layer MoE (as Qwen3-30B-A3B and Mixtral): one kind of layer."""
    return _mixed("pim-moe-all", moe_layers=())


def _config(model=None, **flags) -> SimConfig:
    flags = {"npu_mem": 4, "pim_channels": 4, "pim_type": "local", **flags}
    return SimConfig.from_flags(model_name=model or _mixed(), **flags)


def _trace(n=16, seed=3) -> Trace:
    """Requests arriving together, so that batches hold several (sub-batches split)."""
    rng = np.random.default_rng(seed)
    return Trace(np.zeros(n), rng.integers(5, 120, n), rng.integers(1, 6, n))


def _tasks(timing):
    """Every task of a micro-batch's layer programs (each kind's, or the one)."""
    schedules = timing.kind_schedules or (timing.schedule,)
    return [t for s in schedules for t in s.tasks]


# ------------------------------------------------------------------ whole runs
@pytest.mark.parametrize("flags", [
    dict(),
    dict(sub_batch=True),
    dict(pim_type="pool", npu_num=2, sub_batch=True),
    dict(pim_type="pool", npu_num=4, pim_num=2),
    dict(npu_num=2, sub_batch=True, pim_mapping="attention"),
    dict(npu_num=2, enable_expert_parallel=True, sub_batch=True),
    dict(pim_type="pool", npu_num=4, npu_group=2, pim_mapping="fastest", sub_batch=True),
    dict(model="all", sub_batch=True),
    dict(model="all", pim_type="pool", npu_num=2, enable_expert_parallel=True,
         expert_placement="round_robin"),
])
def test_an_moe_run_on_pim_finishes_every_request_once(flags):
    model = _all_moe() if flags.pop("model", None) == "all" else _mixed()
    trace = _trace()
    ds = Simulator(_config(model, **flags), trace).run()
    assert np.isfinite(ds.finished_at.values).all()
    assert int(ds.num_finished.values.sum()) == len(trace)
    assert int(ds.num_generated_tokens.values.sum()) == int(trace.num_output_tokens.sum())
    assert (np.diff(ds.t_start.values) > 0).all()
    # Each iteration routed its tokens: top-2 rows of every computed token.
    tokens = ds.num_prefill_tokens.values + ds.num_decode_tokens.values
    assert (ds.num_active_experts.values >= 1).all()
    assert (ds.max_expert_tokens.values <= tokens).all()
    assert float(ds.pim_busy_time.sum()) > 0


@pytest.mark.parametrize("name, flags", [
    ("qwen3-30b-a3b", dict(npu_mem=80, pim_channels=32)),
    ("mixtral-8x7b", dict(npu_num=4, npu_mem=32, pim_channels=32, pim_type="pool",
                          sub_batch=True)),
])
def test_catalog_moe_models_run_on_pim(name, flags):
    trace = Trace(np.zeros(6), np.full(6, 64), np.full(6, 3))
    ds = Simulator(_config(name, **flags), trace).run()
    assert int(ds.num_finished.values.sum()) == 6
    assert int(ds.num_generated_tokens.values.sum()) == 18
    experts = build_instance(_config(name, **flags)).model.moe.num_experts
    assert (ds.num_active_experts.values <= experts).all()


def test_the_same_config_and_seed_give_the_same_dataset():
    config = _config(pim_type="pool", npu_num=2, sub_batch=True)
    trace = _trace()
    first = Simulator(config, trace).run().drop_vars(DROP)
    again = Simulator(config, trace).run().drop_vars(DROP)
    assert first.identical(again)
    other = Simulator(_config(pim_type="pool", npu_num=2, sub_batch=True, seed=7), trace).run()
    assert not np.array_equal(first.num_active_experts.values, other.num_active_experts.values)


#: Dense models on PIM, recorded with the code before MoE ran on PIM: totals of
#: t_end, op_latency and pim_busy_time (float.hex), which must not move. The
#: cases with tensor or pipeline parallelism name attention_placement='heads' and
#: micro_batches=npu_group, the meaning 'auto' / 0 had when they were recorded:
#: with pim_type given, those now take the original's values (requests, 1;
#: docs/original-flags.md), which would time another system.
DENSE_BEFORE = {
    "local_sb": (dict(npu_num=4, sub_batch=True, attention_placement="heads"),
                 ("0x1.57ec0c0d96ce4p-2", "0x1.22dc9caa7e066p-8", "0x1.3a100fe7661ecp-9")),
    "local_fastest_tp1": (dict(npu_num=1, npu_mem=8, pim_mapping="fastest"),
                          ("0x1.1d55ae1332578p-2", "0x1.320b62a10611ep-7",
                           "0x1.cc75debbd654ap-9")),
    "pool_attention": (dict(npu_num=4, pim_type="pool", pim_num=2, pim_mapping="attention",
                            sub_batch=True, pim_channels=None, attention_placement="heads"),
                       ("0x1.5804533b419b3p-2", "0x1.22dc9caa7e066p-8",
                        "0x1.3a100fe7661ecp-10")),
    "pool_pp": (dict(npu_num=4, npu_group=2, pim_type="pool", pim_channels=None,
                     attention_placement="heads", micro_batches=2),
                ("0x1.374134cf4d90cp-2", "0x1.02186b5c41d23p-7", "0x1.139603ca58a31p-9")),
}


@pytest.mark.parametrize("case", sorted(DENSE_BEFORE))
def test_a_dense_model_on_pim_gives_the_results_it_gave_before(case):
    flags, expected = DENSE_BEFORE[case]
    flags = {"npu_mem": 4, "pim_channels": 4, "pim_type": "local", **flags}
    flags = {k: v for k, v in flags.items() if v is not None}
    rng = np.random.default_rng(3)
    trace = Trace(np.sort(rng.uniform(0, 0.02, 12)), rng.integers(5, 200, 12),
                  rng.integers(1, 8, 12))
    ds = Simulator(SimConfig.from_flags(model_name="gpt2", gen=True, **flags), trace).run()
    got = (float(ds.t_end.values.sum()), float(ds.op_latency.values.sum()),
           float(ds.pim_busy_time.values.sum()))
    assert got == tuple(float.fromhex(x) for x in expected)


# ------------------------------------------------------------------ mapping
@pytest.mark.parametrize("mapping", ["decode-attention", "attention", "fastest"])
@pytest.mark.parametrize("pim_type", ["local", "pool"])
def test_expert_ops_run_on_the_npu_under_every_mapping(mapping, pim_type):
    parts = build_instance(_config(pim_mapping=mapping, pim_type=pim_type, npu_num=2,
                                   sub_batch=True))
    trace = parts.stack.simulate(make_batch([1] * 6 + [9], [300] * 6 + [0]))
    tasks = [t for mb in trace.micro_batches for t in _tasks(mb)]
    experts = [t for t in tasks if t.name in EXPERT_OPS]
    assert experts and all(t.unit == "npu" for t in experts)
    # Attention score and context reach the PIM under every built-in policy here.
    assert any(t.unit == "pim" and t.name in ("attn_score", "attn_context") for t in tasks)


def test_fastest_would_send_small_expert_gemms_to_pim_but_they_stay_on_the_npu():
    parts = build_instance(_config(pim_mapping="fastest"))
    stack = parts.stack
    trace = stack.simulate(make_batch([1], [300]))   # one decode: 2 routed rows
    routed = trace.micro_batches[0].batch
    up = next(t for t in stack.sharded.block if t.name == "expert_up")
    op = up.instantiate(routed, 2)
    assert parts.pim.policy(op).all()          # the policy alone picks the PIM
    units = {t.unit for t in _tasks(trace.micro_batches[0]) if t.name in EXPERT_OPS}
    assert units == {"npu"}
    sim = Simulator(_config(pim_mapping="fastest"), _trace(6))
    sim.step()
    nodes = [n for n in sim.last_graph.nodes if n.type is NodeType.COMP]
    assert any(n.op == "expert_up" for n in nodes)
    assert all(n.unit == 0 and not n.name.endswith(".pim") for n in nodes
               if n.op in EXPERT_OPS)


def test_decode_attention_sends_decode_attention_to_pim_and_the_rest_to_the_npu():
    parts = build_instance(_config())
    batch = make_batch([1, 1, 1, 12], [200, 50, 90, 0])   # three decodes, one prompt
    trace = parts.stack.simulate(batch)
    tasks = _tasks(trace.micro_batches[0])
    for name in ("attn_score", "attn_context"):
        units = {t.unit: t.token_share for t in tasks if t.name == name}
        assert units == {"npu": 12 / 15, "pim": 3 / 15}
    others = {t.unit for t in tasks if t.unit != "net"
              and t.name not in ("attn_score", "attn_context")}
    assert others == {"npu"}   # norms, projections, router, experts, FFN


# ------------------------------------------------------------------ timing
def test_op_latency_counts_each_op_for_the_layers_that_run_it():
    parts = build_instance(_config())           # TP 1, one sub-batch, decode-attention
    stack = parts.stack
    batch = make_batch([1] * 5, [100, 200, 300, 400, 500])
    trace = stack.simulate(batch)
    routed = trace.micro_batches[0].batch
    names = list(trace.template.op_names)
    npu, pim = parts.engine.inner, parts.pim.engine()
    block = {t.name: t for t in stack.sharded.block}
    # Layer 0 is dense, layers 1..3 MoE; attention runs in all four, on the PIM.
    for name, layers, engine in (("expert_up", 3, npu), ("expert_down", 3, npu),
                                 ("router_gate", 3, npu), ("shared_up", 3, npu),
                                 ("ffn_up", 1, npu), ("ffn_down", 1, npu),
                                 ("qkv_proj", 4, npu), ("attn_score", 4, pim),
                                 ("attn_context", 4, pim)):
        one_layer = float(engine.time_op(block[name].instantiate(routed, 2)).latency.sum())
        assert trace.op_latency[names.index(name)] == one_layer * layers, name
    # The dense layer's program has no expert op, the MoE layers' no dense FFN.
    dense, moe = ({t.name for t in s.tasks} for s in trace.micro_batches[0].kind_schedules)
    assert "ffn_up" in dense and not dense & {"router_gate", *EXPERT_OPS}
    assert {"router_gate", *EXPERT_OPS} <= moe and "ffn_up" not in moe


def test_npu_ops_take_the_time_the_plain_stack_gives_them():
    batch = make_batch([1] * 5 + [7], [100, 200, 300, 400, 500, 0])
    hetero = build_instance(_config())
    plain = build_instance(_config(pim_type="none", pim_channels=None))
    a, b = hetero.stack.simulate(batch), plain.stack.simulate(batch)
    # The same seed draws the same routing with one sub-batch.
    assert np.array_equal(hetero.stack.last_expert_tokens, plain.stack.last_expert_tokens)
    names = list(a.template.op_names)
    for name in ("router_gate", "shared_up", *EXPERT_OPS, "ffn_up", "qkv_proj"):
        i = names.index(name)
        assert a.op_latency[i] == b.op_latency[i], name


def test_expert_parallel_on_pim_runs_the_slowest_ranks_experts():
    flags = dict(npu_num=2, enable_expert_parallel=True)
    hetero = build_instance(_config(**flags))
    plain = build_instance(_config(pim_type="none", pim_channels=None, **flags))
    batch = make_batch([1] * 6, [100] * 6)
    a, b = hetero.stack.simulate(batch), plain.stack.simulate(batch)
    assert np.array_equal(hetero.stack.last_rank_tokens, plain.stack.last_rank_tokens)
    assert hetero.stack.last_rank_tokens.sum() == 6 * 2
    names = list(a.template.op_names)
    for name in EXPERT_OPS:
        assert a.op_latency[names.index(name)] == b.op_latency[names.index(name)], name


# ------------------------------------------------------------------ routing
def test_one_sub_batch_draws_the_plain_stacks_routing():
    config = _config()
    parts = build_instance(config)
    parts.stack.simulate(make_batch([1] * 9, 50))
    routing, rng = expert_routing(parts.model, config)
    assert np.array_equal(parts.stack.last_expert_tokens, routing.draw(9, 1, rng)[0])


def test_each_sub_batch_has_its_own_draw_and_the_micro_batch_records_their_sum():
    parts = build_instance(_config(sub_batch=True, num_sub_batches=3))
    stack = parts.stack
    trace = stack.simulate(make_batch([1] * 7 + [5], [40] * 7 + [0]))
    timing = trace.micro_batches[0]
    subs = timing.sub_batches
    assert len(subs) == 3
    for sb in subs:
        assert sb.expert_tokens.sum() == 2 * sb.num_tokens
        assert sb.expert_tokens.max() <= sb.num_tokens   # a token's experts are distinct
    drawn = sum(sb.expert_tokens for sb in subs)
    assert np.array_equal(drawn, stack.last_expert_tokens)
    assert np.array_equal(drawn, stack.iteration_expert_tokens)
    assert np.array_equal(timing.batch.expert_tokens, drawn)
    # Each sub-batch's grouped GEMM runs its own routed rows (the MoE kind's program).
    template = next(t for t in stack.sharded.block if t.name == "expert_up")
    up = [t for t in _tasks(timing) if t.name == "expert_up"]
    assert [t.sub_batch for t in up] == [0, 1, 2]
    for t in up:
        op = template.instantiate(subs[t.sub_batch], 2)
        assert t.duration == parts.engine.inner.time_op(op).total


def test_a_step_records_the_expert_load_on_pim():
    sim = Simulator(_config(pim_type="pool", npu_num=2, sub_batch=True), _trace(10))
    step = sim.step()
    tokens = step.expert_tokens.values
    computed = int(step.num_query_tokens.values.sum())
    assert tokens.sum() == computed * 2
    assert step.num_active_experts.values[0] == np.count_nonzero(tokens)
    assert step.max_expert_tokens.values[0] == tokens.max()


# ------------------------------------------------------------------ graph
def test_each_layer_of_the_graph_runs_its_kinds_ops():
    sim = Simulator(_config(npu_num=2, npu_group=2, sub_batch=True), _trace(8))
    sim.step()
    comp = [n for n in sim.last_graph.nodes if n.type is NodeType.COMP]
    by_layer: dict[int, set] = {}
    for n in comp:
        if n.layer is not None and n.layer >= 0:
            by_layer.setdefault(n.layer, set()).add(n.op)
    assert sorted(by_layer) == [0, 1, 2, 3]            # both stages laid out
    assert "ffn_up" in by_layer[0] and not by_layer[0] & set(EXPERT_OPS)
    for layer in (1, 2, 3):
        assert set(EXPERT_OPS) <= by_layer[layer] and "ffn_up" not in by_layer[layer]


def test_tensor_parallel_kinds_reduce_after_their_own_row_parallel_op():
    parts = build_instance(_config(npu_num=2))
    trace = parts.stack.simulate(make_batch([1] * 4, 64))
    dense, moe = trace.micro_batches[0].kind_schedules
    reduced = lambda s: [t.name for t in s.tasks if t.unit == "net"]  # noqa: E731
    assert reduced(dense) == ["out_proj.allreduce", "ffn_down.allreduce"]
    # Shared experts are partial sums joining the routed experts' one all-reduce.
    assert reduced(moe) == ["out_proj.allreduce", "expert_down.allreduce"]


def test_chain_layers_joins_each_sub_batch_to_its_previous_layer():
    a = (Task("x", 0, 0, "npu", 1.0), Task("y", 1, 0, "pim", 2.0, (0,)),
         Task("x", 0, 1, "npu", 1.0), Task("y", 1, 1, "pim", 2.0, (2,)))
    b = (Task("x", 0, 0, "npu", 1.0), Task("x", 0, 1, "npu", 1.0))
    assert chain_layers([a] * 3) == repeat_layers(a, 3)
    tasks = chain_layers([a, b, a])
    assert [t.layer for t in tasks] == [0] * 4 + [1] * 2 + [2] * 4
    assert tasks[4].deps == (1,) and tasks[5].deps == (3,)     # after each one's "y"
    assert tasks[6].deps == (4,) and tasks[8].deps == (5,)
    with pytest.raises(ValueError, match="at least one layer program"):
        chain_layers([])


# ------------------------------------------------------------------ refusals
def _refusal(config) -> str:
    with pytest.raises(ValueError) as info:
        build_instance(config)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_mla_and_sliding_layers_are_refused_on_pim_naming_what():
    deepseek = _refusal(SimConfig.from_flags(model_name="deepseek-v3", pim_type="local"))
    assert deepseek == ("model 'deepseek-v3' has multi-head latent attention; the NPU + PIM "
                        "stack does not model them yet (allowed: pim_type='none')")
    name = register_model(tiny_moe("tiny-moe-pim"), overwrite=True).name
    sliding = _refusal(_config(name))
    assert sliding == ("model 'tiny-moe-pim' has layers of full and sliding attention; the "
                       "NPU + PIM stack does not model them yet (allowed: pim_type='none')")


@pytest.mark.parametrize("flags, match", [
    (dict(enable_expert_parallel=True), "enable_expert_parallel=True needs tensor "
                                        "parallelism"),
    (dict(npu_num=2, attention_placement="requests"),
     "has mixture-of-experts layers; tensor parallelism of such models splits attention by "
     "heads"),
    (dict(model="gpt2", npu_num=2, enable_expert_parallel=True),
     "enable_expert_parallel=True needs a mixture-of-experts model; 'gpt2' has no experts"),
    (dict(model="gpt2", expert_routing="skewed", expert_skew=1.0),
     "expert_routing='skewed' has no effect: model 'gpt2' has no mixture-of-experts layers"),
])
def test_bad_combinations_on_pim_are_one_line_errors_naming_the_flag(flags, match):
    model = flags.pop("model", None)
    assert match in _refusal(_config(model, **flags))
