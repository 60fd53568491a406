"""Measured operator latencies: one table, several file formats.

A :class:`Measurements` holds rows of "this operator, at this shape, took this
long on this device". Each row carries the :class:`~llmsim_nb.models.ops.Op`
objects it measured (built with the same template as a simulation, so the
shapes, FLOPs and bytes follow one convention), which is what
:func:`~llmsim_nb.fidelity.calibration.calibrate`, the ``profiled`` engine and the
op-level benchmark consume.

Our CSV schema (``load_measurements`` reads it; extra columns are ignored)
--------------------------------------------------------------------------
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

from pathlib import Path

from .csv_table import MAX_SHAPE as MAX_SHAPE
from .csv_table import MAX_TOKENS as MAX_TOKENS
from .csv_table import _read_table
from .ours import OUR_REQUIRED, _from_table, from_rows
from .llmcompass import LLMCOMPASS_COLUMNS, load_llmcompass
from .perf_model import PERF_MODEL_COLUMNS as PERF_MODEL_COLUMNS
from .perf_model import PERF_MODEL_OPS as PERF_MODEL_OPS
from .perf_model import _load_perf_model_table, load_perf_model
from .rows import ATTENTION, Measurement, Measurements
from .vidur import VIDUR_GEOMETRY as VIDUR_GEOMETRY
from .vidur import VIDUR_OPS as VIDUR_OPS
from .vidur import _load_vidur_table, load_vidur

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
