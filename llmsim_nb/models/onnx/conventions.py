"""The file conventions the ONNX exporter writes and the importer reads.

Both directions must agree on these, so they live in one place: the opset and
IR version, the ``llmsim.`` metadata namespace, which op types the importer
understands (and how it treats each), and the element-type <-> bytes maps.
"""

from __future__ import annotations

import os

import onnx
from onnx import TensorProto

OPSET = 20
IR_VERSION = 9  # the IR version that goes with opset 20
META_PREFIX = "llmsim."
FORMAT_VERSION = "1"

#: Ops that only move or reshape data: free.
FREE_OPS = frozenset({
    "Reshape", "Transpose", "Concat", "Shape", "Size", "Gather", "Unsqueeze", "Squeeze",
    "Cast", "Identity", "Constant", "Slice", "Split", "Expand", "Flatten",
    "ConstantOfShape", "Range", "Dropout",
})
#: Ops that become one operator each.
ANCHOR_OPS = frozenset({"MatMul", "Gemm", "Softmax", "LayerNormalization",
                        "RMSNormalization"})
#: Arithmetic ops that are grouped with their neighbours into one vector operator.
VECTOR_OPS = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "ReduceMean",
    "Sigmoid", "Tanh", "Erf", "Gelu", "Relu", "Sin", "Cos", "Where",
})
#: Every op type :func:`~.importer.import_block_onnx` accepts.
SUPPORTED_OPS = FREE_OPS | ANCHOR_OPS | VECTOR_OPS

#: ``ModelSpec.dtype_bytes`` -> the element type the exporter declares. Other
#: sizes (fp8, int8) have no float type every runtime reads, so the exporter
#: falls back to fp16: the graph describes shapes, not values.
ELEM_TYPES = {2: TensorProto.FLOAT16, 4: TensorProto.FLOAT, 8: TensorProto.DOUBLE}
#: Element type -> bytes, for a foreign file that carries no ``llmsim.dtype_bytes``.
ELEM_BYTES = {TensorProto.FLOAT16: 2, TensorProto.BFLOAT16: 2, TensorProto.FLOAT: 4,
              TensorProto.DOUBLE: 8, TensorProto.INT8: 1, TensorProto.UINT8: 1}


def read_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The model's ``llmsim.*`` metadata entries, keyed without the prefix.

    Parameters
    ----------
    model : onnx.ModelProto

    Returns
    -------
    dict of str to str
        Empty for a file not written by the exporter (entries of other
        namespaces are ignored).
    """
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props
            if p.key.startswith(META_PREFIX)}


def load_model(path_or_model) -> onnx.ModelProto:
    """An in-memory model, loading it when given a path.

    Parameters
    ----------
    path_or_model : str, path-like or onnx.ModelProto
        A model is returned as it is (not copied).

    Returns
    -------
    onnx.ModelProto

    Raises
    ------
    ValueError
        For anything else (a ``bytes`` buffer, a file object).
    """
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    if isinstance(path_or_model, (str, os.PathLike)):
        return onnx.load(os.fspath(path_or_model))
    raise ValueError(f"path_or_model must be a path or an onnx.ModelProto, got "
                     f"{type(path_or_model).__name__}")
