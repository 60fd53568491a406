"""The detailed (tile-level) NPU mode against the closed form."""

import numpy as np
import pytest

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.engines.npu import NPUEngine, NPUSpec
from llmsim_nb.engines.npu_detailed import DetailedNPUEngine
from llmsim_nb.models import BatchShape, Op, OpKind, decoder_template, get_model
from llmsim_nb.testing import check_engine

FREE_MEMORY = NPUSpec(memory_bandwidth=1e18, memory_latency=0.0)


def gemm(m, n, k, batch=1, dt=2):
    one = np.ones(1, dtype=np.int64)
    return Op("gemm", OpKind.GEMM, one * m, one * n, one * k, batch,
              np.array([2.0 * m * n * k * batch]), np.array([(m * k + k * n) * dt * batch]),
              np.array([m * n * dt * batch]))


def both(op, spec):
    return NPUEngine(spec).time_op(op).total, DetailedNPUEngine(spec).time_op(op).total


def test_single_tile_matches_the_closed_form_exactly():
    closed, detailed = both(gemm(128, 128, 128), FREE_MEMORY)
    # Lw + M + (R + C - 2) = 1 + 128 + 254 cycles at 1 GHz.
    assert closed == pytest.approx(383e-9)
    assert detailed == pytest.approx(closed, rel=1e-12)


def test_compute_bound_gemm_with_free_memory_matches():
    closed, detailed = both(gemm(512, 4096, 4096), FREE_MEMORY)
    assert detailed == pytest.approx(closed, rel=1e-9)


def test_bandwidth_bound_gemv_matches_when_latency_is_hidden():
    # No DRAM latency: reads stream back to back, the closed form's overlap is real.
    spec = NPUSpec(memory_latency=0.0)
    closed, detailed = both(gemm(1, 4096, 4096), spec)
    assert detailed == pytest.approx(closed, rel=0.01)


def test_exposed_latency_makes_the_gemv_slower_than_the_closed_form():
    # 100 ns x 936 GB/s = 94 KB in flight needed, two 32 KB tile slots hold 64 KB:
    # double buffering cannot hide the latency, the closed form assumes it does.
    closed, detailed = both(gemm(1, 4096, 4096), NPUSpec())
    assert detailed > 1.5 * closed


def test_edge_tiles_and_overlap_differ_from_the_closed_form():
    spec = NPUSpec()
    ratios = [both(gemm(256, n, 4096), spec) for n in (128 * 8, 128 * 8 + 1)]
    # One extra column costs a whole column tile in both models, but the
    # detailed walk also pays the exposed first load and the write-back.
    for closed, detailed in ratios:
        assert detailed > closed
    assert ratios[1][0] > ratios[0][0] and ratios[1][1] > ratios[0][1]


def test_vector_op_streams_within_bandwidth():
    spec = NPUSpec(memory_latency=0.0)
    t = decoder_template(get_model("gpt3-6.7b"))
    norm = t.instantiate(BatchShape.from_lists([512], [0]))[1].ops[0]
    closed, detailed = both(norm, spec)
    assert detailed == pytest.approx(closed, rel=0.05)


def test_detailed_engine_passes_conformance_and_refuses_output_stationary():
    check_engine(DetailedNPUEngine())
    with pytest.raises(ValueError, match="weight-stationary"):
        DetailedNPUEngine(NPUSpec(dataflow="output_stationary"))


def test_npu_mode_selects_the_engine_and_is_validated():
    sim = Simulator(SimConfig.from_flags(model_name="gpt2", npu_mode="detailed", reuse="off"))
    assert isinstance(sim.engine, DetailedNPUEngine)
    with pytest.raises(ValueError, match="npu_mode='fast'"):
        SimConfig.from_flags(npu_mode="fast")
