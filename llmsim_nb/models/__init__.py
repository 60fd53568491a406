"""Models: specs, the catalog, operator templates and ONNX I/O.

>>> from llmsim_nb.models import get_model, decoder_template, BatchShape
>>> spec = get_model("llama-2-70b")
>>> blocks = decoder_template(spec).instantiate(BatchShape.from_lists([128, 1], [0, 511]))

Importing this package reads no file; the packaged catalog
(``presets/models.yaml``) is read on the first catalog lookup.
"""

from .catalog import get_model, list_models, register_model
from .hf_config import model_from_hf_config
from .onnx_io import export_block_onnx, import_block_onnx
from .ops import BatchShape, Op, OpBlock, OpKind
from .spec import ModelSpec
from .template import BlockTemplate, OpTemplate, decoder_template

__all__ = [
    "BatchShape", "BlockTemplate", "ModelSpec", "Op", "OpBlock", "OpKind", "OpTemplate",
    "decoder_template", "export_block_onnx", "get_model", "import_block_onnx",
    "list_models", "model_from_hf_config", "register_model",
]
