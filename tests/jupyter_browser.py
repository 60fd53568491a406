"""Drive the dashboard notebook in JupyterLab with Debian's Chromium through Playwright.

Shared by ``tests/test_browser.py`` and ``docs/make_screenshots.py``. Nothing
is downloaded: the browser is the system's (``/usr/bin/chromium``), JupyterLab
listens on loopback only with a random token, and every piece of state
(notebook copy, Jupyter config/runtime, browser profile) lives in a scratch
folder so the repository's notebook is never saved with outputs.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DASHBOARD_NOTEBOOK = REPO / "notebooks" / "dashboard.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def missing_requirements() -> str | None:
    """Why the browser test cannot run here, or None if it can."""
    if not Path(CHROMIUM).is_file():
        return f"Debian's chromium is not installed ({CHROMIUM} missing; apt-get install chromium)"
    for module in ("playwright", "jupyterlab", "ipywidgets"):
        try:
            __import__(module)
        except ImportError:
            return f"the Python package {module!r} is not installed (pip install {module})"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(workdir: Path, timeout: float = 60.0):
    """Run JupyterLab on 127.0.0.1 over ``workdir/root`` holding a copy of the dashboard
    notebook; yield ``(base_url, token)``. The server is stopped on exit."""
    root = workdir / "root"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(DASHBOARD_NOTEBOOK, root / DASHBOARD_NOTEBOOK.name)
    # No news popup (and no fetch of the news feed) in the scratch user settings.
    settings = workdir / "lab-user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(workdir / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
           "IPYTHONDIR": str(workdir / "ipython"), "MPLBACKEND": "Agg"}
    log = open(workdir / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
         "--ServerApp.terminals_enabled=False", "--LabApp.expose_app_in_browser=True",
         f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
         f"--LabApp.user_settings_dir={workdir / 'lab-user-settings'}",
         # No network beyond loopback: no extension index, no update or news check.
         "--LabApp.extension_manager=readonly",
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start; see "
                                       f"{workdir / 'jupyterlab.log'}") from None
                time.sleep(0.3)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def chromium_page(workdir: Path, width: int = 1500, height: int = 1100):
    """A Playwright page in the system Chromium with a fresh profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(workdir / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": width, "height": height})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def open_dashboard(page, base: str, token: str, timeout_ms: float = 60_000) -> None:
    """Open the notebook copy, run all its cells, wait until they are done and the
    dashboard is on screen."""
    page.set_default_timeout(timeout_ms)
    page.goto(f"{base}/lab/tree/{DASHBOARD_NOTEBOOK.name}?token={token}")
    page.wait_for_selector(".jp-Notebook")
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session "
                           "&& window.jupyterapp.shell.currentWidget.sessionContext.session"
                           ".kernel && window.jupyterapp.shell.currentWidget.sessionContext"
                           ".session.kernel.status === 'idle'")
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(".llmsim-counter")
    # Every code cell has an execution count (no "[*]" left): the notebook has finished.
    page.wait_for_function(
        "(() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];"
        " return p.length > 0 && p.every(e => /\\[\\d+\\]/.test(e.textContent)); })()")
    page.wait_for_function("document.querySelector('.llmsim-plot-throughput') && "
                           "document.querySelector('.llmsim-plot-throughput').src")


def wait_idle(page) -> None:
    """Wait until the kernel has handled every message (the plots are all redrawn)."""
    page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session"
                           ".kernel.status === 'idle'")


def counter_text(page) -> str:
    return page.inner_text(".llmsim-counter")


def plot_src(page, name: str) -> str:
    return page.get_attribute(f".llmsim-plot-{name}", "src") or ""


def metric_cells(page) -> dict[str, str]:
    """The dashboard's metrics table as shown: ``data-key`` -> value text."""
    return dict(page.eval_on_selector_all(
        ".llmsim-metric", "els => els.map(e => [e.dataset.key, "
        "e.querySelector('.llmsim-metric-value').innerText.trim()])"))


def overflow(page) -> dict[str, float]:
    """How far (px) the dashboard reaches past its notebook output area, and its
    controls, buttons, metrics and plots past the dashboard (<= 0 everywhere: it fits)."""
    return page.evaluate(
        "(() => { const box = document.querySelector('.llmsim-dashboard');"
        " const edge = box.getBoundingClientRect().right; const out = {};"
        " out.dashboard = edge - box.parentElement.getBoundingClientRect().right;"
        " out.scroll = box.scrollWidth - box.clientWidth;"
        " for (const e of box.querySelectorAll('[class*=llmsim-plot-], .llmsim-metric,"
        " .llmsim-run-to-end, .llmsim-reset, .widget-dropdown, .widget-text')) {"
        "   const name = (e.className.match(/llmsim-[\\w-]+/) || ['control'])[0];"
        "   out[name] = Math.max(out[name] ?? -1e9, e.getBoundingClientRect().right - edge); }"
        " return out; })()")
