"""Measured operator latencies: one table, several file formats.

A :class:`Measurements` holds rows of "this operator, at this shape, took this
long on this device". Each row carries the :class:`~llmsim_nb.models.ops.Op`
objects it measured (built with the same template as a simulation, so the
shapes, FLOPs and bytes follow one convention), which is what
:func:`~llmsim_nb.fidelity.calibration.calibrate`, the ``profiled`` engine and the
op-level benchmark consume.

Our CSV schema (``load_measurements`` reads it; extra columns are ignored)
-------------------------------------------------------------------------
============  ========  ===========================================================
column        required  meaning
============  ========  ===========================================================
model         yes       catalog model name or alias (``llama-2-7b``)
op            yes       an op name of the model's block (``qkv_proj``, ``ffn_up``,
                        ``attn_score``...), or ``attention`` for one fused
                        attention kernel (``attn_score + attn_softmax +
                        attn_context``)
num_tokens    yes       tokens the op computes: rows of a GEMM / vector op; for
                        attention, the query tokens of one request
context       no        attention only: tokens already cached (default 0)
tp            no        tensor-parallel degree of the measured shard (default 1)
latency_s     yes       measured seconds (median of repeats), > 0
device        no        what it ran on (label; default ``"unknown"``)
============  ========  ===========================================================

Other formats read by :func:`load_measurements`:

- Vidur's compute profiles (``vidur_a100/compute/<org>/<model>/mlp.csv``):
  per-op ``time_stats.<op>.median`` in milliseconds at ``num_tokens`` and
  ``num_tensor_parallel_workers``; the model geometry comes from its columns.
- LLMCompass's A100 tables (``llmcompass_a100/``): ``matmul`` (M, N, K,
  ``latency_ms``), ``softmax`` and ``layernorm`` (M, N, ``throughput_G_elements_per_s``),
  ``gelu`` (``num_elements``); stand-alone kernels.
- LLMServingSim 2.0's ``perf_model_RTX3090.csv`` (``layer_name``, ``input``,
  ``kv_cache``, ``latency(ns)``) for Llama-3.1-8B.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..models.catalog import get_model
from ..models.ops import BatchShape, Op, OpKind
from ..models.spec import ModelSpec
from ..models.template import BlockTemplate, OpTemplate, decoder_template
from ..parallel.sharding import shard_template

#: Op name that stands for the three attention ops timed as one kernel.
ATTENTION = "attention"

#: Vidur's op names -> ours.
VIDUR_OPS = {"emb": "embed", "input_layernorm": "input_norm", "attn_pre_proj": "qkv_proj",
             "attn_rope": "rope", "attn_post_proj": "out_proj",
             "post_attention_layernorm": "post_attn_norm", "mlp_up_proj": "ffn_up",
             "mlp_act": "ffn_act", "mlp_down_proj": "ffn_down", "add": "attn_residual"}

#: LLMServingSim 2.0 RTX 3090 layer names -> ours (several of theirs sum to one of ours).
PERF_MODEL_OPS = {"embedding": "embed", "input_layernorm": "input_norm", "q_proj": "qkv_proj",
                  "k_proj": "qkv_proj", "v_proj": "qkv_proj", "rope": "rope",
                  "attn": ATTENTION, "o_proj": "out_proj", "post_layernorm": "post_attn_norm",
                  "gate_proj": "ffn_up", "up_proj": "ffn_up", "act_fn": "ffn_act",
                  "down_proj": "ffn_down", "final_layernorm": "final_norm",
                  "lm_head": "lm_head"}


@dataclass(frozen=True)
class Measurement:
    """One measured latency.

    Attributes
    ----------
    source : str
        Where the row came from (``"vidur"``, ``"llmcompass"``, a file name).
    device : str
    label : str
        The measured operator as its source names it (the per-kind grouping of
        error reports), e.g. ``"vidur/attn_pre_proj"``.
    ops : tuple of Op
        What was measured; its predicted latency is the sum over these ops.
    latency : float
        Measured seconds.
    standalone : bool
        A stand-alone kernel (e.g. a softmax writing to DRAM) rather than a
        serving-block op; engines time it with ``time_vector_op`` when they have one.
    num_tokens, context : int
        The shape's token counts (for interpolation and reports).
    key : tuple
        Shape key the ``profiled`` engine interpolates within.
    """

    source: str
    device: str
    label: str
    ops: tuple[Op, ...]
    latency: float
    standalone: bool = False
    num_tokens: int = 0
    context: int = 0
    key: tuple = field(default=())

    @property
    def kind(self) -> str:
        """``attention`` for a fused attention row, else the op kind's value."""
        if len(self.ops) > 1 or self.ops[0].kind.is_attention:
            return ATTENTION
        return self.ops[0].kind.value


@dataclass(frozen=True)
class Measurements:
    """A list of :class:`Measurement` with table views."""

    rows: tuple[Measurement, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __add__(self, other: "Measurements") -> "Measurements":
        return Measurements(self.rows + other.rows)

    @property
    def latency(self) -> np.ndarray:
        return np.array([r.latency for r in self.rows], dtype=np.float64)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.rows], dtype=object)

    def select(self, mask) -> "Measurements":
        mask = np.asarray(mask, dtype=bool)
        return Measurements(tuple(r for r, keep in zip(self.rows, mask) if keep))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"source": [r.source for r in self.rows],
                             "device": [r.device for r in self.rows],
                             "label": self.labels, "kind": [r.kind for r in self.rows],
                             "num_tokens": [r.num_tokens for r in self.rows],
                             "context": [r.context for r in self.rows],
                             "latency_s": self.latency})


# --------------------------------------------------------------------- builders
def _ops_for(template: BlockTemplate, op_name: str, num_tokens: int, context: int
             ) -> tuple[Op, ...]:
    """The ops ``op_name`` of ``template`` runs for one request of ``num_tokens``
    query tokens after ``context`` cached ones (non-attention ops: ``num_tokens`` rows)."""
    batch = BatchShape.from_lists([num_tokens], [context])
    recipes = template.embedding + template.block + template.head
    if op_name == ATTENTION:
        chosen = [t for t in template.block if t.kind.is_attention]
    else:
        chosen = [t for t in recipes if t.name == op_name]
    if not chosen:
        raise ValueError(f"op={op_name!r} is not an op of model {template.name!r}; known: "
                         f"{sorted({t.name for t in recipes} | {ATTENTION})}")
    return tuple(t.instantiate(batch, template.dtype_bytes) for t in chosen)


def _shape_key(ops: tuple[Op, ...], template: BlockTemplate | None) -> tuple:
    """What identifies a measured curve apart from its token counts."""
    op = ops[0]
    if op.kind.is_attention:
        heads = next(t for t in template.block if t.kind.is_attention)
        return (ATTENTION if len(ops) > 1 else op.kind.value, heads.num_heads,
                heads.num_kv_heads, heads.head_dim)
    return (op.kind.value, int(op.n[0]), int(op.k[0]), op.batch, float(op.weight_bytes))


def _template(model: ModelSpec, tp: int) -> BlockTemplate:
    return shard_template(decoder_template(model), tp, by_heads=True)


def from_rows(frame: pd.DataFrame, source: str) -> Measurements:
    """Measurements from a frame in our CSV schema (see the module docstring)."""
    missing = {"model", "op", "num_tokens", "latency_s"} - set(frame.columns)
    if missing:
        raise ValueError(f"measurements {source!r} lack column(s) {sorted(missing)}; "
                         "required: model, op, num_tokens, latency_s")
    rows = []
    templates: dict[tuple[str, int], BlockTemplate] = {}
    for i, rec in enumerate(frame.to_dict("records")):
        tp = int(rec.get("tp", 1) if pd.notna(rec.get("tp", 1)) else 1)
        context = int(rec.get("context", 0) if pd.notna(rec.get("context", 0)) else 0)
        tokens, latency = int(rec["num_tokens"]), float(rec["latency_s"])
        if tokens < 1 or context < 0 or tp < 1:
            raise ValueError(f"measurements {source!r} row {i}: num_tokens={tokens} must be "
                             f">= 1, context={context} >= 0 and tp={tp} >= 1")
        if not np.isfinite(latency) or latency <= 0:
            raise ValueError(f"measurements {source!r} row {i}: latency_s={latency!r} must be "
                             "a finite number of seconds > 0")
        key = (str(rec["model"]), tp)
        if key not in templates:
            templates[key] = _template(get_model(key[0]), tp)
        template = templates[key]
        ops = _ops_for(template, str(rec["op"]), tokens, context)
        rows.append(Measurement(source, str(rec.get("device", "unknown")),
                                f"{source}/{rec['op']}", ops, latency, False, tokens,
                                context, _shape_key(ops, template)))
    return Measurements(tuple(rows))


def _vidur_model(frame: pd.DataFrame, name: str) -> ModelSpec:
    first = frame.iloc[0]
    gated = bool(first["use_gated_mlp"])
    return ModelSpec(name, num_layers=1, hidden_size=int(first["n_embd"]),
                     num_heads=int(first["n_head"]), num_kv_heads=int(first["n_kv_head"]),
                     ffn_hidden_size=int(first["n_expanded_embd"]),
                     vocab_size=int(first["vocab_size"]),
                     activation="swiglu" if gated else "gelu",
                     norm="rmsnorm" if gated else "layernorm", position="rope",
                     bias=not gated, tied_embeddings=False)


def load_vidur(path: str | Path, device: str = "a100") -> Measurements:
    """Vidur's ``mlp.csv`` profile: every op column at every (tokens, TP) row."""
    path = Path(path)
    frame = pd.read_csv(path)
    model = _vidur_model(frame, path.parent.name)
    rows = []
    for tp, group in frame.groupby("num_tensor_parallel_workers"):
        template = _template(model, int(tp))
        for theirs, ours in VIDUR_OPS.items():
            column = f"time_stats.{theirs}.median"
            if column not in group:
                continue
            for tokens, ms in zip(group["num_tokens"].tolist(), group[column].tolist()):
                if not np.isfinite(ms) or ms <= 0:
                    continue
                ops = _ops_for(template, ours, int(tokens), 0)
                rows.append(Measurement("vidur", device, f"vidur/{theirs}", ops, ms * 1e-3,
                                        False, int(tokens), 0, _shape_key(ops, template)))
    return Measurements(tuple(rows))


def _vector_op(name: str, kind: OpKind, rows: int, width: int, flops: float,
               params: int = 0) -> Op:
    """A stand-alone fp16 vector kernel over ``rows x width`` elements (one read of
    the input and the parameters, one write of the output)."""
    one = np.ones(1, dtype=np.int64)
    elements = float(rows) * width
    return Op(name, kind, one * rows, one * width, one, 1, np.array([flops * elements]),
              np.array([2.0 * (elements + params)]), np.array([2.0 * elements]),
              weight_bytes=2.0 * params)


def load_llmcompass(folder: str | Path, device: str = "a100") -> Measurements:
    """LLMCompass's stand-alone A100 kernels (matmul, softmax, layernorm, gelu)."""
    folder = Path(folder)
    rows = []
    for file in sorted(folder.glob("*.csv")):
        kind = file.name.split("_")[0]
        frame = pd.read_csv(file)
        for rec in frame.to_dict("records"):
            if kind == "matmul":
                m, n, k = int(rec["M"]), int(rec["N"]), int(rec["K"])
                recipe = OpTemplate("matmul", OpKind.GEMM, weight_k=k, weight_n=n)
                op = recipe.instantiate(BatchShape.from_lists([1], [0]), 2, num_rows=m)
                latency, tokens = float(rec["latency_ms"]) * 1e-3, m
            elif kind in ("softmax", "layernorm"):
                m, n = int(rec["M"]), int(rec["N"])
                op = (_vector_op(kind, OpKind.SOFTMAX, m, n, 5.0) if kind == "softmax" else
                      _vector_op(kind, OpKind.NORM, m, n, 8.0, params=2 * n))
                latency, tokens = m * n / (float(rec["throughput_G_elements_per_s"]) * 1e9), m
            elif kind == "gelu":
                elements = int(rec["num_elements"])
                op = _vector_op(kind, OpKind.ACTIVATION, elements, 1, 8.0)
                latency = elements / (float(rec["throughput_G_elements_per_s"]) * 1e9)
                tokens = elements
            else:
                continue
            rows.append(Measurement("llmcompass", device, f"llmcompass/{kind}", (op,), latency,
                                    kind == "softmax", tokens, 0, ()))
    return Measurements(tuple(rows))


def load_perf_model(path: str | Path, device: str = "rtx3090") -> Measurements:
    """LLMServingSim 2.0's per-layer table (``layer_name, input, kv_cache, latency(ns)``).

    Layers that are one op of ours (``q_proj + k_proj + v_proj`` is ``qkv_proj``)
    are summed per (input, kv_cache) point.
    """
    frame = pd.read_csv(path)
    frame = frame.assign(op=frame["layer_name"].map(PERF_MODEL_OPS)).dropna(subset=["op"])
    # Runs of the same point (the table holds repeats) are averaged first.
    points = frame.groupby(["model", "layer_name", "op", "input", "kv_cache"],
                           as_index=False)["latency(ns)"].median()
    summed = points.groupby(["model", "op", "input", "kv_cache"],
                            as_index=False)["latency(ns)"].sum()
    rows = []
    templates: dict[str, BlockTemplate] = {}
    for rec in summed.to_dict("records"):
        name = str(rec["model"])
        if name not in templates:
            templates[name] = _template(get_model(name), 1)
        template = templates[name]
        tokens, context = int(rec["input"]), int(rec["kv_cache"])
        ops = _ops_for(template, str(rec["op"]), tokens, context)
        rows.append(Measurement("perf_model", device, f"perf_model/{rec['op']}", ops,
                                float(rec["latency(ns)"]) * 1e-9, False, tokens, context,
                                _shape_key(ops, template)))
    return Measurements(tuple(rows))


def load_measurements(path: str | Path, device: str | None = None) -> Measurements:
    """Read measured op latencies from ``path`` in any supported format.

    A folder is read as LLMCompass's tables if it holds ``matmul_*.csv``, else
    every ``mlp.csv`` under it is read as a Vidur profile. A CSV is told apart by
    its columns.
    """
    path = Path(path)
    if path.is_dir():
        if any(path.glob("matmul_*.csv")):
            return load_llmcompass(path, device or "a100")
        files = sorted(path.rglob("mlp.csv"))
        if not files:
            raise ValueError(f"measurement folder {str(path)!r} holds neither LLMCompass "
                             "tables (matmul_*.csv) nor Vidur profiles (mlp.csv)")
        out = Measurements(())
        for file in files:
            out = out + load_vidur(file, device or "a100")
        return out
    if not path.is_file():
        raise ValueError(f"measurement file {str(path)!r} does not exist")
    header = set(pd.read_csv(path, nrows=0).columns)
    if "num_tensor_parallel_workers" in header:
        return load_vidur(path, device or "a100")
    if {"layer_name", "latency(ns)"} <= header:
        return load_perf_model(path, device or "rtx3090")
    frame = pd.read_csv(path)
    if device is not None and "device" not in frame:
        frame = frame.assign(device=device)
    return from_rows(frame, path.stem)


__all__ = ["ATTENTION", "Measurement", "Measurements", "from_rows", "load_llmcompass",
           "load_measurements", "load_perf_model", "load_vidur"]
