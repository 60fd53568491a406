"""Our measurement CSV schema (see :mod:`.loading` for the columns)."""

from __future__ import annotations

import pandas as pd

from ...models.catalog import get_model
from ...models.spec import ModelSpec
from ...models.template import BlockTemplate
from .csv_table import MAX_SHAPE, _frame_table, _prefixed, _Table
from .rows import Measurement, Measurements, _ops_for, _shape_key, _template

OUR_REQUIRED = ("model", "op", "num_tokens", "latency_s")


def _from_table(table: _Table, source: str, device: str | None = None) -> Measurements:
    table.require(OUR_REQUIRED, "a measurement table (optional: context, tp, device)")
    if not len(table):
        raise ValueError(f"{table.origin}: holds no rows; a measurement table needs at least one")
    rows = []
    templates: dict[tuple[str, int], BlockTemplate] = {}
    models: dict[str, ModelSpec] = {}
    seen: dict[tuple, tuple[int, float]] = {}
    for i in range(len(table)):
        name, op_name = table.text(i, "model"), table.text(i, "op")
        tokens = table.integer(i, "num_tokens", 1)
        latency = table.positive(i, "latency_s", "seconds")
        tp = table.integer(i, "tp", 1, MAX_SHAPE) if "tp" in table.header else 1
        context_given = "context" in table.header and table.cell(i, "context") != ""
        context = table.integer(i, "context", 0) if context_given else 0
        label = table.text(i, "device") if "device" in table.header else (device or "unknown")
        if name not in models:
            try:
                models[name] = get_model(name)
            except ValueError as exc:
                raise _prefixed(table, i, "model", name, exc) from None
        key = (name, tp)
        if key not in templates:
            try:
                templates[key] = _template(models[name], tp)
            except ValueError as exc:
                tp_text = table.cell(i, "tp") if "tp" in table.header else "1"
                raise _prefixed(table, i, "tp", tp_text, exc) from None
        template = templates[key]
        try:
            ops = _ops_for(template, op_name, tokens, context)
        except ValueError as exc:
            raise _prefixed(table, i, "op", op_name, exc) from None
        if not context_given and "context" in table.header and any(
                o.kind.is_attention for o in ops):
            raise table.fail(i, "context", "", f"is empty; op {op_name!r} is an attention op, "
                             "so the row must say how many tokens were cached (write 0 for "
                             "none)")
        point = (models[name].name, op_name, tokens, context, tp, label)
        if point in seen and seen[point][1] != latency:
            j = seen[point][0]
            raise ValueError(f"{table.origin}: {table.where(i)}: column 'latency_s' = "
                             f"{table.cell(i, 'latency_s')!r} conflicts with {table.where(j)} "
                             f"= {table.cell(j, 'latency_s')!r} for the same point (model "
                             f"{name!r}, op {op_name!r}, num_tokens={tokens}, context="
                             f"{context}, tp={tp}, device {label!r}); a row is the median of "
                             "its repeats, so keep one")
        seen.setdefault(point, (i, latency))
        rows.append(Measurement(source, label, f"{source}/{op_name}", ops, latency, False,
                                tokens, context, _shape_key(ops, template)))
    return Measurements(tuple(rows))


def from_rows(frame: pd.DataFrame, source: str) -> Measurements:
    """Measurements from a frame in our CSV schema (see the module docstring).

    A missing value (NaN, None) counts as an empty cell; messages name the
    frame as ``measurements 'source'`` and rows from 1.
    """
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"measurements {source!r}: expected a pandas DataFrame, got "
                         f"{type(frame).__name__}")
    return _from_table(_frame_table(frame, f"measurements {source!r}"), source)
