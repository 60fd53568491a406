"""The power model: energy as the integral of power, idle, TDP, caps, PIM commands."""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmsim_nb.config import SimConfig
from llmsim_nb.engines.hardware import get_hardware, make_engine
from llmsim_nb.engines.pim import PIMEngine, get_pim
from llmsim_nb.instance.simulator import Simulator
from llmsim_nb.models.ops import Op, OpKind
from llmsim_nb.power import (ClockedEngine, PIMCommands, attention_commands, clock_fraction,
                             command_energy, gemv_commands, host_power, power_of)
from llmsim_nb.results.metrics import summarize
from llmsim_nb.workload.trace import Trace

TRACE = Trace(np.array([0.0, 0.0, 0.01, 30.0]), np.array([128, 256, 64, 32]),
              np.array([16, 8, 4, 4]))


def run(hardware="h100-sxm", model="llama-7b", trace=TRACE, **flags):
    config = SimConfig.from_flags(model_name=model, hardware=hardware, **flags)
    return Simulator(config, trace).run()


@pytest.fixture(scope="module")
def gpu_run():
    return run(power="on", device_price_per_hour=10.0, carbon_g_per_kwh=400.0)


def test_energy_is_the_integral_of_power_over_the_run(gpu_run):
    ds = gpu_run
    latency = ds["latency"].values
    np.testing.assert_allclose(ds["device_power"].values * latency[:, None],
                               ds["device_energy"].values, rtol=1e-12)
    per_iteration = (ds["device_power"].values.sum(axis=1) * latency
                     + ds["link_energy"].values + ds["host_energy"].values)
    np.testing.assert_allclose(per_iteration, ds["iteration_energy"].values, rtol=1e-12)
    s = summarize(ds)
    gaps = s["simulated_time"] - latency.sum()
    assert gaps > 29  # the last request arrives 30 s in: the run idles until then
    integral = per_iteration.sum() + ds.attrs["power_idle_w"] * gaps
    assert s["energy"] == pytest.approx(integral, rel=1e-12)
    assert s["average_power"] == pytest.approx(integral / s["simulated_time"], rel=1e-12)
    outputs = ds["num_generated_tokens"].values.sum()
    assert s["energy_per_output_token"] == pytest.approx(integral / outputs, rel=1e-12)
    assert s["tokens_per_joule"] * s["energy_per_output_token"] == pytest.approx(1.0)
    assert s["cost"] == pytest.approx(10.0 * s["simulated_time"] / 3600)
    assert s["carbon_per_output_token"] == pytest.approx(integral / 3.6e6 * 400 / outputs)
    # Each iteration's energy is shared out to its requests, all of it.
    assert ds["request_energy"].values.sum() == pytest.approx(per_iteration.sum(), rel=1e-12)


def test_idle_time_costs_idle_power_times_time(gpu_run):
    gpu, host = power_of("h100-sxm"), host_power()
    assert gpu_run.attrs["power_idle_w"] == gpu.idle_w + host.host_cpu_w == 75 + 87.5
    # A run of one late request: everything before it is idle.
    late = Trace(np.array([100.0]), np.array([16]), np.array([1]))
    ds = run(trace=late, power="on")
    s = summarize(ds)
    busy = ds["iteration_energy"].values.sum()
    assert s["energy"] - busy == pytest.approx(162.5 * (s["simulated_time"]
                                                        - ds["latency"].values.sum()))
    assert s["simulated_time"] > 100


def test_full_utilisation_of_a_compute_bound_op_draws_tdp_not_more(gpu_run):
    sim = Simulator(SimConfig.from_flags(model_name="llama-7b", hardware="h100-sxm",
                                         power="on"), TRACE)
    meter = sim._recorder.meter
    gpu = power_of("h100-sxm")
    peak, bandwidth = np.array([1e15]), 3e12
    t = np.array([1e-3])
    at_roof = meter.gpu_op_power(peak * t, np.array([0.0]), t, peak, bandwidth)
    assert gpu.idle_w + at_roof[0] == gpu.tdp_w
    both = meter.gpu_op_power(peak * t, bandwidth * t, t, peak, bandwidth)
    over = meter.gpu_op_power(3 * peak * t, bandwidth * t, t, peak, bandwidth)
    assert gpu.idle_w + both[0] == gpu.idle_w + over[0] == gpu.tdp_w
    memory = meter.gpu_op_power(np.array([0.0]), bandwidth * t, t, peak, bandwidth)
    assert memory[0] == (gpu.tdp_w - gpu.idle_w) * gpu.memory_weight
    # In a run no device ever averages more than its TDP.
    assert gpu_run["device_power"].values.max() <= gpu.tdp_w


def test_a_cap_below_tdp_lowers_throughput_monotonically():
    gpu = power_of("h100-sxm")
    caps = [None, 700.0, 600.0, 450.0, 300.0, 150.0]
    clocks = [clock_fraction(gpu, c) for c in caps]
    assert clocks[:2] == [1.0, 1.0] and all(a > b for a, b in zip(clocks[1:], clocks[2:]))
    assert gpu.idle_w + (gpu.tdp_w - gpu.idle_w) * clocks[3] ** 3 == pytest.approx(450.0)
    trace = Trace(np.zeros(8), np.full(8, 512), np.full(8, 8))
    busy = [float(run(trace=trace, power_cap_w=c)["compute_latency"].values.sum())
            for c in caps]
    assert busy[0] == busy[1] and all(a < b for a, b in zip(busy[1:], busy[2:]))


def test_memory_bound_ops_slow_less_under_a_cap():
    engine = make_engine("h100-sxm")
    capped = ClockedEngine(engine, 0.5)
    spec = get_hardware("h100-sxm").spec
    dt = spec.dtype_bytes

    def gemm(m):
        k = n = 4096
        return Op("ffn", OpKind.GEMM, np.array([m]), np.array([n]), np.array([k]), 1,
                  np.array([2.0 * m * k * n]), np.array([(m * k + k * n) * dt]),
                  np.array([m * n * dt]), weight_bytes=k * n * dt)
    slow = [capped.time_op(gemm(m)).total / engine.time_op(gemm(m)).total for m in (1, 8192)]
    assert slow[0] == pytest.approx(1.0)   # decode GEMV: DRAM-bound, no slower
    assert slow[1] > 1.8                   # large GEMM: compute-bound, ~1 / 0.5


def test_pim_energy_is_the_sum_of_its_command_energies_for_one_gemv():
    spec, power = get_pim("neupims-hbm2"), power_of("neupims-hbm2")
    # One GEMV, 4096 x 4096, fp16, 32 channels x 32 banks, 1 KiB rows (512 elements),
    # 16 MACs per bank: per channel ceil(ceil(4096/32)/32) = 4 tiles of output
    # columns, 4096 / 512 = 8 row chunks: 8 x 4 = 32 ACT / PRE / READRES, 8 x 4 x 32
    # = 1024 COMP, 8 GWRITE of 1 KiB.
    c = gemv_commands(spec, 1, 4096, 4096)
    assert c == PIMCommands(act=32 * 32, pre=32 * 32, comp=32 * 1024, readres=32 * 32,
                            gwrite=32 * 8, gwrite_bytes=32 * 8192)
    # The engine's COMP time of the same GEMV is those COMPs x tCCD, per channel.
    assert PIMEngine(spec).gemv_cycles(1, 4096, 4096)[1] == 1024 * spec.t_ccd
    per_bank = (1024 * 909e-12 + 0.0                       # ACT, PRE (PRE's is in ACT's)
                + 32768 * 16 * (16 * 1.51e-12 + 1.5e-12)    # COMP: 16 x 2 B column + MAC
                + 1024 * 16 * 1.97e-12)                     # READRES: one fp16 result
    expected = 32 * per_bank + 262144 * 8 * 1.97e-12        # 32 banks; GWRITE bytes
    assert command_energy(c, spec, power) == pytest.approx(expected, rel=1e-12)


def test_attention_commands_match_the_engines_comp_time():
    spec = get_pim("neupims-hbm2")
    q, kv = np.array([1, 1]), np.array([300, 2048])
    score, context = attention_commands(spec, q, kv, 32, 32, 128)
    cycles = PIMEngine(spec).attention_cycles(q, kv, 32, 32, 128)
    assert score.comp * spec.t_ccd == cycles[1].sum()
    assert context.comp * spec.t_ccd == cycles[3].sum()


def test_power_on_changes_no_simulated_variable(gpu_run):
    off = run()
    for name, var in off.data_vars.items():
        if name != "wall_time":
            np.testing.assert_array_equal(var.values, gpu_run[name].values, err_msg=name)
    assert "device_energy" not in off and math.isnan(summarize(off)["energy"])


def test_npu_with_pim_meters_pim_commands():
    trace = Trace(np.zeros(4), np.full(4, 64), np.full(4, 8))
    npu = run("npu-128x128", "gpt3-6.7b", trace, power="on")
    pim = run("npu-128x128", "gpt3-6.7b", trace, power="on", pim_type="local")
    for ds in (npu, pim):
        assert (ds["device_energy"].values > 0).all()
    assert summarize(pim)["energy"] != summarize(npu)["energy"]


@pytest.mark.parametrize("flags, message", [
    ({"power_cap_w": 0.0}, r"^power_cap_w=0.0 is out of range"),
    ({"power_cap_w": 50.0}, r"^power_cap_w=50 W is at or below h100's idle power"),
    ({"power_cap_w": 76.0}, r"^power_cap_w=76 W needs h100 below its lowest clock"),
    ({"power": "maybe"}, r"^power='maybe' is not one of \['on', 'off'\]"),
    ({"carbon_g_per_kwh": 400.0}, r"^carbon_g_per_kwh=400.0 prices the power model's"),
    ({"device_price_per_hour": 2.0}, r"^device_price_per_hour=2.0 prices the power"),
    ({"device_price_per_hour": -1.0, "power": "on"}, r"^device_price_per_hour=-1.0 is out"),
    ({"power_cap_w": 300.0, "hardware": "npu-128x128"}, r"^power_cap_w=300 caps a GPU's"),
    ({"power": "on", "hardware": "b200"}, r"^power: hardware='b200' has no power preset"),
])
def test_bad_power_flags_are_refused_in_one_line(flags, message):
    flags = {"model_name": "llama-7b", "hardware": "h100-sxm", **flags}
    with pytest.raises(ValueError, match=message) as info:
        Simulator(SimConfig.from_flags(**flags), TRACE)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("window", [0, 100])
def test_attention_work_in_closed_form_equals_the_built_ops(window):
    import dataclasses

    from llmsim_nb.models.catalog import get_model
    from llmsim_nb.models.decoder import decoder_template
    from llmsim_nb.models.ops import BatchShape
    from llmsim_nb.power.work import attention_work

    template = decoder_template(get_model("llama-7b"))
    batch = BatchShape.from_lists([1, 1, 300], [500, 20, 0])
    for t in template.block:
        if t.kind.is_attention:
            t = dataclasses.replace(t, window=window)
            op = t.instantiate(batch, 2)
            f, b = attention_work(t, batch, 2.0)
            assert f == pytest.approx(op.total_flops, rel=1e-12)
            assert b == pytest.approx(op.total_bytes, rel=1e-12)


def test_plot_power_draws_one_step_line_per_device(gpu_run):
    pytest.importorskip("matplotlib")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmsim_nb.viz import plot_power, power_over_time
    t, watts = power_over_time(gpu_run)
    assert len(t) == 2 * gpu_run.sizes["iteration"] and watts.shape[1] == 1
    ax = plot_power(gpu_run)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), watts[:, 0])
    plt.close(ax.figure)


def test_the_cli_summary_prints_energy_and_cost(capsys, tmp_path, monkeypatch):
    from llmsim_nb.cli.main import main

    monkeypatch.chdir(tmp_path)
    main(["run", "--model_name", "llama-7b", "--hardware", "h100-sxm", "--power", "on",
          "--num_requests", "5"])
    out = capsys.readouterr().out
    assert "J/token, average" in out and "per M output tokens" in out


@pytest.mark.parametrize("flags", [dict(hardware="h100-sxm", model_name="gpt2"),
                                   dict(hardware="npu-128x128", model_name="gpt2", npu_num=2,
                                        npu_group=2)])
def test_bulk_work_statistics_equal_the_per_iteration_ones(flags):
    """The recorder counts every iteration's work at the end, in whole-array
    operations (micro-batched stacks batch by batch): the same numbers."""
    from llmsim_nb.workload.generators import default_trace
    sim = Simulator(SimConfig.from_flags(**flags, power=True), default_trace())
    sim.advance()
    counter, batches = sim._recorder._counter, sim._recorder._work_batches
    assert len(batches) == sim.num_iterations > 0
    assert np.array_equal(counter.bulk_stats(batches),
                          np.array([counter.stats(b) for b in batches]))


def test_padded_rows_of_a_cuda_graph_step_are_metered_as_computed():
    """A decode step padded to a CUDA-graph size computes the padded rows: its
    average power is that of the padded batch's work, not of the three rows
    scheduled (which would leave a 512-row step near idle power)."""
    from llmsim_nb.engines.serving_stack import ServingStack, register_serving_stack
    trace = Trace([0.0, 0.0, 0.0], [64, 64, 64], [6, 6, 6], source="three")
    watts = {}
    for sizes in ((1, 2, 4), (512,)):
        name = f"test-graphs-{sizes[-1]}"
        register_serving_stack(ServingStack(name, cuda_graph_sizes=sizes), replace=True)
        ds = Simulator(SimConfig.from_flags(model_name="llama-7b", hardware="a100-80gb",
                                            serving_stack=name, power=True), trace).run()
        last = ds.isel(iteration=-1)
        assert int(last.num_decode_tokens) == 3
        watts[sizes[-1]] = float(last.device_power.sum())
    assert watts[512] > watts[4]


def test_a_power_presets_negative_price_is_refused_by_name():
    from llmsim_nb.power.presets import GPUPower, NPUPower
    with pytest.raises(ValueError, match=r"'npu-x': price_per_hour=-1.0 must be"):
        NPUPower("npu-x", 1e-12, 1e-12, 1e-12, 10.0, price_per_hour=-1.0)
    with pytest.raises(ValueError, match=r"'gpu-x': price_per_hour=inf must be"):
        GPUPower("gpu-x", 700.0, 100.0, 0.5, 0.3, price_per_hour=math.inf)
    assert math.isnan(NPUPower("npu-x", 1e-12, 1e-12, 1e-12, 10.0).price_per_hour)
