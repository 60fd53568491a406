"""The analytical NPU engine against hand-computed closed forms, and hardware presets."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from llmsim_nb.engines.base import ENGINES, BlockTiming
from llmsim_nb.engines.hardware import (DEFAULT_HARDWARE, HardwarePreset, engine_from_spec,
                                        get_hardware, list_hardware, make_engine,
                                        parse_quantity)
from llmsim_nb.engines.npu import NPUEngine, NPUSpec
from llmsim_nb.models.ops import Op, OpKind
from llmsim_nb.models.spec import ModelSpec
from llmsim_nb.models.decoder import decoder_template
from llmsim_nb.models.template import OpTemplate
from llmsim_nb.testing import make_batch

GPT3_7B = ModelSpec("gpt3-6.7b", 32, 4096, 32, 32, 16384, 50257)
R = C = 128
SKEW = R + C - 2  # pipeline fill/drain of a 128x128 array
BW = 936e9
MEM_LAT = 100e-9


def gemm(m: int, k: int, n: int) -> Op:
    """A weight GEMM of ``m`` token rows through a ``k x n`` fp16 weight (no bias)."""
    return OpTemplate("g", OpKind.GEMM, weight_k=k, weight_n=n).instantiate(
        make_batch([m], [0]), dtype_bytes=2)


def attention(kind: OpKind, contexts, heads=32, head_dim=128) -> Op:
    t = OpTemplate("a", kind, num_heads=heads, num_kv_heads=heads, head_dim=head_dim)
    return t.instantiate(make_batch([1] * len(contexts), contexts), dtype_bytes=2)


@pytest.fixture
def npu():
    return NPUEngine(NPUSpec())


# -- systolic array cycles ----------------------------------------------------------


def test_single_tile_gemm_cycles(npu):
    # One 128x128 weight tile: 1-cycle load + 128 streamed rows + 254 fill/drain.
    op = gemm(128, 128, 128)
    assert npu.matmul_cycles(op).tolist() == [1 + 128 + SKEW]
    timing = npu.time_op(op)
    assert timing.compute_latency[0] == pytest.approx(383e-9)
    bytes_ = 3 * 128 * 128 * 2
    assert timing.memory_latency[0] == pytest.approx(bytes_ / BW + MEM_LAT)
    assert timing.latency[0] == pytest.approx(max(383e-9, bytes_ / BW + MEM_LAT))


def test_single_tile_with_shift_in_weights():
    # Loading the tile row by row takes R cycles: exposed once, then max(M, R) per tile.
    engine = NPUEngine(NPUSpec(weight_load_cycles=128))
    assert engine.matmul_cycles(gemm(128, 128, 128)).tolist() == [128 + 128 + SKEW]
    assert engine.matmul_cycles(gemm(1, 256, 256)).tolist() == [128 + 4 * 128 + SKEW]


def test_multi_tile_closed_forms():
    op = gemm(300, 256, 384)   # ceil(256/128) * ceil(384/128) = 6 weight tiles
    ws = NPUEngine(NPUSpec())
    assert ws.matmul_cycles(op).tolist() == [1 + 6 * 300 + SKEW]
    # Output-stationary: ceil(300/128) * ceil(384/128) = 9 output tiles, K=256 each.
    os_ = NPUEngine(NPUSpec(dataflow="output_stationary"))
    assert os_.matmul_cycles(op).tolist() == [9 * 256 + SKEW + 128]


def test_heads_multiply_tiles(npu):
    # ATTN_SCORE of one decode request: 32 heads x ceil(128/128) x ceil(1000/128) tiles.
    op = attention(OpKind.ATTN_SCORE, [999])
    assert op.batch == 32 and op.n.tolist() == [1000]
    assert npu.matmul_cycles(op).tolist() == [1 + 32 * 8 * 1 + SKEW]


def test_edge_tile_costs_a_whole_tile(npu):
    m, k = 4096, 512
    c128, c129, c256 = (float(npu.matmul_cycles(gemm(m, k, n))[0]) for n in (128, 129, 256))
    assert c129 == c256
    assert c129 - (1 + SKEW) == 2 * (c128 - (1 + SKEW))
    # Utilisation of N=129 is 129/256 up to the exposed load and skew (255 of 32768
    # cycles): tile-quantization waste comes out of the model.
    op = gemm(m, k, 129)
    util = op.total_flops / (npu.time_op(op).compute_latency[0] * npu.spec.peak_matmul_flops)
    assert util == pytest.approx(129 / 256 * 32768 / (32768 + 255))


# -- compute- and memory-bound regimes ----------------------------------------------


def test_large_prefill_gemm_is_compute_bound_at_high_utilisation(npu):
    op = gemm(2048, 4096, 4096)
    timing = npu.time_op(op)
    assert not timing.is_memory_bound
    assert timing.latency[0] == timing.compute_latency[0]
    assert npu.utilisation(op) > 0.99
    assert timing.compute_latency[0] == pytest.approx((1 + 32 * 32 * 2048 + SKEW) / 1e9)


def test_decode_gemv_is_memory_bound(npu):
    op = gemm(1, 4096, 4096)
    timing = npu.time_op(op)
    assert timing.is_memory_bound
    weight_bytes = 4096 * 4096 * 2
    assert timing.latency[0] == pytest.approx(weight_bytes / BW, rel=0.01)
    assert npu.utilisation(op) < 0.05


@pytest.mark.parametrize("kind", [OpKind.ATTN_SCORE, OpKind.ATTN_CONTEXT])
def test_long_context_decode_attention_is_memory_bound(npu, kind):
    op = attention(kind, [4095])
    timing = npu.time_op(op)
    assert timing.is_memory_bound
    kv_bytes = 32 * 4096 * 128 * 2  # one of K or V for all heads
    assert timing.latency[0] == pytest.approx(kv_bytes / BW, rel=0.02)


def test_doubling_bandwidth_halves_memory_bound_and_keeps_compute_bound():
    slow = NPUEngine(NPUSpec())
    fast = NPUEngine(NPUSpec(memory_bandwidth=2 * BW))
    gemv = gemm(1, 4096, 4096)
    t_slow, t_fast = slow.time_op(gemv), fast.time_op(gemv)
    assert (t_fast.latency[0] - MEM_LAT) == pytest.approx((t_slow.latency[0] - MEM_LAT) / 2)
    big = gemm(2048, 4096, 4096)
    assert fast.time_op(big).latency[0] == slow.time_op(big).latency[0]


def test_bigger_array_speeds_up_compute_not_memory():
    small, large = make_engine("npu-128x128"), make_engine("npu-256x256")
    big = gemm(2048, 4096, 4096)
    ratio = small.time_op(big).total / large.time_op(big).total
    assert ratio == pytest.approx(4.0, rel=0.01)
    gemv = gemm(1, 4096, 4096)
    assert small.time_op(gemv).total == pytest.approx(large.time_op(gemv).total, rel=1e-3)


# -- DRAM traffic -------------------------------------------------------------------


def test_no_rereads_when_operands_fit(npu):
    op = gemm(64, 1024, 1024)  # input 128 KiB < 2 MiB
    assert npu.reread_bytes(op).tolist() == [0.0]
    assert npu.dram_bytes(op)[0] == op.total_bytes


def test_input_restreamed_per_column_tile_when_it_exceeds_ibuf(npu):
    op = gemm(2048, 4096, 4096)  # input 16 MiB > 2 MiB input buffer
    a_bytes = 2048 * 4096 * 2
    assert npu.reread_bytes(op)[0] == (4096 // 128 - 1) * a_bytes


def test_weights_reread_per_output_chunk(npu):
    # The 4 MiB output buffer holds 8192 rows of 128 fp32 partial sums; 10000 rows
    # need 2 chunks, and the 32 MiB weight (> 2 MiB buffer) is read once per chunk.
    assert npu.spec.output_chunk_rows == 8192
    op = gemm(10000, 4096, 4096)
    w_bytes, a_bytes = 4096 * 4096 * 2, 10000 * 4096 * 2
    assert npu.reread_bytes(op)[0] == w_bytes + 31 * a_bytes


# -- vector ops, zero work, roofline -----------------------------------------------


def test_vector_op_closed_form(npu):
    op = OpTemplate("n", OpKind.NORM, width=4096, flops_per_element=8,
                    param_elements=8192).instantiate(make_batch([512], [0]), dtype_bytes=2)
    timing = npu.time_op(op)
    assert timing.compute_latency[0] == pytest.approx(8 * 512 * 4096 / (128 * 1e9))
    assert timing.memory_latency[0] == pytest.approx(op.total_bytes / BW + MEM_LAT)
    assert timing.latency[0] == timing.compute_latency[0]


def test_zero_rows_cost_nothing(npu):
    zero_i, zero_f = np.zeros(2, dtype=np.int64), np.zeros(2)
    op = Op("z", OpKind.ATTN_SCORE, np.array([0, 1]), np.array([8, 8]), np.array([16, 16]),
            4, np.array([0.0, 1024.0]), np.array([0.0, 512.0]), np.array([0.0, 64.0]))
    timing = npu.time_op(op)
    assert timing.latency[0] == 0.0 and timing.compute_latency[0] == 0.0
    assert timing.memory_latency[0] == 0.0 and timing.latency[1] > 0
    gemm0 = Op("g0", OpKind.GEMM, zero_i[:1], np.array([64]), np.array([64]), 1,
               zero_f[:1], zero_f[:1], zero_f[:1])
    assert npu.time_op(gemm0).total == 0.0


def test_op_overhead_added_per_instance():
    base, slow = NPUEngine(NPUSpec()), NPUEngine(NPUSpec(op_overhead=2e-6))
    op = attention(OpKind.ATTN_SCORE, [10, 20, 30])
    diff = slow.time_op(op).latency - base.time_op(op).latency
    assert diff == pytest.approx(np.full(3, 2e-6))


def test_roofline(npu):
    intensity, attainable = npu.roofline(gemm(1, 4096, 4096))
    assert intensity < 1.5
    assert attainable == pytest.approx(intensity * BW)
    intensity, attainable = npu.roofline(gemm(2048, 4096, 4096))
    assert attainable == npu.spec.peak_matmul_flops


def test_simulate_decoder_block_with_256_decode_requests(npu):
    batch = make_batch([1] * 256, np.arange(256) * 8 + 100)
    _, block, _ = decoder_template(GPT3_7B).instantiate(batch)
    start = time.perf_counter()
    result = npu.simulate(block)
    elapsed = time.perf_counter() - start  # measured, never asserted on
    assert isinstance(result, BlockTiming) and elapsed >= 0
    attn = result.ops[block.op_names.index("attn_score")]
    assert attn.latency.shape == (256,)
    assert np.all(np.diff(attn.latency) > 0)


# -- NPUSpec ----------------------------------------------------------------------


def test_spec_defaults_follow_genesys_sizing():
    spec = NPUSpec()
    assert spec.input_buffer_bytes == 8192 * 128 * 2 == 2 * 2 ** 20
    assert spec.weight_buffer_bytes == 2 * 2 ** 20
    assert spec.output_buffer_bytes == 8192 * 128 * 4
    assert spec.vector_lanes == 128
    assert spec.memory_bytes == 24 * 2 ** 30
    assert spec.peak_matmul_flops == 2 * 128 * 128 * 1e9
    wide = NPUSpec(array_rows=256, array_cols=256)
    assert wide.input_buffer_bytes == 8192 * 256 * 2 and wide.vector_lanes == 256
    assert NPUSpec(vector_lanes=64).vector_lanes == 64


def test_spec_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        NPUSpec().array_rows = 4


@pytest.mark.parametrize("field, value", [
    ("array_rows", 0), ("array_cols", -3), ("array_rows", 12.5), ("array_cols", True),
    ("frequency", 0.0), ("frequency", float("nan")), ("dataflow", "row_stationary"),
    ("weight_load_cycles", 0), ("input_buffer_bytes", 0), ("weight_buffer_bytes", -1),
    ("output_buffer_bytes", 100), ("accumulator_bytes", 0), ("vector_lanes", 0),
    ("vector_flops_per_lane_per_cycle", -1.0), ("memory_bytes", 0),
    ("memory_bandwidth", 0.0), ("memory_bandwidth", float("inf")),
    ("memory_latency", -1e-9), ("dtype_bytes", 0), ("op_overhead", -1.0),
])
def test_spec_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"NPUSpec.{field}="):
        NPUSpec(**{field: value})


def test_engine_rejects_other_specs():
    with pytest.raises(ValueError, match="NPUSpec"):
        NPUEngine("not a spec")
    assert ENGINES["npu"] is NPUEngine and NPUEngine.name == "npu"


# -- hardware presets -----------------------------------------------------------------


def test_presets_listed_and_loaded():
    npu = [n for n in list_hardware() if get_hardware(n).engine == "npu"]
    assert npu == ["npu-128x128", "npu-256x256", "npu-64x64"]
    assert list_hardware() == sorted(list_hardware())
    preset = get_hardware()
    assert preset.name == DEFAULT_HARDWARE == "npu-128x128"
    assert isinstance(preset, HardwarePreset) and preset.engine == "npu"
    assert preset.spec == NPUSpec()  # the paper's NPU is the default spec, in SI units
    assert preset.description and preset.source
    for name, size in (("npu-256x256", 256), ("npu-64x64", 64)):
        spec = get_hardware(name).spec
        assert (spec.array_rows, spec.array_cols) == (size, size)
        assert spec.memory_bandwidth == 936e9 and spec.memory_bytes == 24 * 2 ** 30


def test_unknown_preset_lists_known_names():
    with pytest.raises(ValueError, match="npu-128x128"):
        get_hardware("tpu-v9")


def test_make_engine_from_name_preset_or_spec():
    assert isinstance(make_engine(), NPUEngine)
    engine = make_engine(get_hardware("npu-64x64"))
    assert engine.spec.array_rows == 64
    spec = NPUSpec(array_rows=32, array_cols=32)
    assert make_engine(spec).spec is spec
    assert engine_from_spec(spec).spec is spec
    with pytest.raises(ValueError, match="no registered engine"):
        engine_from_spec(object())


@pytest.mark.parametrize("text, value", [
    ("936 GB/s", 936e9), ("24 GiB", 24 * 2 ** 30), ("1 GHz", 1e9), ("100 ns", 100e-9),
    ("2 MiB", 2 ** 21), ("1e9", 1e9), ("weight_stationary", "weight_stationary"), (7, 7),
])
def test_parse_quantity(text, value):
    expected = pytest.approx(value) if isinstance(value, float) else value
    assert parse_quantity(text) == expected


def test_parse_quantity_unknown_unit():
    with pytest.raises(ValueError, match="furlongs"):
        parse_quantity("3 furlongs")
