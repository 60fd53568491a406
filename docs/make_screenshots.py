"""Regenerate the README's images: the dashboard in a real browser and one plot.

    python docs/make_screenshots.py

writes ``docs/dashboard.png`` (JupyterLab on loopback, the dashboard notebook
run in Debian's Chromium through Playwright, 150 iterations simulated with
Run N) and ``docs/throughput.png`` (``viz.plot_throughput`` of the packaged
trace on GPT3-6.7B). Needs the notebooks extra, ``playwright`` and the
``chromium`` Debian package, like ``tests/test_browser.py``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.jupyter_browser import (chromium_page, counter_text, jupyter_lab,  # noqa: E402
                                   missing_requirements, open_dashboard, wait_idle)

DOCS = REPO / "docs"


def dashboard_png(path: Path, iterations: int = 150) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        with jupyter_lab(work) as (base, token), chromium_page(work, 1500, 1300) as page:
            open_dashboard(page, base, token)
            n_box = page.locator(".llmsim-run-n").locator("xpath=preceding-sibling::*[1]")
            n_box.locator("input").fill(str(iterations))
            n_box.locator("input").press("Enter")
            page.click(".llmsim-run-n")
            page.wait_for_function("document.querySelector('.llmsim-counter').innerText"
                                   f".includes('iteration {iterations} ')")
            wait_idle(page)
            page.locator(".llmsim-dashboard").screenshot(path=str(path))
            return counter_text(page)


def throughput_png(path: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from llmsim_nb import SimConfig, Simulator, summarize, viz

    ds = Simulator(SimConfig.from_flags(model_name="gpt3-6.7b")).run()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4))
    viz.plot_throughput(ds, axes[0])
    viz.plot_latency_cdf(ds, axes[1])
    fig.suptitle("GPT3-6.7B on one 128x128 NPU, packaged 100-request ShareGPT-like trace "
                 "(10 req/s)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    s = summarize(ds)
    return (f"generation {s['generation_throughput']:.0f} tok/s, "
            f"mean TTFT {s['ttft_mean'] * 1e3:.0f} ms")


def main() -> int:
    print("docs/throughput.png:", throughput_png(DOCS / "throughput.png"))
    missing = missing_requirements()
    if missing:
        print(f"docs/dashboard.png not regenerated: {missing}", file=sys.stderr)
        return 1
    print("docs/dashboard.png:", dashboard_png(DOCS / "dashboard.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
