"""Vidur's compute profiles (``mlp.csv``) as measurements."""

from __future__ import annotations

from pathlib import Path

from ...models.spec import ModelSpec
from .csv_table import MAX_SHAPE, _prefixed, _read_table, _Table
from .rows import Measurement, Measurements, _ops_for, _shape_key, _template

#: Vidur's op names -> ours.
VIDUR_OPS = {"emb": "embed", "input_layernorm": "input_norm", "attn_pre_proj": "qkv_proj",
             "attn_rope": "rope", "attn_post_proj": "out_proj",
             "post_attention_layernorm": "post_attn_norm", "mlp_up_proj": "ffn_up",
             "mlp_act": "ffn_act", "mlp_down_proj": "ffn_down", "add": "attn_residual"}


VIDUR_GEOMETRY = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size",
                  "use_gated_mlp")


def _vidur_model(table: _Table, name: str) -> ModelSpec:
    values = {}
    for column in VIDUR_GEOMETRY:
        for i in range(len(table)):
            value = (table.boolean(i, column) if column == "use_gated_mlp"
                     else table.integer(i, column, 1, MAX_SHAPE))
            if i == 0:
                values[column] = value
            elif value != values[column]:
                raise table.fail(i, column, table.cell(i, column), f"differs from row 1's "
                                 f"{table.cell(0, column)!r}; one profile describes one model")
    gated = values["use_gated_mlp"]
    try:
        return ModelSpec(name, num_layers=1, hidden_size=values["n_embd"],
                         num_heads=values["n_head"], num_kv_heads=values["n_kv_head"],
                         ffn_hidden_size=values["n_expanded_embd"],
                         vocab_size=values["vocab_size"],
                         activation="swiglu" if gated else "gelu",
                         norm="rmsnorm" if gated else "layernorm", position="rope",
                         bias=not gated, tied_embeddings=False)
    except ValueError as exc:
        raise ValueError(f"{table.origin}: the geometry columns {list(VIDUR_GEOMETRY)} do not "
                         f"describe a model: {exc}") from None


def _load_vidur_table(table: _Table, name: str, device: str) -> Measurements:
    table.require(("num_tokens", "num_tensor_parallel_workers") + VIDUR_GEOMETRY,
                  "a Vidur compute profile (mlp.csv)")
    model = _vidur_model(table, name)
    tokens = table.integers("num_tokens", 1)
    tps = table.integers("num_tensor_parallel_workers", 1, MAX_SHAPE)
    # Per op column: every cell a finite latency > 0, or every cell empty (not profiled).
    latencies: dict[str, list[float]] = {}
    for theirs in VIDUR_OPS:
        column = f"time_stats.{theirs}.median"
        if column not in table.header or not any(table.column(column)):
            continue
        latencies[theirs] = table.positives(column, "milliseconds")
    if not latencies:
        raise ValueError(f"{table.origin}: no column 'time_stats.<op>.median' with values for "
                         f"an op this reader knows; known ops: {list(VIDUR_OPS)}")
    rows = []
    for tp in sorted(set(tps)):
        members = [i for i in range(len(table)) if tps[i] == tp]
        try:
            template = _template(model, tp)
        except ValueError as exc:
            i = members[0]
            raise _prefixed(table, i, "num_tensor_parallel_workers",
                            table.cell(i, "num_tensor_parallel_workers"), exc) from None
        for theirs, ours in VIDUR_OPS.items():
            if theirs not in latencies:
                continue
            for i in members:
                try:
                    ops = _ops_for(template, ours, tokens[i], 0)
                except ValueError as exc:
                    raise ValueError(f"{table.origin}: column 'time_stats.{theirs}.median': "
                                     f"{exc}") from None
                rows.append(Measurement("vidur", device, f"vidur/{theirs}", ops,
                                        latencies[theirs][i] * 1e-3, False, tokens[i], 0,
                                        _shape_key(ops, template)))
    return Measurements(tuple(rows))


def load_vidur(path: str | Path, device: str = "a100") -> Measurements:
    """Vidur's ``mlp.csv`` profile: every op column at every (tokens, TP) row.

    The model geometry comes from the columns (the same in every row); the
    model is named after the file's folder. Repeated (tokens, TP) rows are kept.
    """
    path = Path(path)
    return _load_vidur_table(_read_table(path, "Vidur compute profile"), path.parent.name,
                             device)
