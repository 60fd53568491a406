"""Checks a sweep makes before it runs anything.

- :func:`check_axis_values`: an axis is a list of distinct bool, number or
  string values (``1`` and ``1.0`` are the same value);
- :func:`check_conversions`: no two axis values (or points) are the same
  setting once the config has read them (``reuse=["on", True]``);
- :func:`check_main_guard`: worker processes are not started from a script's
  top-level code outside ``if __name__ == "__main__":`` (each worker would
  re-import the script and start the sweep again).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..config import FLAG_FIELDS, SimConfig

#: The axis a mapping of traces adds.
TRACE_AXIS = "trace"

_OWNERS = {None: "SimConfig", "scheduler": "SchedulerConfig", "memory": "MemoryConfig",
           "system": "SystemConfig"}


def check_axis_values(name: str, values: Any) -> list[Any]:
    """The values of sweep axis ``name`` as a list (numpy scalars unwrapped),
    or a ValueError naming the axis and the value at fault."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise ValueError(f"sweep axis {name!r} must be a list of values, got {values!r}")
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    if not values:
        raise ValueError(f"sweep axis {name!r} has no values; give at least one")
    for v in values:
        if v is None:
            raise ValueError(f"sweep axis {name!r}: None is not an axis value; leave "
                             f"{name!r} out of the axes to use the base config's value")
        if not isinstance(v, (bool, int, float, str)):
            raise ValueError(f"sweep axis {name!r}: value {v!r} must be a bool, number or "
                             f"string")
    seen: dict[tuple[str, Any], Any] = {}
    for v in values:
        # Numbers compare as numbers (1 == 1.0), bools only with bools.
        key = ("bool" if isinstance(v, bool) else "str" if isinstance(v, str) else "num", v)
        if key in seen:
            first = seen[key]
            if repr(first) == repr(v):
                raise ValueError(f"sweep axis {name!r} repeats the value {v!r}")
            raise ValueError(f"sweep axis {name!r} has the values {first!r} and {v!r}, which "
                             f"are equal; give each value once")
        seen[key] = v
    return values


def _field_value(config: SimConfig, flag: str) -> Any:
    """The config field ``flag`` sets, as the config holds it (after conversion)."""
    section, name = FLAG_FIELDS[flag]
    return getattr(config if section is None else getattr(config, section), name)


def _same_setting(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b or (
        isinstance(a, (int, float)) and isinstance(b, (int, float))
        and not isinstance(a, bool) and not isinstance(b, bool) and a == b)


def check_conversions(built: list, axes: dict[str, list[Any]], points_given: bool) -> None:
    """Refuse axis values (or points) that differ as given but are the same
    setting once the config has read them (``reuse=["on", True]``).

    ``built`` holds the sweep's valid :class:`~.spec.SweepPoint` s; a value
    whose every point is invalid is reported as invalid instead.
    """
    if points_given:
        seen: dict[tuple, int] = {}
        for point in built:
            flags = {k: v for k, v in point.flags.items() if k != TRACE_AXIS}
            setting = (point.trace_label, tuple(sorted(
                (k, type(_field_value(point.config, k)).__name__,
                 repr(_field_value(point.config, k))) for k in flags)))
            if setting in seen:
                raise ValueError(
                    f"points[{point.index[0]}] ({point.describe()}) is the same "
                    f"simulation as points[{seen[setting]}] once the values are read "
                    f"({', '.join(f'{k}={_field_value(point.config, k)!r}' for k in flags)})"
                    f"; give each point once")
            seen[setting] = point.index[0]
        return
    for axis, (name, values) in enumerate(axes.items()):
        if name == TRACE_AXIS:
            continue
        converted: dict[int, Any] = {}
        for point in built:
            converted.setdefault(point.index[axis], _field_value(point.config, name))
        items = sorted(converted.items())
        for n, (i, a) in enumerate(items):
            for j, b in items[n + 1:]:
                if _same_setting(a, b):
                    section, field = FLAG_FIELDS[name]
                    owner = _OWNERS.get(section, section)
                    raise ValueError(
                        f"sweep axis {name!r} has the values {values[i]!r} and "
                        f"{values[j]!r}, which are the same setting once read "
                        f"({owner}.{field}={a!r}); give each value once")


def _is_main_guard(test: ast.expr) -> bool:
    """Whether ``test`` is ``__name__ == "__main__"`` (either way round)."""
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1
            and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = (test.left, test.comparators[0])
    return (any(isinstance(x, ast.Name) and x.id == "__name__" for x in sides)
            and any(isinstance(x, ast.Constant) and x.value == "__main__" for x in sides))


def unguarded_main_call() -> tuple[str, int] | None:
    """``(file, line)`` when this call runs in a script's top-level code outside an
    ``if __name__ == "__main__":`` block; None otherwise (a notebook, an
    interactive session, a guarded call, a source that cannot be read).

    Worker processes are spawned: each re-imports the main script, and
    top-level code that starts workers would start them again in every
    worker, which Dask reports as a wall of "Nanny failed to start" tracebacks.
    """
    main = sys.modules.get("__main__")
    if main is None or not getattr(main, "__file__", None):
        return None  # interactive: nothing is re-imported
    if dask_multiprocessing_method() == "fork":
        return None  # forked workers do not re-import the script
    frame = sys._getframe(1)
    while frame is not None and not (frame.f_code.co_name == "<module>"
                                     and frame.f_globals is main.__dict__):
        frame = frame.f_back
    if frame is None:
        return None
    filename, line = frame.f_code.co_filename, frame.f_lineno
    try:
        tree = ast.parse(Path(filename).read_text(), filename)
    except (OSError, SyntaxError, ValueError, UnicodeDecodeError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_guard(node.test) and \
                node.lineno <= line <= (node.end_lineno or node.lineno):
            return None
    return filename, line


def dask_multiprocessing_method() -> str:
    import dask

    return str(dask.config.get("distributed.worker.multiprocessing-method", "spawn"))


def check_main_guard(caller: str = "sweep()") -> None:
    """Refuse, in one line, to start worker processes from unguarded top-level
    script code (see :func:`unguarded_main_call`); ``caller`` names the call."""
    where = unguarded_main_call()
    if where is None:
        return
    filename, line = where
    raise RuntimeError(
        f"{caller} is called at the top level of {filename} (line {line}) without an "
        f"'if __name__ == \"__main__\":' guard; its worker processes re-import that script "
        f"and would start the sweep again in each worker. Put the call under the guard "
        f"(or pass client='serial' to run without worker processes)")
