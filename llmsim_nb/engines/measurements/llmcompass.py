"""LLMCompass's stand-alone A100 kernel tables as measurements."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...models.ops import BatchShape, Op, OpKind
from ...models.template import OpTemplate
from .csv_table import MAX_SHAPE, _read_table
from .rows import Measurement, Measurements

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
