"""calibrate(): recovers known efficiencies, stays physical, reports error and a band."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmsim_nb.fidelity.calibration import calibrate, error_table, predict
from llmsim_nb.engines.gpu import EFFICIENCY_FIELDS, GPUEngine, GPUSpec
from llmsim_nb.engines.hardware import get_hardware
from llmsim_nb.engines.measurements import Measurements, load_measurements, load_vidur

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "calibration"
FIT = ("gemm_efficiency", "memory_efficiency", "norm_bandwidth_efficiency", "kernel_overhead",
       "norm_overhead")


def synthetic(tmp_path, truth: GPUSpec, noise: float = 0.0, seed: int = 0) -> Measurements:
    """Measurements whose latencies are ``truth``'s predictions (times lognormal noise)."""
    rows = [dict(model=model, op=op, num_tokens=t, latency_s=1.0)
            for model in ("llama-7b", "llama-2-13b")
            for op in ("qkv_proj", "ffn_up", "ffn_down", "input_norm")
            for t in (1, 4, 16, 64, 256, 1024, 4096)]
    path = tmp_path / "m.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    table = load_measurements(path)
    seconds = predict(GPUEngine(truth), table)
    rng = np.random.default_rng(seed)
    seconds = seconds * np.exp(noise * rng.standard_normal(len(seconds)))
    return Measurements(tuple(dataclasses.replace(r, latency=float(s))
                              for r, s in zip(table, seconds)))


def test_recovers_known_parameters(tmp_path):
    truth = GPUSpec(gemm_efficiency=0.62, memory_efficiency=0.71,
                    norm_bandwidth_efficiency=0.45, kernel_overhead=4e-6, norm_overhead=6e-6)
    fit = calibrate(GPUEngine(GPUSpec()), synthetic(tmp_path, truth), FIT)
    for name in FIT:
        assert fit.params[name] == pytest.approx(getattr(truth, name), rel=0.03), name
    assert fit.table["median_ape"].max() < 1e-3
    assert fit.spec.gemm_efficiency == fit.params["gemm_efficiency"]


def test_fitted_efficiencies_never_exceed_one(tmp_path):
    # Latencies 3x faster than a perfectly efficient GPU could run them.
    perfect = GPUSpec(**{f: 1.0 for f in EFFICIENCY_FIELDS}, kernel_overhead=0.0,
                      norm_overhead=0.0)
    fast = synthetic(tmp_path, perfect)
    fast = Measurements(tuple(dataclasses.replace(r, latency=r.latency / 3) for r in fast))
    fit = calibrate(GPUEngine(GPUSpec()), fast, FIT)
    for name, value in fit.params.items():
        if name.endswith("efficiency"):
            assert 0 < value <= 1.0
        else:
            assert value >= 0.0
    assert fit.table["median_ratio"].min() > 1.5  # it cannot fit; it says so


def test_error_band_covers_the_residual_spread(tmp_path):
    truth = GPUSpec(gemm_efficiency=0.7)
    fit = calibrate(GPUEngine(GPUSpec()), synthetic(tmp_path, truth, noise=0.1), FIT)
    lo, hi = fit.residual_quantiles()
    assert lo < 0 < hi
    assert hi - lo == pytest.approx(2 * 1.2816 * 0.1, rel=0.35)  # normal p10-p90 width
    low, high = fit.error_band(np.array([1e-3, 2e-3]))
    assert np.all(low < np.array([1e-3, 2e-3])) and np.all(high > np.array([1e-3, 2e-3]))
    inside = np.mean((fit.log_residuals >= lo) & (fit.log_residuals <= hi))
    assert inside == pytest.approx(0.8, abs=0.05)


def test_unconstrained_parameters_keep_their_start(tmp_path):
    fit = calibrate(GPUEngine(GPUSpec()), synthetic(tmp_path, GPUSpec()),
                    FIT + ("attention_efficiency",))
    assert "attention_efficiency" in fit.unconstrained
    assert fit.params["attention_efficiency"] == GPUSpec().attention_efficiency


def test_bad_requests_are_refused(tmp_path):
    table = synthetic(tmp_path, GPUSpec())
    with pytest.raises(ValueError, match="no_such"):
        calibrate(GPUEngine(), table, ("no_such",))
    with pytest.raises(ValueError, match="num_sms"):
        calibrate(GPUEngine(), table, ("num_sms",))
    with pytest.raises(ValueError, match="at least one"):
        calibrate(GPUEngine(), Measurements(()))


def test_error_table_per_label():
    table = error_table(np.array([1.0, 1.0, 2.0]), np.array([1.1, 0.8, 2.0]),
                        ["a", "a", "b"])
    assert table.loc["a", "median_ape"] == pytest.approx(0.15)
    assert table.loc["b", "median_ape"] == 0.0


def test_calibrated_preset_is_physical_and_documented():
    preset = get_hardware("a100-80gb-calibrated")
    assert "vidur" in preset.source.lower()
    assert all(0 < v <= 1 for v in preset.spec.efficiencies().values())


@pytest.mark.skipif(not DATA.is_dir(), reason="shared calibration data absent")
def test_calibrated_preset_predicts_an_unseen_model():
    """The preset's GEMM errors on a Vidur model are those the bench reports (< 10%)."""
    rows = load_vidur(DATA / "vidur_a100" / "compute" / "meta-llama" / "Meta-Llama-3-8B"
                      / "mlp.csv")
    gemms = rows.select([r.kind == "gemm" for r in rows])
    engine = GPUEngine(get_hardware("a100-80gb-calibrated").spec)
    table = error_table(gemms.latency, predict(engine, gemms), gemms.labels)
    assert table["median_ape"].max() < 0.10
