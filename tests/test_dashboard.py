"""The dashboard's logic without a browser: call the handlers, check state and figures."""

import dataclasses

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("ipywidgets")

from llmsim_nb import SimConfig, Simulator  # noqa: E402
from llmsim_nb.config import SchedulerConfig, SystemConfig  # noqa: E402
from llmsim_nb.models.catalog import list_models  # noqa: E402
from llmsim_nb.viz.controls import (WORKLOAD_FLAGS, WorkloadConfig,  # noqa: E402
                                    control_spec, control_specs, dashboard_flags)
from llmsim_nb.viz.dashboard import Dashboard  # noqa: E402
from llmsim_nb.workload import sharegpt_like, synthetic_trace  # noqa: E402

SMALL = dict(flags={"model_name": "gpt2"}, workload={"num_requests": 6, "arrival_rate": 50.0})


@pytest.fixture
def dash():
    return Dashboard(**SMALL)


def _field(cls, name):
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def test_controls_come_from_the_config_metadata():
    specs = {s.flag: s for s in control_specs()}
    assert list(specs) == list(dashboard_flags() + WORKLOAD_FLAGS)
    block = _field(SchedulerConfig, "block_size")
    assert specs["block_size"].help == block.metadata["help"]
    assert specs["block_size"].kind == "int" and specs["block_size"].default == block.default
    assert specs["block_size"].label == "block_size [token]"
    assert specs["parallel"].options == ("tensor", "pipeline", "hybrid")
    assert specs["pim_type"].help == _field(SystemConfig, "pim_type").metadata["help"]
    assert specs["model_name"].options == tuple(list_models())
    assert specs["sub_batch"].kind == "bool" and specs["npu_mem"].kind == "optional_float"
    assert specs["arrival_rate"].units == "req/s" and specs["arrival_rate"].kind == "float"
    with pytest.raises(ValueError, match="not a config flag"):
        control_spec("no_such_flag")


def test_widgets_show_the_specs(dash):
    for spec in control_specs():
        widget = dash.controls[spec.flag]
        assert widget.description == spec.label
        assert widget.tooltip == spec.help
    assert dash.controls["model_name"].value == "gpt2"
    assert dash.controls["npu_mem"].value == "14"  # PRESSURE_DEFAULTS: a small KV cache
    blank = Dashboard(flags={"model_name": "gpt2", "npu_mem": None}, workload=SMALL["workload"])
    assert blank.controls["npu_mem"].value == ""  # blank: the preset's memory
    assert blank.sim.engine.spec.memory_bytes == 24 * 2 ** 30


def test_step_advances_the_counter_and_redraws_the_plots(dash):
    assert dash.iteration == 0 and dash.error is None
    before_counter = dash.counter.value
    before = {name: image.value for name, image in dash.images.items()}
    assert all(before.values())  # every plot rendered (empty) at iteration 0
    dash.buttons["step"].click()
    assert dash.iteration == 1 and "iteration 1 " in dash.counter.value
    assert dash.counter.value != before_counter
    changed = [name for name, image in dash.images.items() if image.value != before[name]]
    assert {"throughput", "batch", "block_table", "gantt"} <= set(changed)
    # The figures show the simulator's state: the batch of iteration 0 is request 0's prefill.
    batch_ax = dash.figures["batch"].axes[0]
    prefill = batch_ax.patches[0].get_data().values
    np.testing.assert_array_equal(prefill, dash.results.num_prefill_tokens.values)
    assert prefill[0] == dash.sim.trace.num_prompt_tokens[0]
    assert int(dash.last_step.iteration[0]) == 0


def test_run_n_and_reset(dash):
    dash.n_steps.value = 4
    dash.buttons["run_n"].click()
    assert dash.iteration == 4 and int(dash.last_step.iteration[0]) == 3
    dash.run_n(3)
    assert dash.iteration == 7 and dash.results.sizes["iteration"] == 7
    dash.buttons["reset"].click()
    assert dash.iteration == 0 and dash.last_step is None and "iteration 0 " in dash.counter.value
    dash.run_n(0)
    assert "N must be an integer >= 1" in dash.error and dash.iteration == 0


def test_run_to_end_finishes_every_request_and_then_stays(dash):
    dash.buttons["run_to_end"].click()
    assert dash.sim.is_finished
    assert np.isfinite(dash.results.finished_at.values).all()
    assert "All 6 requests have finished" in dash.message.value
    done = dash.iteration
    dash.step()  # nothing left: no exception, nothing changes
    assert dash.iteration == done and dash.error is None
    # The same knobs give the same result as the Simulator alone.
    config = SimConfig.from_flags(model_name="gpt2", npu_mem=14.0)
    trace = synthetic_trace(np.random.default_rng(config.seed), 6, 50.0, *sharegpt_like())
    alone = Simulator(config, trace).run()
    np.testing.assert_array_equal(alone.t_end.values, dash.results.t_end.values)


def test_invalid_combination_shows_the_config_error_not_a_traceback(dash):
    with pytest.raises(ValueError) as expected:
        SimConfig.from_flags(model_name="gpt2", npu_num=1, npu_group=3)
    dash.controls["npu_group"].value = 3
    assert dash.sim is None and dash.error == str(expected.value)
    assert "npu_group=3 must divide npu_num=1" in dash.message.value
    assert "Traceback" not in dash.message.value
    for press in ("step", "run_n", "run_to_end", "reset"):
        dash.buttons[press].click()  # none of them raises
    assert dash.iteration == 0 and "no simulator" in dash.counter.value
    dash.controls["npu_num"].value = 3  # now 3 pipeline groups of 1 NPU: valid
    assert dash.error is None and dash.sim.layout.pp == 3 and dash.message.value == ""
    dash.step()
    assert dash.iteration == 1


def test_simulator_errors_are_shown_too(dash):
    with pytest.raises(ValueError) as expected:
        Simulator(SimConfig.from_flags(model_name="gpt3-175b", npu_mem=14.0))
    dash.controls["model_name"].value = "gpt3-175b"  # 325 GiB of weights on one 14 GiB NPU
    assert dash.sim is None and dash.error == str(expected.value)
    assert "does not fit" in dash.message.value
    dash.controls["npu_mem"].value = "abc"
    assert "npu_mem='abc' is not a number" in dash.error
    dash.controls["npu_mem"].value = "400"
    assert dash.error is None and dash.sim.engine.spec.memory_bytes == 400 * 2 ** 30


def test_workload_controls_make_the_trace():
    dash = Dashboard(flags={"model_name": "gpt2"},
                     workload={"trace": "alpaca-like", "num_requests": 9, "arrival_rate": 3.0})
    assert len(dash.sim.trace) == 9
    expected = WorkloadConfig("alpaca-like", num_requests=9, arrival_rate=3.0).make_trace(0)
    np.testing.assert_array_equal(dash.sim.trace.arrival_at, expected.arrival_at)
    dash.controls["arrival_rate"].value = -1.0
    assert "arrival_rate must be a finite number > 0" in dash.error
    with pytest.raises(ValueError, match="not a dashboard control"):
        Dashboard(flags={"bogus": 1})
    with pytest.raises(ValueError, match="unknown plot"):
        Dashboard(plots=("throughput", "pie"))


def test_the_vllm_v1_controls():
    from llmsim_nb.config import MemoryConfig
    from llmsim_nb.viz.controls import SWITCH_OPTIONS

    specs = {s.flag: s for s in control_specs()}
    assert "vllm-v1" in specs["scheduling"].options
    caching = specs["enable_prefix_caching"]
    assert caching.kind == "switch" and caching.options == SWITCH_OPTIONS == ("auto", "on", "off")
    assert caching.default is None
    assert caching.help == _field(SchedulerConfig, "enable_prefix_caching").metadata["help"]
    offload = specs["kv_offload_gib"]
    assert offload.kind == "float" and offload.units == "GiB" and offload.default == 0.0
    assert offload.help == _field(MemoryConfig, "kv_offload_gib").metadata["help"]
    assert offload.label == "kv_offload_gib [GiB]"


def test_vllm_v1_prefix_caching_and_the_host_tier_from_the_widgets(dash):
    caching, offload = dash.controls["enable_prefix_caching"], dash.controls["kv_offload_gib"]
    assert caching.value == "auto" and list(caching.options) == ["auto", "on", "off"]
    assert offload.value == 0.0
    dash.controls["scheduling"].value = "vllm-v1"
    assert dash.error is None and dash.sim.config.scheduler.policy == "vllm-v1"
    assert dash.values()["enable_prefix_caching"] is None          # auto: the policy's (on)
    assert dash.sim.config.scheduler.prefix_caching is True
    caching.value = "off"
    assert dash.error is None and dash.sim.config.scheduler.enable_prefix_caching is False
    # The host tier needs prefix caching: the config's own one-line message.
    offload.value = 0.5
    assert dash.sim is None and dash.error.startswith("kv_offload_gib=0.5 needs scheduling=")
    caching.value = "on"
    assert dash.error is None and dash.sim.config.memory.kv_offload_gib == 0.5
    dash.run_to_end()
    assert dash.sim.is_finished and "num_host_cached_tokens" in dash.results
    # A bad value is refused by the config's range check, never clamped.
    offload.value = -1.0
    assert dash.sim is None and dash.error.startswith("kv_offload_gib=-1.0 is out of range")
    assert "\n" not in dash.error
    offload.value = 0.0
    caching.value = "auto"
    dash.controls["scheduling"].value = "orca"
    assert dash.error is None
    caching.value = "on"   # orca has no prefix cache
    assert dash.sim is None and "enable_prefix_caching=True needs scheduling='vllm-v1'" \
        in dash.error


def test_initial_values_are_checked_in_one_line_never_coerced():
    dash = Dashboard(flags={"model_name": "gpt2", "scheduling": "vllm-v1",
                            "enable_prefix_caching": False, "kv_offload_gib": 0},
                     workload=SMALL["workload"])
    assert dash.controls["enable_prefix_caching"].value == "off"
    assert dash.sim.config.scheduler.enable_prefix_caching is False
    for flags, message in [
            ({"enable_prefix_caching": "maybe"},
             "enable_prefix_caching='maybe' is not one of ['auto', 'on', 'off'] "
             "(or True, False, None)"),
            ({"block_size": 4.5}, "block_size=4.5 must be an integer (never truncated)"),
            ({"scheduling": "vllm-v2"}, "scheduling='vllm-v2' is not one of "),
            ({"kv_offload_gib": "1"}, "kv_offload_gib='1' must be a number"),
            ({"sub_batch": 1}, "sub_batch=1 must be True or False")]:
        with pytest.raises(ValueError) as err:
            Dashboard(flags={"model_name": "gpt2", **flags})
        assert str(err.value).startswith(message) and "\n" not in str(err.value), flags


def test_switch_values_round_trip():
    from llmsim_nb.viz.controls import parse_switch, switch_text

    for value, text in ((None, "auto"), (True, "on"), (False, "off"), ("on", "on"),
                        ("off", "off")):
        assert switch_text("enable_prefix_caching", value) == text
    assert [parse_switch("f", t) for t in ("auto", "on", "off")] == [None, True, False]
    for bad in ("On", "", 1, None):
        with pytest.raises(ValueError, match=r"^f=.* is not one of \['auto', 'on', 'off'\]$"):
            parse_switch("f", bad)
    with pytest.raises(ValueError, match=r"^f=1 is not one of"):
        switch_text("f", 1)
