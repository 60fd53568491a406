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

Bad files
---------
Every reader checks the whole file before it builds a row and refuses what does
not fit with one ``ValueError`` line naming the file, the row and (1-based)
line, the column and the value: a missing path, a directory where a file is
expected, bytes that are not UTF-8 text, an empty file, a header with no rows,
missing or duplicated columns, rows with the wrong number of fields, empty
cells, text where a number belongs, latencies (or throughputs) that are NaN,
infinite, zero or negative, fractional or out-of-range token counts, tensor
parallel degrees or shapes (``4.0`` is 4; ``4.5`` is refused, never
truncated), unknown models, ops and layer names, and Vidur geometry columns
that change between rows. Nothing is skipped, clamped or defaulted, with these
documented exceptions: ``context`` may be empty on a row that is not attention
(it does not apply there; it counts as 0), and a Vidur op column that is empty
in *every* row means that op was not profiled.

Repeated points: in our schema a row is already the median of its repeats, so
two rows of the same point (model, op, ``num_tokens``, ``context``, ``tp``,
``device``) with different latencies are refused as conflicting (identical
repeats are kept). The other formats hold repeats by design: LLMServingSim's
table is reduced to the median of each (layer, input, kv_cache) point; Vidur's
and LLMCompass's repeated rows are kept as separate measurements (the
``profiled`` engine averages points with the same shape, calibration fits each).
"""

from __future__ import annotations

import csv
import io
import math
import re
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


# ------------------------------------------------------------------ reading
#: Largest token count (``num_tokens``, ``context``, ``input``, ``kv_cache``) a file may hold.
MAX_TOKENS = 2**31 - 1
#: Largest shape (matrix side, element count, TP degree) a file may hold: exact in float64.
MAX_SHAPE = 2**53
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NONFINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)
_INTEGER = re.compile(r"[+-]?[0-9]+")
_TRUE, _FALSE = {"true", "1"}, {"false", "0"}


def _open_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``, or a one-line ValueError naming it."""
    if not path.exists():
        raise ValueError(f"{what} {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"{what} {str(path)!r} is a directory, expected a file")
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} is not a regular file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{what} {str(path)!r} cannot be read ({exc.strerror or exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"{path}: line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x} at "
                         f"offset {exc.start}); expected a {what} in text form, not binary or "
                         "compressed data") from None


@dataclass(frozen=True)
class _Table:
    """Raw cells of a delimited text file (or a DataFrame), with what messages need."""

    origin: str  # the file path (or "measurements 'name'") that messages start with
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]  # stripped cells; "" is an empty cell
    lines: tuple[int, ...] | None  # 1-based line of each row; None for a DataFrame

    def __len__(self) -> int:
        return len(self.rows)

    def where(self, i: int) -> str:
        return f"row {i + 1} (line {self.lines[i]})" if self.lines else f"row {i + 1}"

    def fail(self, i: int, column: str, value: str, allowed: str) -> ValueError:
        return ValueError(f"{self.origin}: {self.where(i)}: column {column!r} = {value!r} "
                          f"{allowed}")

    def require(self, columns, what: str) -> None:
        missing = [c for c in columns if c not in self.header]
        if missing:
            raise ValueError(f"{self.origin}: missing column(s) {missing} of {what}; found "
                             f"columns {list(self.header)}; required: {list(columns)}")

    def cell(self, i: int, column: str) -> str:
        return self.rows[i][self.header.index(column)]

    def column(self, column: str) -> list[str]:
        j = self.header.index(column)
        return [row[j] for row in self.rows]

    def text(self, i: int, column: str) -> str:
        value = self.cell(i, column)
        if not value:
            raise self.fail(i, column, value, "is empty; every row needs a value here")
        return value

    def number(self, i: int, column: str, value: str | None = None) -> float:
        """Any real number written in decimal notation (NaN and inf included)."""
        value = self.cell(i, column) if value is None else value
        if _NUMBER.fullmatch(value) is None and _NONFINITE.fullmatch(value) is None:
            if not value:
                raise self.fail(i, column, value, "is empty; every row needs a number here "
                                "(an empty cell is never read as 0)")
            raise self.fail(i, column, value, "is not a number")
        return float(value)

    def positive(self, i: int, column: str, unit: str) -> float:
        value = self.cell(i, column)
        x = self.number(i, column, value)
        if not math.isfinite(x) or x <= 0:
            raise self.fail(i, column, value, f"must be a finite number of {unit} > 0")
        return x

    def integer(self, i: int, column: str, minimum: int, maximum: int = MAX_TOKENS,
                what: str = "a whole number") -> int:
        value = self.cell(i, column)
        if _INTEGER.fullmatch(value):
            n = int(value)
        else:
            x = self.number(i, column, value)
            if not math.isfinite(x) or x != math.floor(x) or abs(x) > MAX_SHAPE:
                raise self.fail(i, column, value, f"is not {what}; allowed: integers "
                                f"{minimum} .. {maximum} (fractions are refused, never "
                                "truncated)")
            n = int(x)
        if not minimum <= n <= maximum:
            raise self.fail(i, column, value, f"is out of range; allowed: integers {minimum} "
                            f".. {maximum}")
        return n

    def integers(self, column: str, minimum: int, maximum: int = MAX_TOKENS,
                 what: str = "a whole number") -> list[int]:
        """:meth:`integer` of every row (a fast path for plain integer literals)."""
        j, out = self.header.index(column), []
        for i, row in enumerate(self.rows):
            value = row[j]
            if _INTEGER.fullmatch(value) and minimum <= int(value) <= maximum:
                out.append(int(value))
            else:
                out.append(self.integer(i, column, minimum, maximum, what))
        return out

    def positives(self, column: str, unit: str) -> list[float]:
        """:meth:`positive` of every row."""
        j, out = self.header.index(column), []
        for i, row in enumerate(self.rows):
            value = row[j]
            x = float(value) if _NUMBER.fullmatch(value) else math.nan
            out.append(x if 0 < x < math.inf else self.positive(i, column, unit))
        return out

    def boolean(self, i: int, column: str) -> bool:
        value = self.cell(i, column)
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise self.fail(i, column, value, "is not a boolean; allowed: True, False, 1, 0")


def _read_table(path: Path, what: str, delimiter: str = ",") -> _Table:
    """Parse a delimited text file whole: header, rows, line numbers; refuse bad structure."""
    text = _open_text(path, what)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    line = 0
    try:
        for record in reader:
            first, line = line + 1, reader.line_num
            if len(record) > 1 or (record and record[0].strip()):  # skip blank lines only
                records.append((first, [cell.strip() for cell in record]))
    except csv.Error as exc:
        raise ValueError(f"{path}: line {reader.line_num}: not valid CSV ({exc})") from None
    if not records:
        raise ValueError(f"{path}: file is empty; expected a header line and rows of a {what}")
    (header_line, header), body = records[0], records[1:]
    named = [h for h in header if h]
    duplicates = sorted({h for h in named if named.count(h) > 1})
    if duplicates:
        raise ValueError(f"{path}: line {header_line}: duplicate column(s) {duplicates}")
    if not body:
        raise ValueError(f"{path}: has a header but no data rows (0 rows); a {what} needs at "
                         "least one")
    for k, (n, row) in enumerate(body):
        if len(row) != len(header):
            raise ValueError(f"{path}: row {k + 1} (line {n}): has {len(row)} fields, the "
                             f"header has {len(header)} ({header})")
    return _Table(str(path), tuple(header), tuple(tuple(r) for _, r in body),
                  tuple(n for n, _ in body))


def _frame_cell(value) -> str:
    """A DataFrame value as the text a CSV would hold ("" for a missing value)."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value).strip()


def _frame_table(frame: pd.DataFrame, origin: str) -> _Table:
    header = tuple(str(c) for c in frame.columns)
    rows = tuple(tuple(_frame_cell(v) for v in rec) for rec in frame.itertuples(index=False))
    return _Table(origin, header, rows, None)


def _prefixed(table: _Table, i: int, column: str, value: str, exc: ValueError) -> ValueError:
    return ValueError(f"{table.origin}: {table.where(i)}: column {column!r} = {value!r}: {exc}")


# ------------------------------------------------------------------ our schema
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


# ------------------------------------------------------------------ Vidur
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


# ------------------------------------------------------------------ LLMCompass
LLMCOMPASS_COLUMNS = {"matmul": ("M", "N", "K", "latency_ms"),
                      "softmax": ("M", "N", "throughput_G_elements_per_s"),
                      "layernorm": ("M", "N", "throughput_G_elements_per_s"),
                      "gelu": ("num_elements", "throughput_G_elements_per_s")}


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
    """LLMCompass's stand-alone A100 kernels (matmul, softmax, layernorm, gelu).

    Every ``*.csv`` in ``folder`` must be one of those tables (the file name
    starts with ``matmul_``, ``softmax_``, ``layernorm_`` or ``gelu_``).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"LLMCompass folder {str(folder)!r} "
                         + ("does not exist" if not folder.exists() else "is not a directory"))
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise ValueError(f"LLMCompass folder {str(folder)!r} holds no *.csv tables")
    rows = []
    for file in files:
        kind = file.name.split("_")[0]
        if kind not in LLMCOMPASS_COLUMNS:
            raise ValueError(f"{file}: not an LLMCompass table this reader knows; file names "
                             f"must start with {', '.join(k + '_' for k in LLMCOMPASS_COLUMNS)}")
        table = _read_table(file, f"LLMCompass {kind} table")
        table.require(LLMCOMPASS_COLUMNS[kind], f"an LLMCompass {kind} table")
        for i in range(len(table)):
            if kind == "matmul":
                m, n, k = (table.integer(i, c, 1, MAX_SHAPE, "a whole matrix size")
                           for c in "MNK")
                latency = table.positive(i, "latency_ms", "milliseconds") * 1e-3
                recipe = OpTemplate("matmul", OpKind.GEMM, weight_k=k, weight_n=n)
                op = recipe.instantiate(BatchShape.from_lists([1], [0]), 2, num_rows=m)
                tokens = m
            elif kind in ("softmax", "layernorm"):
                m, n = (table.integer(i, c, 1, MAX_SHAPE, "a whole matrix size") for c in "MN")
                rate = table.positive(i, "throughput_G_elements_per_s", "G elements/s")
                op = (_vector_op(kind, OpKind.SOFTMAX, m, n, 5.0) if kind == "softmax" else
                      _vector_op(kind, OpKind.NORM, m, n, 8.0, params=2 * n))
                latency, tokens = m * n / (rate * 1e9), m
            else:  # gelu
                elements = table.integer(i, "num_elements", 1, MAX_SHAPE, "a whole count")
                rate = table.positive(i, "throughput_G_elements_per_s", "G elements/s")
                op = _vector_op(kind, OpKind.ACTIVATION, elements, 1, 8.0)
                latency, tokens = elements / (rate * 1e9), elements
            rows.append(Measurement("llmcompass", device, f"llmcompass/{kind}", (op,), latency,
                                    kind == "softmax", tokens, 0, ()))
    return Measurements(tuple(rows))


# ------------------------------------------------------------------ LLMServingSim 2.0
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


# ------------------------------------------------------------------ any format
_FORMATS = {"Vidur profile": ("num_tensor_parallel_workers",),
            "LLMServingSim perf model": ("layer_name", "latency(ns)"),
            "our schema": OUR_REQUIRED}


def load_measurements(path: str | Path, device: str | None = None) -> Measurements:
    """Read measured op latencies from ``path`` in any supported format.

    A folder is read as LLMCompass's tables if it holds ``matmul_*.csv``, else
    every ``mlp.csv`` under it is read as a Vidur profile. A CSV is told apart by
    its columns; one whose header fits two formats is refused. See the module
    docstring for what a bad file gets.
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
    table = _read_table(path, "measurement file")
    fits = [name for name, columns in _FORMATS.items() if set(columns) <= set(table.header)]
    if len(fits) > 1:
        raise ValueError(f"{path}: the header fits two formats ({' and '.join(fits)}: "
                         f"{ {k: list(_FORMATS[k]) for k in fits} }); which one is meant is "
                         "ambiguous")
    if fits == ["Vidur profile"]:
        return _load_vidur_table(table, path.parent.name, device or "a100")
    if fits == ["LLMServingSim perf model"]:
        return _load_perf_model_table(table, device or "rtx3090")
    kind = path.name.split("_")[0]
    if not fits and set(LLMCOMPASS_COLUMNS.get(kind, ("-",))) <= set(table.header):
        raise ValueError(f"{path}: looks like one LLMCompass {kind} table; pass the folder "
                         f"that holds the LLMCompass tables ({str(path.parent)!r}) instead")
    return _from_table(table, path.stem, device)


__all__ = ["ATTENTION", "Measurement", "Measurements", "from_rows", "load_llmcompass",
           "load_measurements", "load_perf_model", "load_vidur"]
