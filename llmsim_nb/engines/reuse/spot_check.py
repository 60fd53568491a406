"""Spot checks: a loaded cache file's timings must be the engine's own.

A cache file passes :mod:`.file`'s checks when it is well formed, but a file
can be well formed and still wrong: written by another version of an engine
whose formulas changed, or edited by hand (every timing x 1000 would pass the
format checks and silently slow every run). Before a file is used, a few of its
timings, picked by a fixed-seed generator so that the check is reproducible,
are timed again by the engine and must agree (to 1e-12 relative: a table is
timed as a vector, the check one value at a time). Only pure engines are
checked (:attr:`~llmsim_nb.engines.base.Engine.pure`): timing an impure engine
again has effects (the profiled engine counts its fallbacks).
"""

from __future__ import annotations

import math

import numpy as np

from ...models.ops import BatchShape, Op
from ..base import Engine
from .keys import DECODE, ROW_CHUNK, is_attention_key, is_rows_key

#: Timings re-timed per kind (instance entries, row tables, attention tables).
SAMPLES_PER_KIND = 8
#: Relative agreement required.
TOLERANCE = 1e-12


def _agrees(saved: float, fresh: float) -> bool:
    return math.isclose(saved, fresh, rel_tol=TOLERANCE, abs_tol=0.0)


def spot_check(contents, engine: Engine, where: str) -> None:
    """Re-time a sample of ``contents`` (a :class:`~.file.CacheContents`) with ``engine``.

    Raises
    ------
    ValueError
        ``where`` (the file), the first timing that disagrees, the saved and
        the engine's value.
    """
    if not engine.pure:
        return
    rng = np.random.default_rng(0)

    def pick(items: list) -> list:
        if len(items) <= SAMPLES_PER_KIND:
            return items
        return [items[i] for i in sorted(rng.choice(len(items), SAMPLES_PER_KIND,
                                                    replace=False).tolist())]

    def refuse(what: str, saved: float, fresh: float) -> None:
        raise ValueError(f"reuse cache {where!r} cannot be used: it times {what} at {saved!r} s "
                         f"but the engine gives {fresh!r} s (a file of another engine version, "
                         f"or edited)")

    for key, value in pick(contents.entries):
        name, kind, batch, m, n, k, flops, read, written = key
        op = Op(name, kind, np.array([m], dtype=np.int64), np.array([n], dtype=np.int64),
                np.array([k], dtype=np.int64), int(batch), np.array([flops], dtype=float),
                np.array([read], dtype=float), np.array([written], dtype=float))
        timing = engine.time_op(op)
        fresh = (timing.latency.item(0), timing.compute_latency.item(0),
                 timing.memory_latency.item(0))
        for saved_value, fresh_value in zip(value, fresh):
            if not _agrees(saved_value, fresh_value):
                refuse(f"op {name!r} (m={m}, n={n}, k={k})", saved_value, fresh_value)
    rows = [(key, table) for key, table in contents.tables if is_rows_key(key)]
    for (_, template, dtype_bytes, chunk), table in pick(rows):
        timed = np.flatnonzero(~np.isnan(table))
        if not len(timed):
            continue
        cell = int(timed[rng.integers(len(timed))])
        count = chunk * ROW_CHUNK + cell
        fresh = engine.time_op(template.dense_rows(np.array([count], dtype=np.int64),
                                                   float(dtype_bytes))).latency.item(0)
        if not _agrees(float(table[cell]), fresh):
            refuse(f"op {template.name!r} on {count} token rows", float(table[cell]), fresh)
    attention = [(key, table) for key, table in contents.tables if is_attention_key(key)]
    for key, table in pick(attention):
        _, shape, dtype_bytes, templates = key.parts
        timed = np.flatnonzero(~np.isnan(table[0])) if table.shape[1] else np.array([])
        if not len(timed):
            continue
        length = int(timed[rng.integers(len(timed))])
        one = np.array([length], dtype=np.int64)
        ones = np.ones(1, dtype=np.int64)
        part = (BatchShape(one, ones, one, ones) if shape == DECODE
                else BatchShape(one, one, np.zeros(1, dtype=np.int64), ones))
        row = int(rng.integers(len(templates)))
        fresh = engine.time_op(templates[row].instantiate(part, dtype_bytes)).latency.item(0)
        if not _agrees(float(table[row, length]), fresh):
            what = "decode" if shape == DECODE else "prompt"
            refuse(f"op {templates[row].name!r} ({what}, length {length})",
                   float(table[row, length]), fresh)
