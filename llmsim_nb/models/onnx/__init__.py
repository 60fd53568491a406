"""ONNX in and out: one decoder block as an ONNX graph, and back to a template.

:func:`export_block_onnx` writes one decoder block of a
:class:`~llmsim_nb.models.spec.ModelSpec` as a small ONNX graph (weights are
static-shape inputs, not data); :func:`import_block_onnx` reads such a graph --
ours or a user's that follows the same conventions -- into a
:class:`~llmsim_nb.models.template.BlockTemplate`, so a user-exported block is
simulated by the same path as a catalog model.

Modules
-------
conventions
    Opset, metadata keys and the op types the importer understands, shared by
    both directions.
export
    The exporter and the graph it writes.
graph
    Indexes of one graph (shapes, weights, producers and consumers).
patterns
    Which nodes make which operator: GEMMs and their biases, attention,
    residual adds, clusters of arithmetic.
importer
    Loading, structural checks, clusters to op templates, the embedding and head.
metadata
    The ``llmsim.*`` metadata: the model spec the exporter wrote.
block_ops
    Building the layer's op templates from the clusters.

Importing this package imports :mod:`onnx` (most of a second); the names are
also reachable lazily from :mod:`llmsim_nb.models`, which does not.
"""

from .conventions import (ANCHOR_OPS, FORMAT_VERSION, FREE_OPS, IR_VERSION, META_PREFIX,
                          OPSET, SUPPORTED_OPS, VECTOR_OPS)
from .export import export_block_onnx
from .importer import import_block_onnx, spec_from_onnx_metadata

__all__ = ["ANCHOR_OPS", "FORMAT_VERSION", "FREE_OPS", "IR_VERSION", "META_PREFIX", "OPSET",
           "SUPPORTED_OPS", "VECTOR_OPS", "export_block_onnx", "import_block_onnx",
           "spec_from_onnx_metadata"]
