"""The dashboard's metrics table, progress bar, Gantt choice, default workload and the
token budget / trace controls, driven without a browser."""

import math
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("ipywidgets")

from llmsim_nb import load_trace, summarize  # noqa: E402
from llmsim_nb.viz import controls  # noqa: E402
from llmsim_nb.viz.dashboard import PRESSURE_DEFAULTS, Dashboard  # noqa: E402
from llmsim_nb.viz.metrics_table import (METRICS, MISSING, Metric, format_metric,  # noqa: E402
                                         metric_rows, metrics_html)

SMALL = dict(flags={"model_name": "gpt2"}, workload={"num_requests": 6, "arrival_rate": 50.0})
_CELL = re.compile(r'data-key="(\w+)".*?class="llmsim-metric-value">([^<]*)<', re.DOTALL)


def _table(dash) -> dict[str, str]:
    """The metrics table's cells as the HTML shows them: key -> text."""
    return dict(_CELL.findall(dash.metrics.value))


def _expected(dash) -> dict[str, str]:
    return {key: text for key, _, text in metric_rows(summarize(dash.sim.results()))}


def test_format_metric_by_hand():
    assert format_metric(Metric("ttft_p50", "TTFT p50", "ms", 1e3, 1), 0.01234) == "12.3"
    assert format_metric(Metric("kv_usage_peak", "KV peak", "%", 100.0, 1), 1.0) == "100.0"
    assert format_metric(Metric("num_evictions", "evictions", ""), 13) == "13"
    assert format_metric(Metric("generation_throughput", "t", "tok/s", digits=1),
                         12345.67) == "12,345.7"
    assert format_metric(METRICS[-1], math.nan) == MISSING
    assert "no simulator" in metrics_html(None)
    keys = [m.key for m in METRICS]
    for wanted in ("generation_throughput", "ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99",
                   "kv_usage_peak", "num_evictions", "prefix_hit_rate"):
        assert wanted in keys


def test_the_metrics_table_follows_every_action():
    dash = Dashboard(**SMALL)
    assert _table(dash) == _expected(dash)  # iteration 0: nothing measured yet
    assert _table(dash)["ttft_p50"] == MISSING and _table(dash)["kv_usage_peak"] == "0.0"
    seen = [dict(_table(dash))]
    for action in (dash.step, lambda: dash.run_n(3), dash.run_to_end):
        action()
        assert _table(dash) == _expected(dash)
        seen.append(_table(dash))
    assert all(seen[i] != seen[i - 1] for i in range(1, len(seen)))  # redrawn each time
    assert seen[-1]["ttft_p99"] != MISSING and seen[-1]["tpot_p50"] != MISSING
    assert seen[-1]["prefix_hit_rate"] == MISSING  # orca: no prefix lookups
    dash.reset()
    assert _table(dash) == seen[0]
    dash.controls["npu_group"].value = 3  # invalid: no simulator, no figures
    assert dash.summary is None and "no metrics" in dash.metrics.value


def test_the_gantt_is_the_last_iteration_after_every_action():
    dash = Dashboard(**SMALL)
    for action in (dash.step, lambda: dash.run_n(4), dash.run_to_end):
        action()
        last = dash.iteration - 1
        assert int(dash.last_step.iteration[0]) == last
        title = dash.figures["gantt"].axes[0].get_title()
        assert title == f"Gantt of iteration {last} (the latest of {dash.iteration})"
    assert dash.sim.is_finished


def test_run_to_end_moves_the_progress_bar():
    dash = Dashboard(**SMALL)
    assert (dash.progress.value, dash.progress.max) == (0, 6)
    seen = []
    dash.progress.observe(lambda change: seen.append(change["new"]), names="value")
    dash.run_to_end()
    assert seen == sorted(seen) and len(seen) > 1 and seen[-1] == 6  # during, not only after
    assert dash.progress.value == dash.progress.max == 6


def test_the_default_workload_fills_the_kv_cache():
    dash = Dashboard()
    assert dash.values()["npu_mem"] == PRESSURE_DEFAULTS["npu_mem"]
    assert dash.values()["arrival_rate"] == PRESSURE_DEFAULTS["arrival_rate"]
    dash.run_to_end()
    summary = dash.summary
    assert summary["kv_usage_peak"] == 1.0
    assert summary["num_evictions"] + summary["num_preemptions"] > 0
    assert _table(dash)["kv_usage_peak"] == "100.0"


def test_the_token_budget_control_and_its_warning():
    dash = Dashboard(**SMALL)
    budget = dash.controls["max_num_batched_tokens"]
    assert budget.value == 2048 and dash.notes == []
    budget.value = 512  # the default policy (orca on an NPU) has no token budget
    assert dash.error is None and len(dash.notes) == 1
    assert dash.notes[0].startswith("max_num_batched_tokens=512 has no effect")
    assert "llmsim-warning" in dash.message.value
    dash.controls["scheduling"].value = "chunked"
    assert dash.notes == [] and "llmsim-warning" not in dash.message.value
    assert dash.sim.config.scheduler.max_num_batched_tokens == 512
    budget.value = 0  # refused by the config's range check, never clamped
    assert dash.sim is None and dash.error.startswith("max_num_batched_tokens=0")
    assert "\n" not in dash.error


def test_the_trace_controls_read_packaged_traces_and_files(tmp_path):
    dash = Dashboard(flags={"model_name": "gpt2"}, workload={"num_requests": 5})
    assert not dash.controls["arrival_rate"].disabled
    dash.controls["trace_file"].value = "sharegpt-like-100"
    assert dash.sim is None and dash.error.startswith(
        "trace_file='sharegpt-like-100' is read only with trace='file'")
    dash.controls["trace"].value = "file"
    assert dash.error is None and dash.controls["arrival_rate"].disabled
    expected = load_trace("sharegpt-like-100").head(5)
    np.testing.assert_array_equal(dash.sim.trace.arrival_at, expected.arrival_at)
    np.testing.assert_array_equal(dash.sim.trace.num_prompt_tokens, expected.num_prompt_tokens)
    path = tmp_path / "mine.tsv"
    path.write_text("input_toks\toutput_toks\tarrival_time_ns\n8\t2\t0\n16\t3\t1000000\n")
    dash.controls["trace_file"].value = str(path)
    assert dash.sim is None and dash.error == (
        f"num_requests=5 but trace_file={str(path)!r} holds 2 requests; ask for at most 2")
    dash.controls["num_requests"].value = 2
    assert dash.error is None and dash.sim.trace.num_prompt_tokens.tolist() == [8, 16]
    dash.run_to_end()
    assert dash.sim.is_finished and _table(dash) == _expected(dash)
    dash.controls["trace_file"].value = str(tmp_path / "missing.tsv")
    assert dash.sim is None and "trace file not found" in dash.error and "\n" not in dash.error
    dash.controls["trace_file"].value = ""
    assert dash.error == ("trace='file' needs trace_file: a packaged trace's name (e.g. "
                          "sharegpt-like-100) or a trace file path")


def test_bad_widget_values_are_one_line_errors_never_clamped():
    dash = Dashboard(**SMALL)
    for flag, value, start in (("block_size", -3, "block_size=-3"),
                               ("num_requests", 0, "num_requests must be an integer >= 1"),
                               ("arrival_rate", 0.0, "arrival_rate must be a finite number"),
                               ("max_batch", -1, "max_batch=-1")):
        good = dash.controls[flag].value
        dash.controls[flag].value = value
        assert dash.controls[flag].value == value  # the widget keeps what was typed
        assert dash.sim is None and dash.error.startswith(start), (flag, dash.error)
        assert "\n" not in dash.error and "llmsim-error" in dash.message.value
        dash.controls[flag].value = good
        assert dash.error is None


def test_the_serving_stack_dropdown():
    from llmsim_nb.engines.serving_stack import list_serving_stacks

    assert controls.dashboard_flags()[-1] == "serving_stack"
    dash = Dashboard(**SMALL)
    stack = dash.controls["serving_stack"]
    assert list(stack.options) == ["auto", *list_serving_stacks()] and stack.value == "auto"
    stack.value = "sglang"
    assert dash.error is None and dash.sim.config.serving_stack == "sglang"
    with pytest.raises(ValueError, match="serving_stack='sglan' is not one of"):
        Dashboard(flags={"model_name": "gpt2", "serving_stack": "sglan"})


def test_optional_flags_appear_only_where_the_config_has_them(monkeypatch):
    monkeypatch.setattr(controls, "OPTIONAL_FLAGS", ("serving_stack", "no_such_flag"))
    assert "no_such_flag" not in controls.dashboard_flags()
    monkeypatch.setitem(controls.FLAG_FIELDS, "no_such_flag", (None, "no_such_flag"))
    assert controls.dashboard_flags()[-1] == "no_such_flag"


def test_the_layout_fits_1100_px():
    """The flex layout that lets the dashboard fit a 1,100 px window (the browser test
    measures it): a fixed controls column, wrapping buttons and plots."""
    dash = Dashboard(**SMALL)
    column, right = dash.widget.children
    assert column.layout.flex == "0 0 340px"
    buttons = right.children[0]
    assert buttons.layout.flex_flow == "row wrap"
    plots = right.children[-1]
    assert plots.layout.flex_flow == "row wrap"
    assert all(image.layout.min_width == "260px" for image in dash.images.values())
