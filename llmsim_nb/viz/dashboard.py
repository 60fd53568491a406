"""An ipywidgets dashboard: turn the config's knobs, step the simulator, watch the plots.

::

    from llmsim_nb.viz.dashboard import Dashboard
    Dashboard()          # in a notebook cell: controls, buttons, counter and plots

The controls come from the config dataclasses' field metadata
(:mod:`llmsim_nb.viz.controls`). Changing a control rebuilds the simulator
from iteration 0. Step / Run N / Run to end / Reset drive it; after each the
counter and every plot are redrawn in place (each plot is a PNG in an
``ipywidgets.Image`` rendered from its own matplotlib ``Figure``, so no pyplot
state and no interactive backend are involved). A bad combination of knobs
shows the simulator's own ``ValueError`` message in the dashboard, never a
traceback; so does any error while stepping (an engine's bad latency), and
the next action that succeeds clears it.

Everything a button does is a method (:meth:`Dashboard.step`,
:meth:`Dashboard.run_n`, :meth:`Dashboard.run_to_end`,
:meth:`Dashboard.reset`), so the logic is tested without a browser.
"""

from __future__ import annotations

import functools
import html
import io
from numbers import Integral, Real
from typing import Any

import numpy as np
import xarray as xr

from ..config import SimConfig
from .controls import (ControlSpec, WorkloadConfig, control_specs, parse_optional_float,
                       parse_switch, split_values, switch_text)

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


def one_line(exc: BaseException) -> str:
    """An exception as the one line the dashboard shows: a ValueError's own
    message (the simulator's), other exceptions prefixed by their type."""
    lines = str(exc).strip().splitlines()
    if isinstance(exc, ValueError):
        return lines[0] if lines else type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _check_initial(spec: ControlSpec, value: Any) -> None:
    """Refuse, in one line, an initial value the widget would otherwise coerce
    (an IntText truncates 4.5 to 4) or reject with a traitlets error."""
    number = isinstance(value, Real) and not isinstance(value, (bool, np.bool_))
    if spec.kind == "choice" and value not in spec.options:
        raise ValueError(f"{spec.flag}={value!r} is not one of {list(spec.options)}")
    if spec.kind == "int" and not (number and isinstance(value, Integral)):
        raise ValueError(f"{spec.flag}={value!r} must be an integer (never truncated)")
    if spec.kind == "float" and not number:
        raise ValueError(f"{spec.flag}={value!r} must be a number")
    if spec.kind == "bool" and not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{spec.flag}={value!r} must be True or False")


def _make_widget(spec: ControlSpec, value: Any):
    import ipywidgets as w

    _check_initial(spec, value)
    common = dict(description=spec.label, description_tooltip=spec.help, tooltip=spec.help,
                  style={"description_width": "150px"}, layout=w.Layout(width="330px"))
    if spec.kind == "choice":
        return w.Dropdown(options=list(spec.options), value=value, **common)
    if spec.kind == "switch":
        return w.Dropdown(options=list(spec.options), value=switch_text(spec.flag, value),
                          **common)
    if spec.kind == "int":
        return w.IntText(value=value, **common)
    if spec.kind == "float":
        return w.FloatText(value=value, **common)
    if spec.kind == "optional_float":
        return w.Text(value="" if value is None else f"{value:g}",
                      placeholder="blank: the preset's", **common)
    if spec.kind == "bool":
        return w.Checkbox(value=value, indent=False, **common)
    raise ValueError(f"unknown control kind {spec.kind!r} for {spec.flag!r}")


class Dashboard:
    """Controls, buttons, an iteration counter and plots around one :class:`Simulator`.

    Parameters
    ----------
    flags : dict, optional
        Initial ``SimConfig.from_flags`` values of the shown controls (default:
        the config defaults).
    workload : dict, optional
        Initial :class:`~llmsim_nb.viz.controls.WorkloadConfig` fields.
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
    last_step : xarray.Dataset or None
        The latest ``Simulator.step()`` Dataset (the Gantt chart's input).
    results : xarray.Dataset or None
        ``sim.results()`` after the latest action.
    controls : dict of flag -> widget
    figures : dict of plot name -> matplotlib Figure
    images : dict of plot name -> ipywidgets.Image
    counter, message : ipywidgets.HTML
    widget : ipywidgets.VBox
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
        for given in (flags or {}), (workload or {}):
            for key, value in given.items():
                if key not in values:
                    raise ValueError(f"{key!r} is not a dashboard control; "
                                     f"controls: {list(values)}")
                values[key] = value
        self.controls = {s.flag: _make_widget(s, values[s.flag]) for s in self.specs}
        self.n_steps = w.BoundedIntText(value=10, min=1, max=100_000, description="N",
                                        layout=w.Layout(width="130px"),
                                        style={"description_width": "20px"})
        self.buttons = {
            "step": w.Button(description="Step", button_style="primary", icon="step-forward"),
            "run_n": w.Button(description="Run N", icon="forward"),
            "run_to_end": w.Button(description="Run to end", icon="fast-forward"),
            "reset": w.Button(description="Reset", button_style="warning", icon="undo"),
        }
        for name, button in self.buttons.items():
            button.add_class(f"llmsim-{name.replace('_', '-')}")
        self.buttons["step"].on_click(self.step)
        self.buttons["run_n"].on_click(lambda _: self.run_n(self.n_steps.value))
        self.buttons["run_to_end"].on_click(self.run_to_end)
        self.buttons["reset"].on_click(self.reset)
        self.counter = w.HTML()
        self.counter.add_class("llmsim-counter")
        self.message = w.HTML()
        self.message.add_class("llmsim-message")
        self.dpi = dpi
        self.figures = {}
        self.images = {}
        for name in plots:
            self.figures[name] = Figure(figsize=PLOTS[name], dpi=dpi)
            # Two plots per row, each scaled to half the row, so the grid fits any width.
            self.images[name] = w.Image(format="png", layout=w.Layout(
                width="49%", height="auto", object_fit="contain"))
            self.images[name].add_class(f"llmsim-plot-{name.replace('_', '-')}")
        self.sim = None
        self.error: str | None = None
        self.last_step: xr.Dataset | None = None
        self.results: xr.Dataset | None = None
        self.widget = self._layout()
        for control in self.controls.values():
            control.observe(self._on_change, names="value")
        self.reset()

    # ------------------------------------------------------------------ layout
    def _layout(self):
        import ipywidgets as w

        column = w.VBox(list(self.controls.values()))
        buttons = w.HBox([self.buttons["step"], self.n_steps, self.buttons["run_n"],
                          self.buttons["run_to_end"], self.buttons["reset"]])
        names = list(self.images)
        rows = [w.HBox([self.images[n] for n in names[i:i + 2]],
                       layout=w.Layout(width="100%"))
                for i in range(0, len(names), 2)]
        right = w.VBox([buttons, self.counter, self.message, *rows],
                       layout=w.Layout(flex="1 1 auto", min_width="0"))
        column.layout = w.Layout(flex="0 0 340px")
        box = w.HBox([column, right], layout=w.Layout(width="100%"))
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
        from ..instance.simulator import Simulator

        flags, workload = split_values(self.values())
        config = SimConfig.from_flags(**flags)
        trace = WorkloadConfig(**workload).make_trace(config.seed)
        return Simulator(config, trace)

    # ---------------------------------------------------------------- handlers
    # Every handler is guarded: whatever goes wrong (a bad control value, an
    # engine that returns NaN, a plot that fails) shows as one line in the
    # message area and never escapes into the widget event loop. An error
    # from an action is cleared by the next action that succeeds; an invalid
    # combination of controls stays shown until the controls are fixed.
    @_guarded
    def _on_change(self, change) -> None:
        self.reset()

    @_guarded
    def reset(self, _=None) -> None:
        """Build a new simulator from the controls (iteration 0) and redraw."""
        self.last_step = None
        self.results = None
        self.sim = None
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
        """Simulate until every request has finished (the Run to end button)."""
        if self.sim is None:
            return
        self._clear_error()
        try:
            self.results = self.sim.run()
        except Exception as exc:  # noqa: BLE001  shown; the results so far stay drawn
            self._show_error(exc)
            self.results = self.sim.results()
        self._finish_message()
        self._refresh()

    def _advance(self, n: int) -> None:
        from ..instance.simulator import SimulationFinished

        if self.sim is None:  # the controls are invalid; the message says why
            return
        self._clear_error()
        try:
            for _ in range(n):
                self.last_step = self.sim.step()
        except SimulationFinished:
            pass
        except Exception as exc:  # noqa: BLE001  shown; the results so far stay drawn
            self._show_error(exc)
        self.results = self.sim.results()
        self._finish_message()
        self._refresh()

    # ----------------------------------------------------------------- display
    def _show_error(self, exc: Exception, setting: bool | None = None) -> None:
        """Show ``exc`` in one line: an invalid setting when the simulator cannot
        be built from the controls, else an error of the latest action."""
        self.error = one_line(exc)
        label = "Invalid setting" if (self.sim is None if setting is None else setting) \
            else "Simulation error"
        self.message.value = (f'<div class="llmsim-error" style="color:#b00020">'
                              f'<b>{label}:</b> {html.escape(self.error)}</div>')

    def _clear_error(self) -> None:
        self.error = None
        self.message.value = ""

    def _finish_message(self) -> None:
        if self.sim is not None and self.sim.is_finished and self.error is None:
            self.message.value = (f'<div class="llmsim-done">All {len(self.sim.trace)} '
                                  "requests have finished.</div>")

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
        self.counter.value = f'<b class="llmsim-iteration">{html.escape(self.counter_text())}</b>'
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
        else:
            draw = {"throughput": throughput.plot_throughput,
                    "latency": latency.plot_latency_cdf, "kv_usage": kv.plot_kv_usage,
                    "batch": batch.plot_batch_composition}[name]
            draw(self.results, ax=ax)

    def __repr__(self) -> str:
        return f"Dashboard({self.counter_text()})"
