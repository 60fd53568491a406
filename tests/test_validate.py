"""Validation against measurements: request metrics, curves, the CLI, and Fig. 6."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llmsim_nb import SimConfig, Simulator, load_trace
from llmsim_nb.cli.main import main
from llmsim_nb.results.files import write_outputs
from llmsim_nb.fidelity.validate import (Curve, compare_curves, compare_requests, curves_side_by_side,
                                load_measured_requests, load_throughput_curve, request_metrics,
                                simulated_curve, simulated_requests)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FIG = DATA / "paper" / "fig_numbers" / "evaluation1"


@pytest.fixture(scope="module")
def run():
    return Simulator(SimConfig.from_flags(model_name="gpt2", hardware="rtx3090")).run()


def test_request_metrics_by_hand():
    frame = pd.DataFrame({"arrival": [0.0, 1.0], "first_token": [0.5, 1.2],
                          "finish": [2.5, 3.2], "num_output_tokens": [5, 3]})
    m = request_metrics(frame)
    assert m["ttft_mean"] == pytest.approx(0.35)
    assert m["tpot_mean"] == pytest.approx((2.0 / 4 + 2.0 / 2) / 2)
    assert m["e2e_p50"] == pytest.approx(2.35)
    assert m["duration"] == pytest.approx(3.2)
    assert m["output_throughput"] == pytest.approx(8 / 3.2)


def test_a_run_against_itself_has_no_error(run, tmp_path):
    write_outputs(run, tmp_path / "sim")
    measured = load_measured_requests(tmp_path / "sim-requests.csv")  # *_at aliases
    table = compare_requests(measured, run)
    assert np.allclose(table["error"].dropna(), 0.0)
    assert {"ttft_mean", "tpot_p90", "e2e_p99", "request_throughput"} <= set(table.index)
    curve = load_throughput_curve(tmp_path / "sim-throughput.tsv")  # interval ends -> starts
    assert curve.start[0] == 0.0
    errors = compare_curves(curve, simulated_curve(run))
    assert all(abs(v) < 1e-9 for v in errors.values())


def test_slower_simulation_shows_up_as_error(run):
    measured = simulated_requests(run)
    slower = measured.assign(finish=measured["arrival"] + 2 * (measured["finish"]
                                                               - measured["arrival"]))
    table = compare_requests(measured, slower)
    assert table.loc["e2e_mean", "error"] == pytest.approx(1.0)
    assert table.loc["ttft_mean", "error"] == pytest.approx(0.0)


def test_vllm_benchmark_json(tmp_path):
    data = {"ttfts": [0.1, 0.2], "itls": [[0.01, 0.02], [0.03]], "input_lens": [5, 6],
            "output_lens": [3, 2]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(data))
    frame = load_measured_requests(path, arrivals=[0.0, 1.0])
    assert frame["first_token"].tolist() == pytest.approx([0.1, 1.2])
    assert frame["finish"].tolist() == pytest.approx([0.13, 1.23])
    with pytest.raises(ValueError, match="arrival"):
        load_measured_requests(path)
    with pytest.raises(ValueError, match="2 requests"):
        load_measured_requests(path, arrivals=[0.0])


def test_bad_request_files(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"arrival": [1.0], "first_token": [0.5], "finish": [2.0]}).to_csv(path)
    with pytest.raises(ValueError, match="row 0"):
        load_measured_requests(path)
    pd.DataFrame({"arrival": [1.0], "finish": [2.0]}).to_csv(path)
    with pytest.raises(ValueError, match="first_token"):
        load_measured_requests(path)


def test_curves_align_and_pad():
    a = Curve(np.array([0.0, 0.5]), np.array([10.0, 20.0]), np.array([1.0, 1.0]))
    b = Curve(np.array([0.0, 0.5, 1.0]), np.array([10.0, 10.0, 10.0]), np.array([1.0, 1.0, 0.0]))
    e = compare_curves(a, b)
    assert e["prompt_mean_error"] == pytest.approx(10.0 / 15.0 - 1.0)
    assert e["prompt_interval_error"] == pytest.approx(20.0 / 30.0)
    assert e["duration_error"] == pytest.approx(0.5)
    assert len(curves_side_by_side(a, b)) == 3
    with pytest.raises(ValueError, match="interval"):
        compare_curves(a, Curve(b.start, b.prompt, b.generation, interval=1.0))


def test_cli_validate(tmp_path, capsys, run):
    write_outputs(run, tmp_path / "sim")
    code = main(["validate", "--measured", str(tmp_path / "sim-requests.csv"),
                 "--curve", str(tmp_path / "sim-throughput.tsv"),
                 "--model_name", "gpt2", "--hardware", "rtx3090"])
    out = capsys.readouterr().out
    assert code == 0
    assert "ttft_mean" in out and "generation_mean_error" in out
    assert main(["validate", "--model_name", "gpt2"]) == 2
    assert main(["validate", "--curve", str(tmp_path / "missing.csv")]) == 2


@pytest.mark.skipif(not FIG.is_dir(), reason="paper figure data absent")
@pytest.mark.parametrize("tag,model", [("gpt7b", "gpt3-6.7b"), ("llama7b", "llama-7b")])
def test_fig6_single_gpu_within_ten_percent(tag, model):
    """Fig. 6 on one RTX 3090 with vLLM's defaults of the time: both curve means < 10%."""
    trace = load_trace(DATA / "traces" / "share-gpt-req100-rate10.tsv")
    config = SimConfig.from_flags(model_name=model, hardware="rtx3090", scheduling="vllm",
                                  max_batch=256, max_num_batched_tokens=2048,
                                  gpu_memory_utilization=0.9)
    errors = compare_curves(load_throughput_curve(FIG / f"vllm-{tag}.csv"),
                            simulated_curve(Simulator(config, trace).run()))
    assert abs(errors["prompt_mean_error"]) < 0.10
    assert abs(errors["generation_mean_error"]) < 0.10
