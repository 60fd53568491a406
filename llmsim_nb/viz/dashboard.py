"""An ipywidgets dashboard: turn the config's knobs, step the simulator, watch the plots.

::

    from llmsim_nb.viz.dashboard import Dashboard
    Dashboard()          # in a notebook cell: controls, buttons, counter and plots

The controls come from the config dataclasses' field metadata
(:mod:`llmsim_nb.viz.controls`). Changing a control rebuilds the simulator
from iteration 0. Step / Run N / Run to end / Reset drive it; after each the
counter, the metrics table (:mod:`.metrics_table`: ``summarize()`` of the run
so far), the progress bar and every plot are redrawn in place (each plot is a
PNG in an ``ipywidgets.Image`` rendered from its own matplotlib ``Figure``, so
no pyplot state and no interactive backend are involved). Every action steps
the simulator, so the Gantt chart is always the last iteration simulated (its
title says which). The default workload (:data:`PRESSURE_DEFAULTS`) fills the
KV cache. A bad combination of knobs shows the simulator's own
``ValueError`` message in the dashboard, never a traceback (a bad value is
never clamped); so does any error while stepping (an engine's bad latency),
and the next action that succeeds clears it. Warnings of the config (a
token budget the policy does not use) are shown as one line each.

Everything a button does is a method (:meth:`Dashboard.step`,
:meth:`Dashboard.run_n`, :meth:`Dashboard.run_to_end`,
:meth:`Dashboard.reset`), so the logic is tested without a browser.
"""

from __future__ import annotations

import functools
import html
import io
import warnings
from typing import Any

import xarray as xr

from ..config import SimConfig
from .controls import (WorkloadConfig, control_specs, parse_optional_float, parse_switch,
                       split_values)
from .dashboard_widgets import make_widget, one_line, warning_lines
from .metrics_table import metrics_html

#: Initial values where the dashboard departs from the config defaults, so that
#: the first Run to end shows KV-cache pressure: GPT3-6.7B's fp16 weights take
#: 12.5 GiB, so a 14 GiB NPU leaves 114 blocks of 16 tokens (~1.8k tokens) for
#: the KV cache; 100 ShareGPT-like requests (mean prompt + output about 500
#: tokens) arriving at 20/s keep ~4-8 of them running, which fills the cache
#: (peak 100 %) and evicts running requests (13 with the default orca policy;
#: measured with ``Dashboard().run_to_end()``). At the config's 24 GiB and 10/s the
#: peak is 7 % and nothing is ever evicted.
PRESSURE_DEFAULTS: dict[str, Any] = {"model_name": "gpt3-6.7b", "npu_mem": 14.0,
                                     "arrival_rate": 20.0}

#: Plot name -> figure size in inches.
PLOTS = {"throughput": (5.2, 2.9), "latency": (5.2, 2.9), "kv_usage": (5.2, 2.9),
         "batch": (5.2, 2.9), "block_table": (5.2, 2.9), "gantt": (5.2, 2.9)}


def _guarded(handler):
    """Run a button / control handler so that no exception escapes it: the
    error's one-line message goes to the dashboard's message area instead."""

    @functools.wraps(handler)
    def run(self, *args, **kwargs):
        try:
            return handler(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001  shown, never raised into the widget loop
            self._show_error(exc)
            try:
                self._refresh()
            except Exception:  # noqa: BLE001  the plots stay as they were
                pass
        return None

    return run


class Dashboard:
    """Controls, buttons, a metrics table, an iteration counter and plots around one
    :class:`Simulator`.

    Parameters
    ----------
    flags : dict, optional
        Initial ``SimConfig.from_flags`` values of the shown controls (default:
        the config defaults, except :data:`PRESSURE_DEFAULTS`).
    workload : dict, optional
        Initial :class:`~llmsim_nb.viz.controls.WorkloadConfig` fields (default:
        its defaults, except :data:`PRESSURE_DEFAULTS`).
    plots : tuple of str
        Which of :data:`PLOTS` to show.
    dpi : float
        Resolution of the plot images.

    Attributes
    ----------
    sim : Simulator or None
        None while the controls make an invalid combination.
    error : str or None
        The one-line message shown (the simulator's ``ValueError``, or any
        other error prefixed by its type), None when all is well.
    notes : list of str
        The first line of each warning building the simulator gave (a flag
        with no effect in this setup, a slower fallback), shown under the buttons.
    last_step : xarray.Dataset or None
        The latest ``Simulator.step()`` Dataset (the Gantt chart's input): Step,
        Run N and Run to end all step, so it is always the last iteration simulated.
    results : xarray.Dataset or None
        ``sim.results()`` after the latest action.
    summary : Summary or None
        ``summarize(results)``, what the metrics table shows.
    controls : dict of flag -> widget
    figures : dict of plot name -> matplotlib Figure
    images : dict of plot name -> ipywidgets.Image
    counter, message, metrics : ipywidgets.HTML
    progress : ipywidgets.IntProgress
        Requests finished out of the trace's, updated after every iteration of Run to end.
    widget : ipywidgets.HBox
        The whole dashboard (a notebook displays the Dashboard through it).
    """

    def __init__(self, flags: dict[str, Any] | None = None,
                 workload: dict[str, Any] | None = None,
                 plots: tuple[str, ...] = tuple(PLOTS), dpi: float = 72.0) -> None:
        import ipywidgets as w
        from matplotlib.figure import Figure

        unknown = [p for p in plots if p not in PLOTS]
        if unknown:
            raise ValueError(f"unknown plot(s) {unknown}; known: {list(PLOTS)}")
        self.specs = control_specs()
        values = {s.flag: s.default for s in self.specs}
        values.update(PRESSURE_DEFAULTS)
        for given in (flags or {}), (workload or {}):
            for key, value in given.items():
                if key not in values:
                    raise ValueError(f"{key!r} is not a dashboard control; "
                                     f"controls: {list(values)}")
                values[key] = value
        self.controls = {s.flag: make_widget(s, values[s.flag]) for s in self.specs}
        self.n_steps = w.BoundedIntText(value=10, min=1, max=100_000, description="N",
                                        layout=w.Layout(width="110px"),
                                        style={"description_width": "20px"})
        self.buttons = {
            "step": w.Button(description="Step", button_style="primary", icon="step-forward"),
            "run_n": w.Button(description="Run N", icon="forward"),
            "run_to_end": w.Button(description="Run to end", icon="fast-forward"),
            "reset": w.Button(description="Reset", button_style="warning", icon="undo"),
        }
        for name, button in self.buttons.items():
            button.layout = w.Layout(width="auto", min_width="80px")
            button.add_class(f"llmsim-{name.replace('_', '-')}")
        self.buttons["step"].on_click(self.step)
        self.buttons["run_n"].on_click(lambda _: self.run_n(self.n_steps.value))
        self.buttons["run_to_end"].on_click(self.run_to_end)
        self.buttons["reset"].on_click(self.reset)
        self.progress = w.IntProgress(value=0, min=0, max=1, description="finished",
                                      bar_style="info", layout=w.Layout(width="auto"),
                                      style={"description_width": "55px"})
        self.progress.add_class("llmsim-progress")
        self.counter = w.HTML()
        self.counter.add_class("llmsim-counter")
        self.message = w.HTML()
        self.message.add_class("llmsim-message")
        self.metrics = w.HTML(layout=w.Layout(width="auto"))  # 100% + margin overflows
        self.metrics.add_class("llmsim-metrics")
        self.dpi = dpi
        self.figures = {}
        self.images = {}
        for name in plots:
            self.figures[name] = Figure(figsize=PLOTS[name], dpi=dpi)
            # Two plots per row, each half the row (never under 260 px: then one a row),
            # so the grid fits any width down to a 1,100 px window.
            self.images[name] = w.Image(format="png", layout=w.Layout(
                width="49%", min_width="260px", height="auto", object_fit="contain"))
            self.images[name].add_class(f"llmsim-plot-{name.replace('_', '-')}")
        self.sim = None
        self.error: str | None = None
        self._error_label = ""
        self.notes: list[str] = []
        self.last_step: xr.Dataset | None = None
        self.results: xr.Dataset | None = None
        self.summary = None
        self.widget = self._layout()
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.reset()

    # ------------------------------------------------------------------ layout
    def _layout(self):
        import ipywidgets as w

        column = w.VBox(list(self.controls.values()), layout=w.Layout(flex="0 0 340px"))
        buttons = w.HBox([self.buttons["step"], self.n_steps, self.buttons["run_n"],
                          self.buttons["run_to_end"], self.buttons["reset"]],
                         layout=w.Layout(flex_flow="row wrap"))
        plots = w.HBox(list(self.images.values()),
                       layout=w.Layout(width="100%", flex_flow="row wrap"))
        # The right column needs 540 px (two 260 px plots side by side); where the
        # output is narrower (a 1,100 px window with JupyterLab's file browser open)
        # it wraps below the controls instead of being squeezed or cut off.
        right = w.VBox([buttons, self.progress, self.counter, self.message, self.metrics,
                        plots], layout=w.Layout(flex="1 1 540px", min_width="0"))
        box = w.HBox([column, right], layout=w.Layout(width="100%", flex_flow="row wrap"))
        box.add_class("llmsim-dashboard")
        return box

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    # ------------------------------------------------------------------- state
    def values(self) -> dict[str, Any]:
        """The controls' current values (flags and workload fields)."""
        out = {}
        for spec in self.specs:
            value = self.controls[spec.flag].value
            if spec.kind == "optional_float":
                value = parse_optional_float(spec.flag, value)
            elif spec.kind == "switch":
                value = parse_switch(spec.flag, value)
            out[spec.flag] = value
        return out

    def _build(self):
        """A new Simulator from the controls; the warnings it gave go to :attr:`notes`."""
        from ..instance.simulator import Simulator

        flags, workload = split_values(self.values())
        generated = workload["trace"] != "file"
        self.controls["arrival_rate"].disabled = not generated  # a file has its own arrivals
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            config = SimConfig.from_flags(**flags)
            trace = WorkloadConfig(**workload).make_trace(config.seed)
            sim = Simulator(config, trace)
        self.notes = warning_lines(caught)
        return sim

    # ---------------------------------------------------------------- handlers
    # Every handler is guarded: whatever goes wrong (a bad control value, an engine
    # that returns NaN, a plot that fails) shows as one line, never escaping into the
    # widget loop; it stays until the next action succeeds or the controls are fixed.
    @_guarded
    def _on_change(self, change) -> None:
        self.reset()

    @_guarded
    def reset(self, _=None) -> None:
        """Build a new simulator from the controls (iteration 0) and redraw."""
        self.last_step = None
        self.results = None
        self.sim = None
        self.notes = []
        try:
            self.sim = self._build()
        except Exception as exc:  # noqa: BLE001  the config's / simulator's own message
            self._show_error(exc, setting=True)
        else:
            self._clear_error()
            self.results = self.sim.results()
        self._refresh()

    @_guarded
    def step(self, _=None) -> None:
        """Simulate one iteration (the Step button)."""
        self._advance(1)

    @_guarded
    def run_n(self, n: int) -> None:
        """Simulate up to ``n`` iterations (the Run N button), one ``step()`` each."""
        if self.sim is None:  # the controls are invalid; the message says why
            return
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            self._show_error(ValueError(f"N must be an integer >= 1, got {n!r}"), setting=False)
            return
        self._advance(n)

    @_guarded
    def run_to_end(self, _=None) -> None:
        """Simulate until every request has finished (the Run to end button).

        It steps (as Run N does, the same iterations as ``Simulator.run()``),
        so the Gantt chart shows the run's last iteration, and moves the
        progress bar after each iteration.
        """
        self._advance(None)

    def _advance(self, n: int | None) -> None:
        """``n`` iterations (None: until every request has finished), then redraw."""
        from ..instance.simulator import SimulationFinished

        if self.sim is None:  # the controls are invalid; the message says why
            return
        self._clear_error()
        done = 0
        try:
            while n is None or done < n:
                self.last_step = self.sim.step()
                done += 1
                if n is None:
                    self._show_progress()
        except SimulationFinished:
            pass
        except Exception as exc:  # noqa: BLE001  shown; the results so far stay drawn
            self._show_error(exc)
        self.results = self.sim.results()
        self._refresh()

    # ----------------------------------------------------------------- display
    def _show_error(self, exc: Exception, setting: bool | None = None) -> None:
        """Show ``exc`` in one line: an invalid setting when the simulator cannot
        be built from the controls, else an error of the latest action."""
        self.error = one_line(exc)
        self._error_label = "Invalid setting" if (
            self.sim is None if setting is None else setting) else "Simulation error"
        self._show_message()

    def _clear_error(self) -> None:
        self.error = None
        self._show_message()

    def _show_message(self) -> None:
        """The message area: the error, else the build's warnings and the "finished" note."""
        if self.error is not None:
            self.message.value = (f'<div class="llmsim-error" style="color:#b00020">'
                                  f"<b>{self._error_label}:</b> {html.escape(self.error)}</div>")
            return
        parts = [f'<div class="llmsim-warning" style="color:#8a5a00"><b>Warning:</b> '
                 f"{html.escape(note)}</div>" for note in self.notes]
        if self.sim is not None and self.sim.is_finished:
            parts.append(f'<div class="llmsim-done">All {len(self.sim.trace)} requests have '
                         f"finished.</div>")
        self.message.value = "".join(parts)

    def _show_progress(self) -> None:
        total = 1 if self.sim is None else max(len(self.sim.trace), 1)
        done = 0 if self.sim is None else self.sim.scheduler.num_finished
        if self.progress.max != total:
            self.progress.max = total
        if self.progress.value != done:  # one widget message per request finished
            self.progress.value = done

    @property
    def iteration(self) -> int:
        """Iterations simulated so far (0 without a simulator)."""
        return 0 if self.sim is None else self.sim.num_iterations

    def counter_text(self) -> str:
        if self.sim is None:
            return "no simulator (fix the setting below)"
        sim = self.sim
        return (f"iteration {sim.num_iterations} | simulated time {sim.now:.4f} s | "
                f"finished {sim.scheduler.num_finished}/{len(sim.trace)} requests | "
                f"KV usage {sim.kv_cache.usage:.1%}")

    def _refresh(self) -> None:
        from ..results.metrics import summarize

        self.counter.value = f'<b class="llmsim-iteration">{html.escape(self.counter_text())}</b>'
        self._show_progress()
        self._show_message()
        self.summary = None if self.results is None else summarize(self.results)
        self.metrics.value = metrics_html(self.summary)
        for name, fig in self.figures.items():
            fig.clear()
            ax = fig.add_subplot()
            self._draw(name, ax)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=self.dpi)
            self.images[name].value = buf.getvalue()

    def _draw(self, name: str, ax) -> None:
        """Draw plot ``name`` on ``ax`` from the current state."""
        from . import _axes, batch, gantt, kv, latency, throughput

        if self.sim is None or self.results is None:
            _axes.note(ax, "no simulator")
            ax.set_axis_off()
        elif name == "block_table":
            kv.plot_block_table(self.sim.kv_cache, ax=ax)
        elif name == "gantt":
            if self.last_step is None:
                _axes.note(ax, "press Step for an iteration's Gantt chart")
                ax.set_axis_off()
            else:
                gantt.plot_gantt(self.last_step, ax=ax)
                ax.set_title(f"Gantt of iteration {int(self.last_step.iteration[0])} "
                             f"(the latest of {self.iteration})", fontsize="medium")
        else:
            draw = {"throughput": throughput.plot_throughput,
                    "latency": latency.plot_latency_cdf, "kv_usage": kv.plot_kv_usage,
                    "batch": batch.plot_batch_composition}[name]
            draw(self.results, ax=ax)

    def __repr__(self) -> str:
        return f"Dashboard({self.counter_text()})"
