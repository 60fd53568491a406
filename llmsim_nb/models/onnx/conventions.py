"""The file conventions the ONNX exporter writes and the importer reads.

Both directions must agree on these, so they live in one place: the opset and
IR version, the ``llmsim.`` metadata namespace, which op types the importer
understands (and how it treats each), and the element-type <-> bytes maps.
"""

from __future__ import annotations

import os

import onnx
import onnx.defs
from google.protobuf.descriptor import FieldDescriptor
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


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(text).split())


def _non_utf8_field(message, path: str = "model") -> str | None:
    """The path of the first string field whose bytes are not UTF-8, or ``None``.

    Protobuf hands such a field to Python as ``bytes`` instead of ``str``.
    """
    string = FieldDescriptor.TYPE_STRING
    for field, value in message.ListFields():
        here = f"{path}.{field.name}"
        repeated = (field.is_repeated if hasattr(field, "is_repeated")  # protobuf >= 6.30
                    else field.label == FieldDescriptor.LABEL_REPEATED)
        if field.type == string:
            for item in (value if repeated else (value,)):
                if not isinstance(item, str):
                    return here
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for j, item in enumerate(value if repeated else (value,)):
                found = _non_utf8_field(item, f"{here}[{j}]" if repeated else here)
                if found is not None:
                    return found
    return None


def default_opset(model: onnx.ModelProto) -> int | None:
    """The model's opset version for the default ONNX domain, or ``None``."""
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return None


def open_model(path_or_model) -> tuple[onnx.ModelProto, str]:
    """An in-memory model and how error messages name it, loading it when given a path.

    A file is parsed as an ONNX protobuf and nothing else: external tensor data
    is not followed (only shapes are read) and nothing in the file is executed.

    Parameters
    ----------
    path_or_model : str, path-like or onnx.ModelProto
        A model is returned as it is (not copied).

    Returns
    -------
    model : onnx.ModelProto
    where : str
        ``"ONNX file '<path>'"``, or ``"ONNX model '<graph name>' (in memory)"``.

    Raises
    ------
    ValueError
        For a missing file, bytes that are not an ONNX model (random bytes, a
        truncated file), a model without a graph, IR version or a usable
        default-domain opset, or an argument of another type.
    """
    if isinstance(path_or_model, onnx.ModelProto):
        model = path_or_model
        where = f"ONNX model {model.graph.name or '(unnamed graph)'!r} (in memory)"
    elif isinstance(path_or_model, (str, os.PathLike)):
        path = os.fspath(path_or_model)
        where = f"ONNX file {path!r}"
        if not os.path.isfile(path):
            raise ValueError(f"{where}: file not found")
        try:
            model = onnx.load_model(path, load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf raises several error types
            raise ValueError(f"{where}: is not an ONNX model (it does not parse as an ONNX "
                             f"protobuf: {one_line(exc) or type(exc).__name__})") from None
    else:
        raise ValueError(f"path_or_model must be a path or an onnx.ModelProto, got "
                         f"{type(path_or_model).__name__}")
    if not model.HasField("graph"):
        raise ValueError(f"{where}: is not an ONNX model (it holds no graph)")
    bad_text = _non_utf8_field(model)
    if bad_text is not None:
        raise ValueError(f"{where}: is not an ONNX model (text field {bad_text} holds bytes "
                         f"that are not UTF-8)")
    if model.ir_version < 1:
        raise ValueError(f"{where}: is not an ONNX model (ir_version is not set)")
    opset = default_opset(model)
    newest = onnx.defs.onnx_opset_version()
    if opset is None or not 1 <= opset <= newest:
        raise ValueError(f"{where}: default-domain opset_import is {opset!r}; it must be "
                         f"an opset version in 1..{newest} (the ones the installed onnx "
                         f"{onnx.__version__} knows)")
    return model, where


def load_model(path_or_model) -> onnx.ModelProto:
    """An in-memory model, loading it when given a path (see :func:`open_model`).

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
        For anything else (a ``bytes`` buffer, a file object), a missing file
        or a file that is not an ONNX model.
    """
    return open_model(path_or_model)[0]
