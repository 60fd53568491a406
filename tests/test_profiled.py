"""The profiled engine: interpolation inside the measured range, counted fallbacks outside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.engines.gpu import GPUEngine
from llmsim_nb.engines.hardware import get_hardware
from llmsim_nb.engines.profiled import ProfiledEngine
from llmsim_nb.engines.measurements import load_measurements
from llmsim_nb.models.catalog import get_model
from llmsim_nb.models.ops import OpKind
from llmsim_nb.models.decoder import decoder_template
from llmsim_nb.testing import check_engine, make_batch

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calibration"


def write(tmp_path, rows) -> Path:
    path = tmp_path / "measured.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


@pytest.fixture
def engine(tmp_path):
    rows = [dict(model="llama-7b", op="qkv_proj", num_tokens=t, latency_s=s)
            for t, s in ((1, 100e-6), (16, 110e-6), (256, 400e-6))]
    rows += [dict(model="llama-7b", op="attention", num_tokens=1, context=c, latency_s=s)
             for c, s in ((100, 20e-6), (300, 40e-6))]
    return ProfiledEngine.from_files(write(tmp_path, rows), fallback="a100-80gb")


def ops_of(batch):
    _, block, _ = decoder_template(get_model("llama-7b")).instantiate(batch)
    return {op.name: op for op in block.ops}


def test_measured_points_are_returned_exactly_and_between_is_log_log(engine):
    for tokens, seconds in ((1, 100e-6), (16, 110e-6), (256, 400e-6)):
        op = ops_of(make_batch([tokens], 0))["qkv_proj"]
        assert engine.time_op(op).total == pytest.approx(seconds)
    op = ops_of(make_batch([64], 0))["qkv_proj"]  # halfway between 16 and 256 in log
    assert engine.time_op(op).total == pytest.approx(np.sqrt(110e-6 * 400e-6))
    assert engine.num_fallbacks == 0


def test_outside_the_range_falls_back_counted_and_warned(engine):
    op = ops_of(make_batch([1000], 0))["qkv_proj"]
    with pytest.warns(RuntimeWarning, match="outside the measured range"):
        t = engine.time_op(op)
    assert t.total == pytest.approx(GPUEngine(get_hardware("a100-80gb").spec).time_op(op).total)
    assert engine.fallbacks["qkv_proj"] == 1
    other = ops_of(make_batch([4], 0))["ffn_up"]  # a shape never measured
    with pytest.warns(RuntimeWarning):
        engine.time_op(other)
    assert engine.num_fallbacks == 2


def test_fused_attention_is_split_and_sums_to_the_measurement(engine):
    ops = ops_of(make_batch([1, 1], [200, 2000]))  # context 200 inside, 2000 outside
    with pytest.warns(RuntimeWarning):
        score, context = engine.time_op(ops["attn_score"]), engine.time_op(ops["attn_context"])
    total = score.latency + context.latency
    assert total[0] == pytest.approx(30e-6)  # linear in context between 100 and 300
    assert engine.fallbacks["attn_score"] == 1 and engine.fallbacks["attn_context"] == 1


def test_noisy_curves_are_made_monotone(tmp_path):
    rows = [dict(model="llama-7b", op="ffn_down", num_tokens=t, latency_s=s)
            for t, s in ((1, 50e-6), (8, 40e-6), (64, 90e-6))]
    engine = ProfiledEngine.from_files(write(tmp_path, rows), fallback="a100-80gb")
    lat = [engine.time_op(ops_of(make_batch([t], 0))["ffn_down"]).total for t in (1, 8, 32, 64)]
    assert np.all(np.diff(lat) >= 0)


def test_conformance(engine):
    # The conformance shapes go beyond the table: the fallbacks warn (once per op name).
    with pytest.warns(RuntimeWarning, match="outside the measured range"):
        check_engine(engine)


@pytest.mark.parametrize("rows,match", [
    ([dict(model="llama-7b", op="qkv_proj", latency_s=1e-4)], "num_tokens"),
    ([dict(model="llama-7b", op="qkv_proj", num_tokens=4, latency_s=-1.0)], "latency_s"),
    ([dict(model="llama-7b", op="nope", num_tokens=4, latency_s=1e-4)], "nope"),
])
def test_bad_tables_are_refused(tmp_path, rows, match):
    with pytest.raises(ValueError, match=match):
        load_measurements(write(tmp_path, rows))


def test_simulator_runs_on_a_profiled_engine(engine):
    config = SimConfig.from_flags(model_name="llama-7b", hardware="a100-80gb", reuse="off")
    with pytest.warns(RuntimeWarning, match="outside the measured range"):
        ds = Simulator(config, engine=engine).run()
    assert ds.attrs["engine"] == "profiled"
    assert engine.measured["qkv_proj"] > 0 and engine.num_fallbacks > 0


@pytest.mark.skipif(not DATA.is_dir(), reason="shared calibration data absent")
def test_reads_vidur_and_perf_model_tables():
    vidur = DATA / "vidur_a100" / "compute" / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv"
    engine = ProfiledEngine.from_files(vidur, fallback="a100-80gb")
    op = ops_of(make_batch([100], 0))["ffn_up"]
    frame = pd.read_csv(vidur)
    row = frame[(frame.num_tokens == 96) & (frame.num_tensor_parallel_workers == 1)]
    nearby = float(row["time_stats.mlp_up_proj.median"].iloc[0]) * 1e-3
    assert engine.time_op(op).total == pytest.approx(nearby, rel=0.15)
    assert engine.num_fallbacks == 0
    table = load_measurements(DATA / "perf_model_RTX3090.csv")
    attention = [r for r in table if r.kind == "attention"]
    assert len(attention) > 1000 and all(r.latency > 0 for r in attention)
    assert {r.ops[0].kind for r in table} >= {OpKind.GEMM, OpKind.NORM, OpKind.ATTN_SCORE}
