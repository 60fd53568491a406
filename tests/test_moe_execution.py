"""Executing models whose layers differ: MoE layers, sliding windows, MLA.

Exact values come from the template's cost conventions (models/template.py)
computed by hand; whole runs check invariants and determinism.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.instance import Instance
from llmsim_nb.models import BatchShape, ModelSpec, OpKind
from llmsim_nb.models.catalog import register_model
from llmsim_nb.models.decoder import decoder_template
from llmsim_nb.models.mla_spec import MLASpec
from llmsim_nb.models.moe_spec import MoESpec
from llmsim_nb.system import build_instance
from llmsim_nb.testing import tiny_moe
from llmsim_nb.workload.trace import Trace

HF_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "models" / "hf"


def _names(template):
    return [t.name for t in template.block]


def test_two_kinds_of_layer_each_run_their_own_ops():
    spec = tiny_moe()
    template = decoder_template(spec)
    names = _names(template)
    assert template.num_kinds == 2 and template.layer_pattern == (0, 1)
    dense, moe = (dict(zip(names, kind)) for kind in template.layer_kinds)
    # Layer 0: dense FFN over a sliding window; layer 1: experts with full attention.
    assert dense["swa_score"] and not dense["attn_score"] and dense["ffn_up"]
    assert not dense["expert_up"] and not dense["router_gate"]
    assert moe["attn_score"] and not moe["swa_score"] and moe["expert_up"] and moe["shared_up"]
    assert not moe["ffn_up"]
    counts = dict(zip(names, template.op_layer_counts()))
    assert counts["qkv_proj"] == 2 and counts["ffn_up"] == 1 and counts["expert_down"] == 1
    assert counts["qk_norm"] == 2


def test_a_sliding_layer_attends_to_its_window_only():
    spec = tiny_moe()
    template = decoder_template(spec)
    swa = next(t for t in template.block if t.name == "swa_score")
    full = next(t for t in template.block if t.name == "attn_score")
    batch = BatchShape.from_lists([1, 4], [1000, 3])
    h, kvh, hd, dt = 4, 2, 32, 2.0
    op = swa.instantiate(batch, 2)
    # Decode at context 1000: 16 keys scored, the last 16 cached tokens read.
    # Prefill of 4 after 3: 7 keys, fewer than the window: as full attention.
    assert op.flops.tolist() == [2.0 * h * 1 * 16 * hd, 2.0 * h * 4 * 7 * hd]
    assert op.bytes_read.tolist() == [(h * 1 * hd + kvh * 16 * hd) * dt,
                                      (h * 4 * hd + kvh * 7 * hd) * dt]
    assert full.instantiate(batch, 2).flops.tolist() == [2.0 * h * 1001 * hd,
                                                         2.0 * h * 4 * 7 * hd]


def test_a_grouped_expert_gemm_reads_the_weights_of_experts_with_tokens_once():
    template = decoder_template(tiny_moe())
    up = next(t for t in template.block if t.name == "expert_up")
    tokens = np.array([3, 0, 5, 0, 0, 0, 0, 0])
    op = up.expert_op(tokens, 2.0)
    K, N = 64, 2 * 48  # gated: gate and up projections
    assert op.num_instances == 1 and op.m.tolist() == [8]
    assert op.flops.tolist() == [2.0 * 8 * K * N]
    assert op.weight_bytes == 2 * K * N * 2.0  # two active experts, bf16
    assert op.bytes_read.tolist() == [8 * K * 2.0 + 2 * K * N * 2.0]
    act = next(t for t in template.block if t.name == "expert_act")
    assert act.expert_op(tokens, 2.0).m.tolist() == [8]  # the routed rows
    with pytest.raises(ValueError, match=r"op 'expert_up' routes to 8 experts; the batch must "
                                         r"carry expert_tokens of that length \(got None\)"):
        up.instantiate(BatchShape.from_lists([5], [0]), 2)


def test_mla_attention_reads_the_latent_cache_with_one_shared_head():
    mla = MLASpec(kv_lora_rank=64, qk_rope_head_dim=16, qk_nope_head_dim=32, v_head_dim=32,
                  q_lora_rank=48)
    spec = ModelSpec("tiny-mla", num_layers=2, hidden_size=128, num_heads=4, num_kv_heads=4,
                     ffn_hidden_size=256, vocab_size=1000, activation="swiglu",
                     norm="rmsnorm", position="rope", bias=False, tied_embeddings=False,
                     head_dim=48, mla=mla)
    assert spec.kv_bytes_per_token() == 2 * (64 + 16) * 2
    template = decoder_template(spec)
    names = _names(template)
    assert names[:5] == ["input_norm", "q_a_proj", "q_a_norm", "q_b_proj", "kv_a_proj"]
    score = template.block[names.index("attn_score")]
    assert (score.num_heads, score.num_kv_heads, score.head_dim) == (4, 1, 64 + 16)
    op = score.instantiate(BatchShape.from_lists([1], [99]), 2)
    assert op.bytes_read.tolist() == [(4 * 1 * 80 + 1 * 100 * 80) * 2.0]
    # The context product multiplies the latent the score product read: scores only.
    context = template.block[names.index("attn_context")]
    assert context.instantiate(BatchShape.from_lists([1], [99]), 2).bytes_read.tolist() == [
        4 * 1 * 100 * 2.0]
    # The template's weights are the spec's attention weights (absorbed form).
    gemm_weights = sum(t.weight_k * t.weight_n * t.num_batches for t in template.block
                       if t.kind is OpKind.GEMM and t.name not in ("ffn_up", "ffn_down"))
    assert gemm_weights == mla.attention_parameters(128, 4) - 48 - 64  # less the two norms


def _moe_instance(seed=0, **flags):
    spec = register_model(tiny_moe("tiny-moe-run"), overwrite=True)
    # No serving-stack host time: these tests compare what routing does to the
    # device's time, which a tiny model's overlapped host step would hide.
    flags = {"hardware": "h100-sxm", "serving_stack": "none", **flags}
    config = SimConfig.from_flags(model_name=spec.name, seed=seed, **flags)
    return config


def _submitted(config, trace):
    """An instance of ``config`` holding every request of ``trace``."""
    inst = Instance(build_instance(config))
    for request in trace:
        inst.submit(request)
    return inst


def _stepped_ends(config, trace):
    """Every iteration's end time, stepping through the execution graph."""
    inst = _submitted(config, trace)
    ends = []
    while not inst.is_finished:
        ends.append(float(inst.step().t_end.values[0]))
    return ends


def _trace(n=40, seed=3):
    rng = np.random.default_rng(seed)
    return Trace(np.sort(rng.uniform(0, 0.05, n)), rng.integers(5, 60, n),
                 rng.integers(1, 20, n))


def test_an_moe_run_finishes_every_request_once_and_repeats_under_its_seed():
    trace = _trace()
    first = Simulator(_moe_instance(), trace).run()
    again = Simulator(_moe_instance(), trace).run()
    other = Simulator(_moe_instance(seed=1), trace).run()
    assert np.isfinite(first.finished_at.values).all()
    assert first.num_finished.values.sum() == len(trace)
    assert first.num_generated_tokens.values.sum() == trace.num_output_tokens.sum()
    assert (np.diff(first.t_start.values) > 0).all()
    xr.testing.assert_identical(first.drop_vars("wall_time"), again.drop_vars("wall_time"))
    assert not np.array_equal(first.latency.values, other.latency.values)


@pytest.mark.parametrize("flags", [{}, dict(npu_num=2), dict(npu_num=4, npu_group=2)])
def test_steps_through_the_graph_equal_the_run_through_the_chain(flags):
    trace = _trace(12)
    config = _moe_instance(**flags)
    assert _stepped_ends(config, trace) == Simulator(config, trace).run().t_end.values.tolist()


def test_reuse_gives_the_same_run_as_timing_every_op():
    trace = _trace(20)
    with_reuse = Simulator(_moe_instance(), trace).run()
    without = Simulator(_moe_instance(reuse="off"), trace).run()
    assert np.array_equal(with_reuse.latency.values, without.latency.values)


def test_expert_op_latency_is_one_grouped_kernel_per_moe_layer():
    parts = build_instance(_moe_instance())
    batch = BatchShape.from_lists([1] * 6, [10] * 6)
    trace = parts.stack.simulate(batch)
    drawn = parts.stack.last_expert_tokens
    assert drawn.sum() == 6 * 2 and drawn.max() <= 6
    engine = parts.engine.inner
    names = list(trace.template.op_names)
    routed = dataclasses.replace(batch, expert_tokens=drawn)
    up = next(t for t in trace.template.block if t.name == "expert_up")
    # One MoE layer of two: the iteration's expert_up time is that layer's kernel.
    assert trace.op_latency[names.index("expert_up")] == engine.time_op(
        up.instantiate(routed, 2)).total


@pytest.mark.parametrize("flags, match", [
    (dict(npu_num=2, attention_placement="requests"),
     r"has mixture-of-experts layers and layers of full and sliding attention; tensor "
     r"parallelism of such models splits attention by heads"),
    (dict(npu_num=2, pim_type="local", hardware="npu-128x128"),
     r"the NPU \+ PIM stack does not model them yet"),
])
def test_parallel_layouts_not_modelled_are_refused(flags, match):
    with pytest.raises(ValueError, match=match):
        build_instance(_moe_instance(**flags))


def test_pipeline_stages_split_layers_of_both_kinds():
    config = _moe_instance(npu_num=2, npu_group=2)
    ran = Simulator(config, _trace(10)).run()
    assert ran.num_finished.values.sum() == 10


def test_a_config_json_path_is_a_model_name():
    path = HF_DIR / "Qwen" / "Qwen3-30B-A3B" / "config.json"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    config = SimConfig.from_flags(model_name=str(path), hardware="h100-sxm")
    parts = build_instance(config)
    assert parts.model.moe.num_experts == 128
    ran = Simulator(config, _trace(8)).run()
    assert ran.num_finished.values.sum() == 8


def test_expert_parallel_ranks_hold_whole_experts_and_the_slowest_sets_the_layer():
    tp = build_instance(_moe_instance(npu_num=2))
    ep = build_instance(_moe_instance(npu_num=2, enable_expert_parallel=True))
    up_tp = next(t for t in tp.stack.sharded.block if t.name == "expert_up")
    up_ep = next(t for t in ep.stack.sharded.block if t.name == "expert_up")
    assert (up_tp.weight_n, up_tp.num_local_experts) == (48, 0)   # half of each expert
    assert (up_ep.weight_n, up_ep.num_local_experts) == (96, 4)   # four whole experts
    # The same weight bytes a device: 8 half experts = 4 whole ones.
    assert tp.memory.weight_bytes == ep.memory.weight_bytes
    batch = BatchShape.from_lists([1] * 6, [10] * 6)
    trace = ep.stack.simulate(batch)
    drawn = ep.stack.last_expert_tokens
    rank_tokens = ep.stack.last_rank_tokens
    assert rank_tokens.tolist() == [int(drawn[:4].sum()), int(drawn[4:].sum())]
    assert rank_tokens.sum() == 6 * 2
    engine = ep.engine.inner
    names = list(trace.template.op_names)
    experts = [t for t in ep.stack.sharded.block if t.num_experts]
    per_rank = []
    for rank in (0, 1):
        mine = np.where(np.arange(8) // 4 == rank, drawn, 0)
        routed = dataclasses.replace(batch, expert_tokens=mine)
        per_rank.append([engine.time_op(t.instantiate(routed, 2)).total for t in experts])
    slowest = max(per_rank, key=sum)
    assert [trace.op_latency[names.index(t.name)] for t in experts] == slowest


@pytest.mark.parametrize("flags, match", [
    (dict(enable_expert_parallel=True), r"enable_expert_parallel=True needs tensor "
                                        r"parallelism"),
    (dict(npu_num=2, enable_expert_parallel=True, model_name="llama-3.1-8b"),
     r"needs a mixture-of-experts model; 'llama-3.1-8b' has no experts"),
])
def test_expert_parallelism_needs_experts_and_ranks(flags, match):
    with pytest.raises(ValueError, match=match):
        build_instance(SimConfig.from_flags(**{"model_name": register_model(
            tiny_moe("tiny-moe-run"), overwrite=True).name, "hardware": "h100-sxm", **flags}))


def test_expert_parallel_steps_equal_the_run():
    trace = _trace(10)
    config = _moe_instance(npu_num=2, enable_expert_parallel=True)
    assert _stepped_ends(config, trace) == Simulator(config, trace).run().t_end.values.tolist()


def test_each_iteration_records_its_expert_load():
    trace = _trace(10)
    config = _moe_instance(npu_num=2, enable_expert_parallel=True)
    inst = _submitted(config, trace)
    step = inst.step()
    tokens = step.expert_tokens.values
    assert step.expert_tokens.dims == ("expert",) and step.expert_tokens.attrs["units"] == "token"
    assert tokens.sum() == int(step.num_query_tokens.values.sum()) * 2   # top-2
    assert step.num_active_experts.values[0] == np.count_nonzero(tokens)
    assert step.max_expert_tokens.values[0] == tokens.max()
    assert step.max_rank_expert_tokens.values[0] == max(tokens[:4].sum(), tokens[4:].sum())
    ran = inst.run()
    assert (ran.num_active_experts.values >= 1).all()
    assert (ran.max_expert_tokens.values <= ran.num_prefill_tokens.values
            + ran.num_decode_tokens.values).all()
    dense = Simulator(SimConfig.from_flags(model_name="gpt2"), _trace(3)).run()
    assert (dense.num_active_experts.values == 0).all() and "expert_tokens" not in dense


def test_skewed_routing_loads_the_slowest_rank_more_and_zero_skew_is_uniform():
    trace = _trace(30)
    base = dict(npu_num=2, enable_expert_parallel=True)
    uniform = Simulator(_moe_instance(**base), trace).run()
    flat = Simulator(_moe_instance(expert_routing="skewed", expert_skew=0.0, **base), trace).run()
    steep = Simulator(_moe_instance(expert_routing="skewed", expert_skew=3.0, **base), trace).run()
    assert np.array_equal(uniform.t_end.values, flat.t_end.values)
    # Popularity falls with the expert index: rank 0 holds the popular experts.
    assert steep.max_rank_expert_tokens.mean() > uniform.max_rank_expert_tokens.mean()
    assert steep.num_active_experts.mean() < uniform.num_active_experts.mean()


@pytest.mark.parametrize("flags, match", [
    (dict(expert_skew=2.0), r"expert_skew=2.0 has no effect with expert_routing='uniform'"),
    (dict(expert_routing="zipf"), r"expert_routing='zipf'"),
    (dict(expert_routing="skewed", expert_skew=-1.0), r"expert_skew=-1.0"),
])
def test_bad_routing_flags_are_refused(flags, match):
    with pytest.raises(ValueError, match=match):
        _moe_instance(**flags)


def test_a_routing_flag_on_a_dense_model_is_refused():
    with pytest.raises(ValueError, match=r"expert_routing='skewed' has no effect: model "
                                         r"'gpt2' has no mixture-of-experts layers"):
        build_instance(SimConfig.from_flags(model_name="gpt2", expert_routing="skewed"))


@pytest.mark.parametrize("model, hardware, tp, share", [
    ("llama-3.1-70b", "h100-sxm", 8, 1 / 8),     # 8 KV heads over 8 ranks: one each
    ("qwen3-30b-a3b", "h100-sxm", 8, 2 / 8),     # 4 KV heads over 8 ranks: each held twice
    ("deepseek-v3", "h200", 8, 1.0),             # MLA: every rank holds the whole latent
])
def test_a_rank_moves_the_kv_it_holds_to_and_from_the_host(model, hardware, tp, share):
    parts = build_instance(SimConfig.from_flags(model_name=model, hardware=hardware,
                                                npu_num=tp))
    assert parts.converter.kv_share(0) == pytest.approx(share, rel=1e-12)
    held = parts.memory.kv_bytes_per_token[0] / parts.model.kv_bytes_per_token()
    assert parts.converter.kv_share(0) == pytest.approx(held, rel=1e-12)


def test_tensor_parallelism_splits_per_head_vector_ops():
    qwen = build_instance(SimConfig.from_flags(model_name="qwen3-8b", hardware="h100-sxm",
                                               npu_num=4)).stack.sharded
    widths = {t.name: t.width for t in qwen.block if t.width}
    assert widths["qk_norm"] == widths["rope"] == (32 + 8) * 128 // 4
    deepseek = build_instance(SimConfig.from_flags(model_name="deepseek-v3", hardware="h200",
                                                   npu_num=8)).stack.sharded
    widths = {t.name: t.width for t in deepseek.block if t.width}
    assert (widths["rope"], widths["k_rope"]) == (128 * 64 // 8, 64)


def test_seeds_that_differ_above_32_bits_route_differently():
    trace = _trace(8)
    low = Simulator(_moe_instance(seed=5), trace).run()
    high = Simulator(_moe_instance(seed=2 ** 32 + 5), trace).run()
    assert not np.array_equal(low.latency.values, high.latency.values)


def test_catalog_first_dense_layers_must_leave_an_moe_layer(tmp_path):
    from llmsim_nb.models.catalog import load_catalog_file
    path = tmp_path / "models.yaml"
    entry = ("version: 1\nfamilies: {}\nmodels:\n  - {name: m, num_layers: 4, hidden_size: 64, "
             "num_heads: 4, ffn_hidden_size: 128, vocab_size: 100, moe: {num_experts: 4, "
             "num_experts_per_token: 2, expert_ffn_size: 32, first_dense_layers: %s}}\n")
    path.write_text(entry % "1")
    assert load_catalog_file(path)[0].moe.moe_layers == (1, 2, 3)
    for bad in ("4", "true", "-1"):
        path.write_text(entry % bad)
        with pytest.raises(ValueError, match=r"moe.first_dense_layers=.* must be an integer in "
                                             r"0..num_layers-1 \(4 layers\)"):
            load_catalog_file(path)


def test_round_robin_placement_spreads_popular_experts_over_the_ranks():
    trace = _trace(30)
    base = dict(npu_num=2, enable_expert_parallel=True, expert_routing="skewed", expert_skew=3.0)
    contiguous = Simulator(_moe_instance(**base), trace).run()
    spread = Simulator(_moe_instance(expert_placement="round_robin", **base), trace).run()
    # The same draws (same seed); experts 0 and 1, the most popular, now sit on both ranks.
    assert np.array_equal(contiguous.num_active_experts.values, spread.num_active_experts.values)
    assert spread.max_rank_expert_tokens.mean() < contiguous.max_rank_expert_tokens.mean()
    parts = build_instance(_moe_instance(expert_placement="round_robin", **base))
    assert parts.stack.rank_of_expert.tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    with pytest.raises(ValueError, match=r"expert_placement='round_robin' has no effect without "
                                         r"enable_expert_parallel=True"):
        _moe_instance(expert_placement="round_robin")
