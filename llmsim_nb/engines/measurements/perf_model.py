"""LLMServingSim 2.0's per-layer perf model table as measurements."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...models.catalog import get_model
from ...models.template import BlockTemplate
from .csv_table import _prefixed, _read_table, _Table
from .rows import (ATTENTION, Measurement, Measurements, _ops_for, _shape_key,
                                _template)

#: LLMServingSim 2.0 RTX 3090 layer names -> ours (several of theirs sum to one of ours).
PERF_MODEL_OPS = {"embedding": "embed", "input_layernorm": "input_norm", "q_proj": "qkv_proj",
                  "k_proj": "qkv_proj", "v_proj": "qkv_proj", "rope": "rope",
                  "attn": ATTENTION, "o_proj": "out_proj", "post_layernorm": "post_attn_norm",
                  "gate_proj": "ffn_up", "up_proj": "ffn_up", "act_fn": "ffn_act",
                  "down_proj": "ffn_down", "final_layernorm": "final_norm",
                  "lm_head": "lm_head"}


PERF_MODEL_COLUMNS = ("model", "layer_name", "input", "kv_cache", "latency(ns)")


def _load_perf_model_table(table: _Table, device: str) -> Measurements:
    table.require(PERF_MODEL_COLUMNS, "an LLMServingSim perf model table")
    names = [value or table.text(i, "model") for i, value in enumerate(table.column("model"))]
    layers = [value or table.text(i, "layer_name")
              for i, value in enumerate(table.column("layer_name"))]
    for i, layer in enumerate(layers):
        if layer not in PERF_MODEL_OPS:
            raise table.fail(i, "layer_name", layer, f"is not a layer this reader knows; known: "
                             f"{list(PERF_MODEL_OPS)}")
    frame = pd.DataFrame({
        "model": names, "layer_name": layers, "op": [PERF_MODEL_OPS[x] for x in layers],
        "input": np.array(table.integers("input", 1), dtype=np.int64),
        "kv_cache": np.array(table.integers("kv_cache", 0), dtype=np.int64),
        "latency(ns)": np.array(table.positives("latency(ns)", "nanoseconds"),
                                dtype=np.float64)})
    first_row = {name: names.index(name) for name in dict.fromkeys(names)}
    # Runs of the same point (the table holds repeats) are reduced to their median first.
    points = frame.groupby(["model", "layer_name", "op", "input", "kv_cache"],
                           as_index=False)["latency(ns)"].median()
    summed = points.groupby(["model", "op", "input", "kv_cache"],
                            as_index=False)["latency(ns)"].sum()
    rows = []
    templates: dict[str, BlockTemplate] = {}
    for rec in summed.to_dict("records"):
        name = str(rec["model"])
        if name not in templates:
            try:
                templates[name] = _template(get_model(name), 1)
            except ValueError as exc:
                raise _prefixed(table, first_row[name], "model", name, exc) from None
        template = templates[name]
        tokens, context = int(rec["input"]), int(rec["kv_cache"])
        try:
            ops = _ops_for(template, str(rec["op"]), tokens, context)
        except ValueError as exc:
            i = next(j for j, (m, x) in enumerate(zip(names, layers))
                     if m == name and PERF_MODEL_OPS[x] == rec["op"])
            raise _prefixed(table, i, "layer_name", layers[i], exc) from None
        rows.append(Measurement("perf_model", device, f"perf_model/{rec['op']}", ops,
                                float(rec["latency(ns)"]) * 1e-9, False, tokens, context,
                                _shape_key(ops, template)))
    return Measurements(tuple(rows))


def load_perf_model(path: str | Path, device: str = "rtx3090") -> Measurements:
    """LLMServingSim 2.0's per-layer table (``layer_name, input, kv_cache, latency(ns)``).

    Repeats of a (layer, input, kv_cache) point are reduced to their median;
    layers that are one op of ours (``q_proj + k_proj + v_proj`` is ``qkv_proj``)
    are then summed per (input, kv_cache) point.
    """
    return _load_perf_model_table(_read_table(Path(path), "LLMServingSim perf model"), device)
