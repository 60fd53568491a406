"""The serving stack: host time, launches, CUDA-graph padding, overlap, per-request costs."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.cli.list import serving_stack_lines
from llmsim_nb.engines.serving_stack import (ServingStack, get_serving_stack,
                                             list_serving_stacks, num_kernels,
                                             register_serving_stack)
from llmsim_nb.fidelity.calibration import calibrate
from llmsim_nb.models.ops import BatchShape
from llmsim_nb.system import build_instance
from llmsim_nb.workload.trace import Trace

GRAPHS = ServingStack("test-graphs", step_latency=1e-3, request_latency=1e-5,
                      token_latency=1e-6, launch_latency=5e-6, cuda_graph_sizes=(1, 2, 4, 8))


def _decode(n: int, context: int = 100) -> BatchShape:
    ids = np.arange(n, dtype=np.int64)
    return BatchShape(ids, np.ones(n, np.int64), np.full(n, context, np.int64),
                      np.ones(n, np.int64))


def _mixed() -> BatchShape:
    return BatchShape(np.arange(2, dtype=np.int64), np.array([1, 50]), np.array([100, 0]),
                      np.array([1, 1]))


def test_presets_load_with_sources():
    assert {"none", "vllm-v1", "vllm-v0", "sglang", "trtllm"} <= set(list_serving_stacks())
    for name in ("vllm-v1", "vllm-v0", "sglang", "trtllm"):
        stack = get_serving_stack(name)
        assert stack.source and not stack.is_none
    assert get_serving_stack("none").is_none
    assert get_serving_stack("vllm-v1").overlap and not get_serving_stack("vllm-v0").overlap
    lines = serving_stack_lines()
    assert len(lines) == len(list_serving_stacks()) and lines[0].startswith("none")


def test_decode_of_three_is_timed_as_four():
    assert GRAPHS.graph_size(_decode(3)) == 4
    padded = GRAPHS.device_batch(_decode(3))
    assert padded.request_ids.tolist() == [0, 1, 2, -1]
    assert padded.num_query_tokens.tolist() == [1, 1, 1, 1]
    assert padded.num_context_tokens.tolist() == [100, 100, 100, 0]
    assert padded.num_logit_tokens.tolist() == [1, 1, 1, 0]
    eight = _decode(8)
    assert GRAPHS.graph_size(eight) == 8 and GRAPHS.device_batch(eight) is eight  # no padding
    assert GRAPHS.graph_size(_decode(9)) is None  # larger than any graph: eager
    assert GRAPHS.graph_size(_mixed()) is None    # a prefill in the step: eager
    # The padding costs compute: the device times the padded batch.
    stack = build_instance(SimConfig.from_flags(model_name="gpt2", hardware="a100-80gb",
                                                reuse=False)).stack
    four = BatchShape(np.array([0, 1, 2, -1]), np.ones(4, np.int64),
                      np.array([100, 100, 100, 0]), np.array([1, 1, 1, 0]))
    timed = stack.simulate(GRAPHS.device_batch(_decode(3))).compute_latency
    assert timed == stack.simulate(four).compute_latency
    assert timed >= stack.simulate(_decode(3)).compute_latency


def test_host_time_launches_and_overlap():
    assert GRAPHS.host_latency(3, 10) == pytest.approx(1e-3 + 3e-5 + 1e-5, rel=1e-12)
    decode = _decode(3)  # graphed: no launch term
    host = 1e-3 + 3e-5 + 3e-6
    assert GRAPHS.iteration_latency(2e-3, decode, 1000) == pytest.approx(host + 2e-3)
    overlapped = ServingStack("o", step_latency=1e-3, request_latency=1e-5,
                              token_latency=1e-6, cuda_graph_sizes=(4,), overlap=True)
    assert overlapped.iteration_latency(2e-3, decode, 0) == 2e-3          # device-bound
    assert overlapped.iteration_latency(0.5e-3, decode, 0) == pytest.approx(host)
    # Eager (mixed) step of 1000 kernels at 5 us: the device waits for the launches.
    mixed_host = 1e-3 + 2e-5 + 51e-6
    assert GRAPHS.iteration_latency(2e-3, _mixed(), 1000) == pytest.approx(mixed_host + 5e-3)
    assert GRAPHS.iteration_latency(9e-3, _mixed(), 1000) == pytest.approx(mixed_host + 9e-3)
    assert get_serving_stack("none").iteration_latency(2e-3, _mixed(), 1000) == 2e-3


def test_num_kernels_counts_fused_attention_once():
    parts = build_instance(SimConfig.from_flags(model_name="gpt2", hardware="a100-80gb"))
    t = parts.stack.sharded
    attention = sum(op.kind.is_attention for op in t.block)
    expected = len(t.embedding) + len(t.head) + t.num_layers * (len(t.block) - attention + 1)
    assert num_kernels(t) == expected


def _one_request(stack: str) -> "xr.Dataset":  # noqa: F821
    trace = Trace([0.0], [64], [5], source="one")
    return Simulator(SimConfig.from_flags(model_name="gpt2", hardware="a100-80gb",
                                          serving_stack=stack), trace).run()


def test_per_request_overheads_shift_ttft_and_e2e_exactly():
    register_serving_stack(ServingStack("test-requests", arrival_latency=0.1,
                                        completion_latency=0.2), replace=True)
    base, shifted = _one_request("none"), _one_request("test-requests")
    assert shifted.attrs["serving_stack"] == "test-requests"
    d_ttft = float(shifted.ttft[0] - base.ttft[0])
    d_e2e = float(shifted.e2e_latency[0] - base.e2e_latency[0])
    assert d_ttft == pytest.approx(0.1, abs=1e-12)
    assert d_e2e == pytest.approx(0.3, abs=1e-12)


def test_auto_is_vllm_v1_on_gpus_and_none_on_npus():
    gpu = build_instance(SimConfig.from_flags(model_name="gpt2", hardware="a100-80gb"))
    npu = build_instance(SimConfig.from_flags(model_name="gpt2"))
    assert gpu.serving_stack.name == "vllm-v1" and npu.serving_stack.name == "none"
    trace = Trace([0.0, 0.01], [32, 40], [3, 4], source="two")
    auto = Simulator(SimConfig.from_flags(model_name="gpt2"), trace).run()
    none = Simulator(SimConfig.from_flags(model_name="gpt2", serving_stack="none"), trace).run()
    for name in ("t_end", "first_token_at", "finished_at"):
        assert np.array_equal(auto[name].values, none[name].values)


def test_bad_values_get_one_line_errors():
    with pytest.raises(ValueError, match=r"^serving_stack='vlm' is not one of .*vllm-v1"):
        build_instance(SimConfig.from_flags(model_name="gpt2", serving_stack="vlm"))
    with pytest.raises(ValueError, match=r"^serving_stack=3 must be a serving stack name"):
        SimConfig.from_flags(serving_stack=3)
    with pytest.raises(ValueError, match=r"step_latency=-1.0 must be a number of seconds"):
        ServingStack("x", step_latency=-1.0)
    with pytest.raises(ValueError, match=r"cuda_graph_sizes=\[4, 2\] must increase"):
        ServingStack("x", cuda_graph_sizes=(4, 2))
    with pytest.raises(ValueError, match="overlap"):
        ServingStack("x", overlap="yes")
    with pytest.raises(ValueError, match="registered already"):
        register_serving_stack(ServingStack("vllm-v1"))


def test_calibrate_recovers_host_terms_per_iteration():
    rng = np.random.default_rng(0)
    requests = rng.integers(1, 64, 200).astype(float)
    tokens = requests + rng.integers(0, 512, 200)
    device = rng.uniform(5e-3, 30e-3, 200)
    true = ServingStack("t", step_latency=2e-3, request_latency=20e-6, token_latency=1e-6)
    measured = true.step_latency + true.request_latency * requests \
        + true.token_latency * tokens + device
    fit = calibrate(ServingStack("start"), measured,
                    {"device_latency": device, "num_requests": requests, "num_tokens": tokens})
    assert fit.params["step_latency"] == pytest.approx(2e-3, rel=1e-3)
    assert fit.params["request_latency"] == pytest.approx(20e-6, rel=1e-2)
    assert fit.params["token_latency"] == pytest.approx(1e-6, rel=1e-2)
    assert fit.median_ape < 1e-6


def test_calibrate_per_request_offsets():
    sim_ttft, sim_e2e = np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])
    fit = calibrate(ServingStack("start"), None, {
        "measured_ttft": sim_ttft + 0.004, "simulated_ttft": sim_ttft,
        "measured_e2e": sim_e2e + 0.006, "simulated_e2e": sim_e2e})
    assert fit.params["arrival_latency"] == pytest.approx(0.004)
    assert fit.params["completion_latency"] == pytest.approx(0.002)
    assert np.allclose(fit.log_residuals, 0.0)


def test_validate_the_vllm_rtx4090_run(shared_data, capsys):
    """vLLM 0.19 on an RTX 4090 (../shared/data/serving): the recorded settings are read
    and the comparison runs; the errors are reported, not asserted to a figure the
    model does not reach yet (see docs/serving-stack.md for the measured errors)."""
    from llmsim_nb.cli.main import main
    from llmsim_nb.fidelity.vllm_run import load_vllm_run

    directory = shared_data / "serving" / "vllm019_rtx4090_llama31_8b"
    if not directory.is_dir():
        pytest.skip("the vLLM RTX 4090 run is absent")
    run = load_vllm_run(directory)
    assert run.flags["hardware"] == "rtx4090" and run.flags["num_kv_blocks"] == 2588
    assert run.flags["serving_stack"] == "vllm-v1" and run.flags["max_batch"] == 256
    assert len(run.trace) == 300 and run.measured["arrival"].min() == 0.0
    assert main(["validate", "--vllm_run", str(directory)]) == 0
    out = capsys.readouterr().out
    assert "serving_stack=vllm-v1" in out and "ttft_mean" in out and "tpot_mean" in out


def test_bad_vllm_run_directories(tmp_path):
    from llmsim_nb.fidelity.vllm_run import load_vllm_run

    with pytest.raises(ValueError, match=r"has no requests.csv$"):
        load_vllm_run(tmp_path)
    (tmp_path / "requests.csv").write_text(
        "input_toks,output_toks,queued_ts,first_token_ts,last_token_ts\n10,5,1.0,1.5,2.0\n")
    (tmp_path / "meta.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"meta.json: not valid JSON"):
        load_vllm_run(tmp_path)
    (tmp_path / "meta.json").write_text(
        '{"vllm_version": "0.19.0", "engine_kwargs": {"model": "gpt2"}, '
        '"hardware": {"device_name": "Some GPU"}}')
    with pytest.raises(ValueError, match=r"device 'Some GPU' has no hardware preset"):
        load_vllm_run(tmp_path)
    (tmp_path / "meta.json").write_text(
        '{"vllm_version": "0.19.0", "engine_kwargs": {"model": "gpt2"}, '
        '"hardware": {"device_name": "NVIDIA GeForce RTX 4090"}}')
    run = load_vllm_run(tmp_path)
    assert run.flags == {"model_name": "gpt2", "hardware": "rtx4090", "scheduling": "vllm-v1",
                         "serving_stack": "vllm-v1"}
    assert run.measured["first_token"].tolist() == [0.5] and run.measured["finish"].tolist() == [1.0]
    (tmp_path / "requests.csv").write_text(
        "input_toks,output_toks,queued_ts,first_token_ts,last_token_ts\n10,5,1.0,0.5,2.0\n")
    with pytest.raises(ValueError, match=r"needs queued_ts <= first_token_ts <= last_token_ts"):
        load_vllm_run(tmp_path)
