"""A real browser: JupyterLab on loopback, the dashboard notebook in Debian's Chromium.

Opens ``notebooks/dashboard.ipynb`` (a scratch copy), runs it, presses Step
and checks that the iteration counter and the plots changed; in a 1,100 px
window presses Run to end and checks that nothing reaches past the notebook's
output area and that the metrics table shows ``summarize()`` of the same run
(simulated here, outside the browser). Saves screenshots into the test's
``tmp_path``. Skipped, with the reason, where Chromium, Playwright or JupyterLab
is missing (``.ci/run`` installs them).
"""

import re

import pytest

from .jupyter_browser import (chromium_page, counter_text, jupyter_lab, metric_cells,
                              missing_requirements, open_dashboard, overflow, plot_src,
                              wait_idle)

_MISSING = missing_requirements()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")


def _iteration(text: str) -> int:
    match = re.search(r"iteration (\d+) ", text)
    assert match, f"no iteration count in {text!r}"
    return int(match.group(1))


def test_step_in_the_browser_updates_counter_and_plots(tmp_path):
    with jupyter_lab(tmp_path) as (base, token), chromium_page(tmp_path) as page:
        open_dashboard(page, base, token)
        before = counter_text(page)
        assert _iteration(before) == 0
        plots_before = {name: plot_src(page, name) for name in ("throughput", "batch", "gantt")}
        page.click(".llmsim-step")
        page.wait_for_function("document.querySelector('.llmsim-counter').innerText"
                               ".includes('iteration 1 ')")
        for name, src in plots_before.items():  # the images arrive one message each
            page.wait_for_function(
                f"document.querySelector('.llmsim-plot-{name}').src !== {src!r}")
        after = counter_text(page)
        assert _iteration(after) == 1 and after != before
        for name, src in plots_before.items():
            assert plot_src(page, name) != src, f"the {name} plot did not change"
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "dashboard-step.png"), full_page=True)
        # A bad knob shows the simulator's message, not a traceback.
        page.fill(".llmsim-dashboard input[type=number] >> nth=1", "3")  # npu_group (npu_num=1)
        page.keyboard.press("Enter")
        page.wait_for_selector(".llmsim-error")
        message = page.inner_text(".llmsim-message")
        assert "must divide npu_num" in message and "Traceback" not in message
        wait_idle(page)
        page.screenshot(path=str(tmp_path / "dashboard-error.png"), full_page=True)
        assert (tmp_path / "dashboard-step.png").stat().st_size > 10_000


def _expected_metrics() -> dict[str, str]:
    """The table the notebook's ``Dashboard()`` must show after Run to end: its
    default controls, simulated here with Simulator.run() and summarize()."""
    from llmsim_nb import SimConfig, Simulator, summarize
    from llmsim_nb.viz.controls import WorkloadConfig, split_values
    from llmsim_nb.viz.dashboard import Dashboard
    from llmsim_nb.viz.metrics_table import metric_rows

    flags, workload = split_values(Dashboard(plots=()).values())
    config = SimConfig.from_flags(**flags)
    trace = WorkloadConfig(**workload).make_trace(config.seed)
    return {key: text for key, _, text in
            metric_rows(summarize(Simulator(config, trace).run()))}


def test_run_to_end_at_1100_px_shows_the_metrics_of_the_run(tmp_path):
    expected = _expected_metrics()
    with jupyter_lab(tmp_path) as (base, token), \
            chromium_page(tmp_path, width=1100, height=2200) as page:
        open_dashboard(page, base, token)
        wait_idle(page)
        assert metric_cells(page)["ttft_p50"] == "n/a"  # iteration 0
        page.click(".llmsim-run-to-end")
        page.wait_for_selector(".llmsim-done", timeout=120_000)
        wait_idle(page)
        page.wait_for_function("document.querySelector('.llmsim-counter').innerText"
                               ".includes('finished 100/100')")
        assert metric_cells(page) == expected
        assert expected["kv_usage_peak"] == "100.0"  # the default workload's KV pressure
        reach = overflow(page)
        assert all(px <= 1 for px in reach.values()), reach
        shot = tmp_path / "dashboard-run-to-end.png"
        page.locator(".llmsim-dashboard").screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
