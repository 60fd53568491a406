"""A real browser: JupyterLab on loopback, the dashboard notebook in Debian's Chromium.

Opens ``notebooks/dashboard.ipynb`` (a scratch copy), runs it, presses Step
and checks that the iteration counter and the plots changed; saves a
screenshot into the test's ``tmp_path``. Skipped, with the reason, where
Chromium, Playwright or JupyterLab is missing (``.ci/run`` installs them).
"""

import re

import pytest

from .jupyter_browser import (chromium_page, counter_text, jupyter_lab, missing_requirements,
                              open_dashboard, plot_src, wait_idle)

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
