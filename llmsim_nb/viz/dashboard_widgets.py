"""Widgets of the dashboard: one per :class:`~.controls.ControlSpec`, and its messages.

ipywidgets is imported inside the functions (core code never imports it).
An initial value the widget would coerce (an ``IntText`` truncates 4.5 to 4)
is refused in one line first: nothing is clamped or reinterpreted.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np

from .controls import ControlSpec, switch_text

#: Width of a control's label, and of the whole control (label + box); the
#: controls column is a little wider (see ``Dashboard._layout``).
LABEL_WIDTH, CONTROL_WIDTH = "175px", "330px"


def one_line(exc: BaseException) -> str:
    """An exception as the one line the dashboard shows: a ValueError's own
    message (the simulator's), other exceptions prefixed by their type."""
    lines = str(exc).strip().splitlines()
    if isinstance(exc, ValueError):
        return lines[0] if lines else type(exc).__name__
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def warning_lines(caught: list[warnings.WarningMessage]) -> list[str]:
    """The first line of each caught warning, each once, in order."""
    out: list[str] = []
    for item in caught:
        text = (str(item.message).strip().splitlines() or [item.category.__name__])[0]
        if text not in out:
            out.append(text)
    return out


def check_initial(spec: ControlSpec, value: Any) -> None:
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
    if spec.kind == "text" and not isinstance(value, str):
        raise ValueError(f"{spec.flag}={value!r} must be text")


def make_widget(spec: ControlSpec, value: Any):
    """The ipywidget of ``spec`` showing ``value`` (checked by :func:`check_initial`).

    Text boxes report on Enter or leaving the box (``continuous_update=False``),
    not on every keystroke, so a half-typed path is not loaded.
    """
    import ipywidgets as w

    check_initial(spec, value)
    # ipywidgets 8 calls the hover text `tooltip` (`description_tooltip` is deprecated).
    common = dict(description=spec.label, tooltip=spec.help,
                  style={"description_width": LABEL_WIDTH},
                  layout=w.Layout(width=CONTROL_WIDTH))
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
        return w.Text(value="" if value is None else f"{value:g}", continuous_update=False,
                      placeholder="blank: the preset's", **common)
    if spec.kind == "text":
        return w.Text(value=value, continuous_update=False, **common)
    if spec.kind == "bool":
        return w.Checkbox(value=value, indent=True, **common)  # aligned with the boxes
    raise ValueError(f"unknown control kind {spec.kind!r} for {spec.flag!r}")


__all__ = ["check_initial", "make_widget", "one_line", "warning_lines"]
