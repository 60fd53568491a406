"""Error bands: residual tables, the scaled engine, error_band(), summarize, CLI and plot."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.cli.main import main
from llmsim_nb.engines.gpu import GPUEngine
from llmsim_nb.engines.hardware import get_hardware
from llmsim_nb.engines.scaled import RESIDUAL_KINDS, ScaledEngine
from llmsim_nb.fidelity.error_band import BAND_METRICS, band_table, error_band
from llmsim_nb.fidelity.residuals import (ResidualTable, get_residuals, residual_presets,
                                          residuals_for_hardware)
from llmsim_nb.models.catalog import get_model
from llmsim_nb.models.decoder import decoder_template
from llmsim_nb.models.ops import BatchShape
from llmsim_nb.results.files import write_outputs
from llmsim_nb.results.metrics import summarize
from llmsim_nb.workload.trace import Trace

HARDWARE = "a100-80gb-calibrated"
# No serving stack: its host time is not perturbed (and with GPT-2's tiny kernels it hides
# the GPU time), so the hand computations below hold only for op time alone.
CONFIG = SimConfig.from_flags(model_name="gpt2", hardware=HARDWARE, serving_stack="none")


def _trace(n=10, prompt=96, output=16, gap=0.01):
    return Trace(arrival_at=np.arange(n) * gap, num_prompt_tokens=np.full(n, prompt),
                 num_output_tokens=np.full(n, output), source="test")


def _constant(value: float, kinds=RESIDUAL_KINDS) -> ResidualTable:
    return ResidualTable("const", "test", (0.0, 1.0), {k: (value, value) for k in kinds})


@pytest.fixture(scope="module")
def band():
    return error_band(CONFIG, trace=_trace(), num_runs=6, seed=3)


# ------------------------------------------------------------------ residual tables
def test_stored_table_names_its_source_and_real_presets():
    tables = residual_presets()
    assert "a100-vidur" in tables
    for table in tables.values():
        assert table.source
        for name in table.hardware:
            get_hardware(name)  # raises for an unknown preset
    table = get_residuals("a100-vidur")
    assert residuals_for_hardware(HARDWARE) is not None
    assert "attention" not in table.kinds  # Vidur's mlp.csv has no attention timings
    # The stored p10 / p90 of GEMMs are those bench/derive_residuals.py printed.
    assert table.quantile("gemm", 0.1) == pytest.approx(-0.1121)
    assert table.quantile("gemm", 0.9) == pytest.approx(0.1024)


def test_from_samples_and_quantile_by_hand():
    table = ResidualTable.from_samples({"gemm": [0.0, 1.0, 2.0, 3.0, 4.0]}, name="t",
                                       source="hand", probabilities=(0.0, 0.5, 1.0))
    assert table.log_residuals["gemm"] == (0.0, 2.0, 4.0)
    assert table.quantile("gemm", 0.25) == 1.0  # linear between stored quantiles


def test_latin_hypercube_draws_one_per_stratum():
    table = ResidualTable("u", "test", (0.0, 1.0), {"gemm": (0.0, 1.0), "norm": (0.0, 1.0)})
    draws = table.draw(np.random.default_rng(7), 8)
    for kind in ("gemm", "norm"):
        u = np.sort(np.log(draws[kind]))
        assert np.all(np.floor(u * 8 + 1e-12) == np.arange(8))


def test_zero_table_draws_factor_one():
    draws = ResidualTable.zero().draw(np.random.default_rng(0), 4)
    assert all(np.array_equal(v, np.ones(4)) for v in draws.values())


@pytest.mark.parametrize("kwargs, match", [
    (dict(probabilities=(0.0, 0.5)), "probabilities"),
    (dict(probabilities=(0.0, 0.5, 0.5, 1.0)), "probabilities"),
    (dict(log_residuals={"gemm": (0.1, 0.0)}), "non-decreasing"),
    (dict(log_residuals={"gemm": (0.0, math.nan)}), "finite"),
    (dict(log_residuals={"lm_head": (0.0, 0.1)}), "lm_head"),
    (dict(log_residuals={}), "empty"),
])
def test_bad_tables_are_refused(kwargs, match):
    args = dict(name="bad", source="test", probabilities=(0.0, 1.0),
                log_residuals={"gemm": (0.0, 0.1)}) | kwargs
    with pytest.raises(ValueError, match=match) as info:
        ResidualTable(**args)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ the scaled engine
def test_scaled_engine_scales_one_kind_exactly():
    base = GPUEngine(get_hardware(HARDWARE).spec)
    scaled = ScaledEngine(base, {"gemm": 1.5})
    template = decoder_template(get_model("gpt2"))
    batch = BatchShape.from_lists([64, 1, 1], [0, 100, 300])
    want = base.op_totals(template.block, batch, template.dtype_bytes)
    got = scaled.op_totals(template.block, batch, template.dtype_bytes)
    for t, w, g in zip(template.block, want, got):
        if t.kind.value == "gemm":
            ops = base.time_op(t.instantiate(batch, template.dtype_bytes)).latency
            assert g == float((ops * 1.5).sum())
        else:
            assert g == w  # factor 1: the wrapped engine's floats unchanged
    block = scaled.simulate(template.instantiate(batch)[1])
    assert np.array_equal(block.op_latency, got)  # op_totals and simulate agree
    assert scaled.name == base.name and scaled.spec is base.spec


def test_all_kinds_doubled_doubles_every_iteration_of_one_request():
    """One request: the schedule is the same, so every iteration's op time doubles
    exactly (x2 is exact in binary floating point)."""
    trace = _trace(n=1)
    point = Simulator(CONFIG, trace)
    ds = point.run()
    slow = Simulator(CONFIG, trace, engine=ScaledEngine(point.engine.inner, {
        k: 2.0 for k in RESIDUAL_KINDS})).run()
    assert np.array_equal(slow["compute_latency"].values, 2 * ds["compute_latency"].values)


@pytest.mark.parametrize("factors, match", [({"lm_head": 1.0}, "lm_head"),
                                            ({"gemm": 0.0}, "> 0"),
                                            ({"gemm": math.inf}, "finite"),
                                            ({"gemm": True}, "finite")])
def test_bad_factors_are_refused(factors, match):
    with pytest.raises(ValueError, match=match):
        ScaledEngine(GPUEngine(), factors)


# ------------------------------------------------------------------ error_band
def test_zero_residuals_collapse_to_the_point(band):
    zero = error_band(CONFIG, trace=_trace(), residuals=ResidualTable.zero(), num_runs=3)
    point = summarize(Simulator(CONFIG, _trace()).run())
    for name in BAND_METRICS:
        assert np.all(zero[name].values == point[name]), name
        assert float(zero[f"{name}_point"]) == point[name]
        assert float(band[f"{name}_point"]) == point[name]  # the point is unperturbed


def test_quantiles_are_ordered_and_units_named(band):
    for name in BAND_METRICS:
        values = band[name].values
        assert np.all(np.diff(values) >= 0), name
        assert band[name].attrs["units"] and band[name].attrs["long_name"]
    assert np.all(np.diff(band["generation_throughput_band"].values, axis=0) >= 0)
    assert list(band["quantile"].values) == [0.1, 0.5, 0.9]
    assert band.attrs["residuals"] == "a100-vidur"
    assert band.attrs["unperturbed_kinds"] == "attention"
    # Real spread: the GEMM factors of a100-vidur move TPOT.
    assert band["tpot_mean"].values[-1] > band["tpot_mean"].values[0]


def test_same_seed_same_band_other_seed_other_draws(band):
    again = error_band(CONFIG, trace=_trace(), num_runs=6, seed=3)
    xr.testing.assert_identical(band, again)
    other = error_band(CONFIG, trace=_trace(), num_runs=6, seed=4)
    assert not np.array_equal(other["residual_factor"].values,
                              band["residual_factor"].values)


def test_a_constant_factor_moves_the_whole_band():
    one = error_band(CONFIG, trace=_trace(n=1), residuals=_constant(math.log(2.0)),
                     num_runs=2)
    point = float(one["ttft_mean_point"])
    # One request alone: TTFT is its prefill iteration's time, doubled by every factor.
    assert np.allclose(one["ttft_mean"].values, 2 * point, rtol=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_runs=0), "num_runs"), (dict(num_runs=2.5), "num_runs"),
    (dict(num_runs=True), "num_runs"), (dict(quantiles=(0.1, 1.5)), "quantiles"),
    (dict(quantiles=(0.9, 0.1)), "quantiles"), (dict(quantiles=()), "quantiles"),
    (dict(quantiles="ab"), "quantiles"), (dict(quantiles=(0.1, True)), "quantiles"),
    (dict(seed=-1), "seed"),
    (dict(residuals=3), "residuals"), (dict(residuals="nope"), "nope"),
    (dict(interval=0.0), "interval"),
])
def test_bad_band_inputs_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        error_band(CONFIG, trace=_trace(), **kwargs)
    assert "\n" not in str(info.value)


def test_hardware_without_a_table_is_refused():
    with pytest.raises(ValueError, match="no residual table describes hardware='rtx3090'"):
        error_band(SimConfig.from_flags(model_name="gpt2", hardware="rtx3090"),
                   trace=_trace())


def test_band_table_and_summarize(band):
    point = float(band["ttft_mean_point"])
    table = band_table(band, {"ttft_mean": float(band["ttft_mean"].values[0]),
                              "tpot_mean": 1e3})
    assert table.loc["ttft_mean", "inside"] is True
    assert table.loc["tpot_mean", "inside"] is False
    assert table.loc["e2e_mean", "inside"] is None  # not measured
    assert table.loc["ttft_mean", "point"] == point
    summary = summarize(Simulator(CONFIG, _trace()).run(), band=band)
    assert summary.attrs["band_quantiles"] == (0.1, 0.5, 0.9)
    assert summary.attrs["band"]["ttft_mean"] == tuple(band["ttft_mean"].values)
    with pytest.raises(ValueError, match="error_band"):
        summarize(Simulator(CONFIG, _trace()).run(), band={"ttft_mean": 1.0})


# ------------------------------------------------------------------ CLI and plot
def test_cli_validate_band(tmp_path, capsys):
    ds = Simulator(SimConfig.from_flags(model_name="gpt2", hardware=HARDWARE)).run()
    write_outputs(ds, tmp_path / "sim")
    measured = str(tmp_path / "sim-requests.csv")
    code = main(["validate", "--measured", measured, "--model_name", "gpt2",
                 "--hardware", HARDWARE, "--band", "--band_runs", "3"])
    out = capsys.readouterr().out
    assert code == 0
    assert "error band (3 re-runs, residuals a100-vidur" in out and "inside" in out
    for bad, message in ((["--band_runs", "0"], "--band_runs must be >= 1"),
                         (["--band_seed", "2"], "only apply with --band"),
                         (["--residuals", "nope"], "nope")):
        extra = ["--band"] if bad[0] != "--band_seed" else []
        assert main(["validate", "--measured", measured, "--model_name", "gpt2",
                     "--hardware", HARDWARE, *extra, *bad]) == 2
        assert message in capsys.readouterr().err
    assert main(["validate", "--measured", measured, "--model_name", "gpt2",
                 "--hardware", "rtx3090", "--band"]) == 2
    assert "--residuals" in capsys.readouterr().err


def test_plot_throughput_draws_the_band(band):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmsim_nb.viz.throughput import plot_throughput

    ds = Simulator(CONFIG, _trace()).run()
    ax = plot_throughput(ds, band=band)
    assert len(ax.patches) == 4
    assert "generation p10-p90" in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ValueError, match="interval"):
        plot_throughput(ds, interval=1.0, band=band)
    plt.close("all")
