"""Models: specs, the catalog, operator templates and ONNX I/O.

>>> from llmsim_nb.models import get_model, decoder_template, BatchShape
>>> spec = get_model("llama-2-70b")
>>> blocks = decoder_template(spec).instantiate(BatchShape.from_lists([128, 1], [0, 511]))

Importing this package reads no file; the packaged catalog
(``presets/models.yaml``) is read on the first catalog lookup, and
:mod:`onnx` (most of a second to import) is imported on the first use of
:func:`export_block_onnx` or :func:`import_block_onnx`.
"""

from .catalog import get_model, list_models, register_model
from .hf_config import model_from_hf_config
from .ops import BatchShape, Op, OpBlock, OpKind
from .spec import ModelSpec
from .decoder import decoder_template
from .template import BlockTemplate, OpTemplate

__all__ = [
    "BatchShape", "BlockTemplate", "ModelSpec", "Op", "OpBlock", "OpKind", "OpTemplate",
    "decoder_template", "export_block_onnx", "get_model", "import_block_onnx",
    "list_models", "model_from_hf_config", "register_model",
]

#: Names served by :func:`__getattr__` from :mod:`llmsim_nb.models.onnx`: that
#: subpackage imports ``onnx``, which most users of this package never need.
_LAZY_ONNX = frozenset({"export_block_onnx", "import_block_onnx"})


def __getattr__(name: str):
    """Import the ONNX functions on first access (PEP 562)."""
    if name in _LAZY_ONNX:
        from .onnx import export_block_onnx, import_block_onnx
        # Cached in the module so later lookups do not come back here.
        globals().update(export_block_onnx=export_block_onnx,
                         import_block_onnx=import_block_onnx)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _LAZY_ONNX)
