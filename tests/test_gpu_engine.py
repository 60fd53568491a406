"""The gpu engine: conformance, presets, shape effects, interconnects, memory knobs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.config.fields import ConfigWarning
from llmsim_nb.engines.gpu import EFFICIENCY_FIELDS, GPUEngine, GPUSpec
from llmsim_nb.engines.hardware import get_hardware, list_hardware, make_engine
from llmsim_nb.system.memory_plan import MemoryPlan
from llmsim_nb.models.ops import BatchShape, OpKind
from llmsim_nb.models.decoder import decoder_template
from llmsim_nb.models.template import OpTemplate
from llmsim_nb.models.catalog import get_model
from llmsim_nb.network.interconnect import INTERCONNECTS, interconnect_topology
from llmsim_nb.testing import check_engine, make_batch

GPU_PRESETS = [n for n in list_hardware() if get_hardware(n).engine == "gpu"]
REQUIRED = {"a100-40gb", "a100-80gb", "h100-sxm", "h200", "rtx3090", "rtx4090", "l40s"}


def gemm(m: int, k: int, n: int):
    return OpTemplate("g", OpKind.GEMM, weight_k=k, weight_n=n).instantiate(
        BatchShape.from_lists([1], [0]), 2, num_rows=m)


def test_required_presets_exist_with_sources():
    assert REQUIRED <= set(GPU_PRESETS)
    for name in GPU_PRESETS:
        preset = get_hardware(name)
        assert preset.source and preset.description
        assert preset.interconnect in INTERCONNECTS
        for field in EFFICIENCY_FIELDS:
            assert 0 < getattr(preset.spec, field) <= 1, (name, field)


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_every_gpu_preset_passes_conformance(name):
    check_engine(make_engine(name))


def test_fp8_only_where_the_hardware_has_it():
    with pytest.raises(ValueError, match="fp8"):
        dataclasses.replace(get_hardware("a100-80gb").spec, dtype="fp8")
    fp16, fp8 = make_engine("h100-sxm"), make_engine("h100-sxm-fp8")
    big, skinny = gemm(8192, 8192, 8192), gemm(1, 8192, 8192)
    # fp8 doubles the tensor peak and halves the weight bytes.
    assert fp8.time_op(big).total < 0.6 * fp16.time_op(big).total
    assert fp8.time_op(skinny).total < 0.6 * fp16.time_op(skinny).total


@pytest.mark.parametrize("field,value", [("gemm_efficiency", 1.2), ("memory_efficiency", 0.0),
                                         ("num_sms", 0), ("kernel_overhead", -1e-6),
                                         ("dtype", "int4"), ("memory_bandwidth", float("nan"))])
def test_bad_spec_values_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        GPUSpec(**{field: value})


def test_decode_gemm_is_bound_by_weight_bytes():
    spec = GPUSpec()
    t = GPUEngine(spec).time_op(gemm(1, 4096, 12288))
    weights = 4096 * 12288 * 2
    assert t.is_memory_bound
    expected = weights / (spec.memory_efficiency * spec.memory_bandwidth)
    assert t.total == pytest.approx(expected + spec.kernel_overhead
                                    + spec.gemm_exposed_fraction * t.compute_latency[0], rel=0.02)


def test_large_gemm_is_compute_bound_and_never_beats_the_peak():
    spec = GPUSpec()
    engine = GPUEngine(spec)
    for m in (1, 7, 100, 1000, 4096, 8192):
        op = gemm(m, 8192, 8192)
        ideal = op.total_flops / (spec.gemm_efficiency * spec.tensor_flops)
        assert engine.gemm_compute(m, 8192, 8192)[0] >= ideal * (1 - 1e-9)
    t = engine.time_op(gemm(8192, 8192, 8192))
    assert not t.is_memory_bound
    util = engine.utilisation(gemm(8192, 8192, 8192))
    assert 0.5 * spec.gemm_efficiency < util <= spec.gemm_efficiency


def test_wave_quantisation_one_more_tile_costs_a_wave():
    spec = GPUSpec(num_sms=4, l2_bandwidth=1e15)  # L2 never limits here
    engine = GPUEngine(spec)
    # 16 rows: the skinny 16x128 tile is best; 4 of them fill one wave of 4 SMs,
    # 5 need a second wave that costs as much as the first (25% more work, 2x time).
    one = engine.gemm_compute(16, 4 * 128, 8192)[0]
    two = engine.gemm_compute(16, 5 * 128, 8192)[0]
    assert two == pytest.approx(2 * one)


def test_tile_quantisation_pads_partial_tiles():
    engine = GPUEngine(GPUSpec())
    # 8193 columns cost as much as a whole extra column of tiles, not 1/8192 more.
    base = engine.gemm_compute(4096, 8192, 4096)[0]
    assert engine.gemm_compute(4096, 8193, 4096)[0] > base * 1.005


def test_decode_attention_follows_kv_bytes():
    engine = make_engine("a100-80gb")
    spec = get_model("llama-7b")
    template = decoder_template(spec)
    contexts = np.array([1000, 2000, 4000])
    _, block, _ = template.instantiate(make_batch([1, 1, 1], contexts))
    score, context = (next(o for o in block.ops if o.kind is k)
                      for k in (OpKind.ATTN_SCORE, OpKind.ATTN_CONTEXT))
    lat = engine.time_op(score).latency + engine.time_op(context).latency
    # Memory-bound: doubling the context doubles the KV read.
    assert lat[1] / lat[0] == pytest.approx(2.0, rel=0.05)
    assert lat[2] / lat[1] == pytest.approx(2.0, rel=0.05)
    kv_bytes = 2 * spec.kv_dim * (contexts + 1) * 2
    bw = engine.spec.kv_bandwidth_efficiency * engine.spec.memory_bandwidth
    assert lat == pytest.approx(kv_bytes / bw, rel=0.05)


def test_prefill_attention_is_causal_and_compute_bound():
    engine = make_engine("a100-80gb")
    template = decoder_template(get_model("llama-7b"))
    _, block, _ = template.instantiate(make_batch([2048], [0]))
    score = next(o for o in block.ops if o.kind is OpKind.ATTN_SCORE)
    t = engine.time_op(score)
    assert not t.is_memory_bound
    dense = score.total_flops / (engine.spec.attention_efficiency * engine.spec.tensor_flops)
    assert 0.45 * dense < t.total < 0.6 * dense  # about half the dense product


def test_gpu_preset_brings_its_interconnect():
    base = dict(model_name="gpt2", hardware="a100-80gb", npu_num=2, parallel="tensor")
    sim = Simulator(SimConfig.from_flags(**base))
    assert sim.topology.name == "nvlink3_2"
    assert sim.topology == interconnect_topology("nvlink3", 2)
    sim = Simulator(SimConfig.from_flags(**{**base, "npu_num": 4}, network="gpu_n4"))
    assert sim.topology.name == "gpu_n4"
    assert Simulator(SimConfig.from_flags(model_name="gpt2", npu_num=2)).topology.name \
        .startswith("fully_connected")
    with pytest.raises(ValueError, match="interconnect"):
        interconnect_topology("infiniband", 2)


def _blocks(**flags) -> int:
    return Simulator(SimConfig.from_flags(model_name="llama-7b", hardware="rtx3090",
                                          **flags)).kv_cache.num_blocks


def test_gpu_memory_utilization_and_explicit_blocks():
    default = _blocks()
    high, low = _blocks(gpu_memory_utilization=0.95), _blocks(gpu_memory_utilization=0.8)
    assert low < high
    spec, model = get_hardware("rtx3090").spec, get_model("llama-7b")
    block = 16 * model.kv_bytes_per_token()
    # 0.15 of 24 GiB more memory for KV is that many more blocks (activations equal).
    assert high - low == pytest.approx(0.15 * spec.memory_bytes / block, abs=1.5)
    # The default keeps the 5% activation reserve.
    plan = MemoryPlan.build(model, decoder_template(model),
                            Simulator(SimConfig(model="llama-7b")).layout,
                            spec.memory_bytes, 0.05)
    assert default == plan.num_kv_blocks(16)
    with pytest.warns(ConfigWarning, match="gpu_memory_utilization=0.9 has no effect with "
                                           "num_kv_blocks=123"):
        assert _blocks(num_kv_blocks=123, gpu_memory_utilization=0.9) == 123
    with pytest.raises(ValueError, match="num_kv_blocks"):
        _blocks(num_kv_blocks=10 ** 6)


@pytest.mark.parametrize("flags,field", [({"gpu_memory_utilization": 0.0}, "gpu_memory_util"),
                                         ({"gpu_memory_utilization": 1.5}, "gpu_memory_util"),
                                         ({"num_kv_blocks": 0}, "num_kv_blocks")])
def test_memory_knobs_are_validated(flags, field):
    with pytest.raises(ValueError, match=field):
        SimConfig.from_flags(**flags)


def test_utilization_flag_accepts_an_integer_one():
    assert SimConfig.from_flags(gpu_memory_utilization=1).memory.gpu_memory_utilization == 1.0


# ------------------------------------------------------------- L2 write-back
def _stream(rows: int, width: int = 4096, name: str = "add", kind=OpKind.ELEMENTWISE,
            inputs: int = 2):
    return OpTemplate(name, kind, width=width, num_inputs=inputs).instantiate(
        BatchShape.from_lists([rows], [0]), 2)


def test_l2_write_fraction_is_one_when_data_fits_and_falls_beyond():
    engine = GPUEngine(GPUSpec())
    capacity = GPUSpec().l2_usable_fraction * GPUSpec().l2_bytes
    a = engine.l2_write_fraction([1.0, capacity, 2 * capacity, 4 * capacity])
    assert a == pytest.approx([1.0, 1.0, 0.5, 0.25])


def test_l2_term_is_monotone_in_size_and_never_beats_the_l2():
    spec = GPUSpec()
    engine = GPUEngine(spec)
    rows = np.unique(np.geomspace(1, 1 << 17, 200).astype(int))
    ops = [_stream(int(r)) for r in rows]
    memory = np.array([engine.vector_parts(op)[1][0] for op in ops])
    assert np.all(np.diff(memory) > 0)  # more rows, more time, across the L2 capacity
    traffic = np.array([op.bytes_read[0] + op.bytes_written[0] for op in ops])
    floor = traffic / (spec.elementwise_bandwidth_efficiency * spec.l2_bandwidth)
    assert np.all(memory >= floor * (1 - 1e-12))
    # Reads always pay DRAM; a large stream pays DRAM for everything.
    reads = np.array([op.bytes_read[0] for op in ops])
    assert np.all(memory >= reads / (spec.elementwise_bandwidth_efficiency
                                     * spec.memory_bandwidth) * (1 - 1e-12))
    dram = traffic[-1] / (spec.elementwise_bandwidth_efficiency * spec.memory_bandwidth)
    assert memory[-1] == pytest.approx(dram, rel=0.05)


def test_writes_that_fit_in_the_l2_are_cheaper_than_dram():
    spec = GPUSpec()
    small = _stream(256)  # 6 MB of traffic: fits
    read, written = small.bytes_read[0], small.bytes_written[0]
    e = spec.elementwise_bandwidth_efficiency
    expected = read / (e * spec.memory_bandwidth) + written / (e * spec.l2_bandwidth)
    assert GPUEngine(spec).vector_parts(small)[1][0] == pytest.approx(expected)
    # A smaller L2 absorbs less and the same op gets slower.
    tiny = dataclasses.replace(spec, l2_bytes=1 << 20)
    assert GPUEngine(tiny).vector_parts(small)[1][0] > expected * 1.2


def test_in_place_rotary_and_gathers():
    spec = GPUSpec(l2_bytes=8 << 20)
    engine = GPUEngine(spec)
    rows = 600  # 4.9 MB read + 4.9 MB written: only in place does it fit in 5.6 MB
    rope = _stream(rows, name="rope", inputs=1)
    other = _stream(rows, name="scale", inputs=1)
    e = spec.rotary_bandwidth_efficiency
    assert engine.vector_parts(rope)[1][0] < engine.vector_parts(other)[1][0] * (
        spec.elementwise_bandwidth_efficiency / e)
    gather = _stream(rows, name="embed", kind=OpKind.EMBEDDING, inputs=1)
    traffic = gather.bytes_read[0] + gather.bytes_written[0]
    assert engine.vector_parts(gather)[1][0] == pytest.approx(
        traffic / (spec.embedding_bandwidth_efficiency * spec.memory_bandwidth))


@pytest.mark.parametrize("field,value", [("l2_usable_fraction", 0.0),
                                         ("l2_usable_fraction", 1.5),
                                         ("l2_bandwidth", 1e9)])
def test_bad_l2_values_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        GPUSpec(**{field: value})


def test_split_modules_keep_the_gpu_names_and_registration():
    import llmsim_nb.engines.gpu as gpu
    from llmsim_nb.engines.base import ENGINES
    from llmsim_nb.fidelity.calibration import default_parameters

    assert ENGINES["gpu"] is GPUEngine
    for name in gpu.__all__:
        assert hasattr(gpu, name), name
    # calibrate() finds EFFICIENCY_FIELDS in the module of the engine's class.
    assert GPUEngine.__module__ == "llmsim_nb.engines.gpu.engine"
    assert set(EFFICIENCY_FIELDS) <= set(default_parameters(GPUEngine()))
