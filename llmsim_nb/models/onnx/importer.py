"""ONNX import: a decoder-block graph back to a :class:`~llmsim_nb.models.template.BlockTemplate`.

:func:`import_block_onnx` turns a graph -- one written by
:func:`~.export.export_block_onnx`, or a user's that follows the same
conventions -- into a template:

* ``MatMul``/``Gemm`` with a weight operand (initializer, ``Constant``,
  weight-marked input, or, when the file has no ``llmsim.weights`` entry, any
  graph input with a fully static shape) is a GEMM; a following ``Add`` of a
  weight is its bias.
* ``MatMul`` between activations is attention: ``ATTN_CONTEXT`` if an operand
  comes from a ``Softmax``, else ``ATTN_SCORE``. Head counts come from the
  metadata or from the static dims of the operands. Scaling or masking of the
  score matrix before the softmax is part of the softmax's cost.
* ``Softmax`` is SOFTMAX; ``LayerNormalization``/``RMSNormalization`` and any
  cluster of arithmetic ops containing a ``ReduceMean`` are NORM
  (layernorm if it subtracts the mean, else rmsnorm); a cluster containing
  ``Gelu``/``Relu``/``Sigmoid``/``Tanh``/``Erf`` is ACTIVATION (gated when it
  reads twice its output width); a cluster containing ``Neg``/``Sin``/``Cos``
  is a rotary embedding (ELEMENTWISE, adjacent q and k clusters merged); an
  ``Add`` onto the residual stream is ELEMENTWISE.
* Shape-only ops (:data:`~.conventions.FREE_OPS`) cost nothing. Any other op raises.

Token dims must be symbolic (or 1): a per-token width is the product of a
tensor's static dims. Op names come from node names (``"qkv_proj/MatMul"``
and ``"/model/layers.0/self_attn/q_proj/MatMul"`` both name the op by the
path part before the last).

Which node is which is decided in :mod:`.patterns`; :mod:`.block_ops` turns
each cluster into an :class:`~llmsim_nb.models.template.OpTemplate`; the
``llmsim.*`` metadata is read in :mod:`.metadata` (which also holds
:func:`spec_from_onnx_metadata`). This module checks the model and the
arguments, runs those steps and adds the embedding and head a block file does
not contain.
"""

from __future__ import annotations

import onnx

from ..ops import OpKind
from ..template import NORM_FLOPS, BlockTemplate, OpTemplate
from .block_ops import _BlockOps
from .conventions import ELEM_BYTES, META_PREFIX, SUPPORTED_OPS, open_model
from .graph import BlockGraph, check_nodes
from .metadata import _check_format, _meta_int, spec_from_onnx_metadata
from .patterns import find_patterns

__all__ = ["import_block_onnx", "spec_from_onnx_metadata"]


def _elem_name(elem: int | None) -> str:
    try:
        return onnx.TensorProto.DataType.Name(elem)
    except (ValueError, TypeError):
        return repr(elem)


def _check_ops(model: onnx.ModelProto, where: str) -> None:
    """Raise for the first node whose op type the importer cannot price."""
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
            raise ValueError(
                f"{where}: ONNX op type {node.op_type!r} (node {node.name!r}, domain "
                f"{node.domain or 'ai.onnx'!r}) is not supported by import_block_onnx; "
                f"supported op types are {sorted(SUPPORTED_OPS)}")


def _hidden_input(bg: BlockGraph) -> str:
    """The hidden-state input: named in the metadata, else the first rank-3 input."""
    hidden_in = bg.meta.get("hidden_input")
    if hidden_in is None:
        ranked = [t for t in bg.graph_inputs if bg.shapes.get(t) and len(bg.shapes[t]) == 3]
        if not ranked:
            raise ValueError(f"{bg.where}: cannot find the hidden-state input: no non-weight "
                             f"graph input of rank 3 [batch, seq, hidden]; name it in the "
                             f"'{META_PREFIX}hidden_input' metadata entry")
        hidden_in = ranked[0]
    if hidden_in not in bg.graph_inputs:
        raise ValueError(f"{bg.where}: metadata {META_PREFIX}hidden_input={hidden_in!r} is not "
                         f"a (non-weight) graph input; inputs are {bg.graph_inputs[:10]}")
    return hidden_in


def import_block_onnx(path_or_model, *, num_layers: int | None = None,
                      vocab_size: int | None = None, name: str | None = None,
                      position: str | None = None, dtype_bytes: int | None = None
                      ) -> BlockTemplate:
    """Read an ONNX decoder block into a :class:`~llmsim_nb.models.template.BlockTemplate`.

    Parameters
    ----------
    path_or_model : str, path-like or onnx.ModelProto
        A block written by :func:`~.export.export_block_onnx`, or a user's block
        that follows the same conventions (module docstring).
    num_layers, vocab_size : int, optional
        Needed when the file lacks ``llmsim.num_layers`` / ``llmsim.vocab_size``
        metadata (a foreign file); override the metadata otherwise.
    name : str, optional
        Template name; defaults to ``llmsim.model_name``, then the graph name.
    position : {"learned", "rope"}, optional
        Position scheme for the embedding op; defaults to the metadata, then
        ``"rope"`` if the block contains a rotary embedding, else ``"learned"``.
    dtype_bytes : int, optional
        Defaults to ``llmsim.dtype_bytes``, then the hidden input's element size.

    Returns
    -------
    BlockTemplate
        Embedding, block and head templates. For a block exported from a spec
        this equals ``decoder_template(spec)``.

    Raises
    ------
    ValueError
        One line naming the file (or in-memory model), the node or metadata
        entry and what is allowed: a file that is not an ONNX model (random
        bytes, a truncation), an unsupported op type, a node with the wrong
        number of inputs, a cycle, an empty block, shapes that do not
        multiply or contradict each other, a symbolic dim where a width is
        needed, a zero-size weight, metadata that contradicts the graph or is
        not a valid value, or missing ``num_layers``/``vocab_size`` for a
        foreign file.
    """
    model, where = open_model(path_or_model)
    _check_ops(model, where)
    check_nodes(model, where)
    for key, value in (("num_layers", num_layers), ("vocab_size", vocab_size),
                       ("dtype_bytes", dtype_bytes)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value <= 0):
            raise ValueError(f"import_block_onnx {key}={value!r} must be a positive integer")
    if name is not None and (not isinstance(name, str) or not name):
        raise ValueError(f"import_block_onnx name={name!r} must be a non-empty string")
    try:
        return _import(model, where, num_layers, vocab_size, name, position, dtype_bytes)
    except RecursionError:
        raise ValueError(f"{where}: the graph is too deep to analyse (a chain of about a "
                         f"thousand or more ops)") from None


def _import(model: onnx.ModelProto, where: str, num_layers: int | None,
            vocab_size: int | None, name: str | None, position: str | None,
            dtype_bytes: int | None) -> BlockTemplate:
    """:func:`import_block_onnx` once the arguments and the graph's structure are checked."""
    bg = BlockGraph(model, where)
    meta = bg.meta
    _check_format(meta, where)

    def meta_int(key: str, given: int | None) -> int:
        if given is not None:
            return given
        if key in meta:
            return _meta_int(meta, key, where)
        raise ValueError(f"{where}: {key} is not in the ONNX metadata ({META_PREFIX}{key}); "
                         f"pass {key}= to import_block_onnx (an int > 0)")

    layers = meta_int("num_layers", num_layers)
    vocab = meta_int("vocab_size", vocab_size)

    hidden_in = _hidden_input(bg)
    hidden = bg.width(hidden_in, "hidden-state input")
    if "hidden_size" in meta and _meta_int(meta, "hidden_size", where) != hidden:
        raise ValueError(f"{where}: metadata {META_PREFIX}hidden_size={meta['hidden_size']!r} "
                         f"contradicts the graph: the hidden-state input {hidden_in!r} has "
                         f"width {hidden}")
    if dtype_bytes is None:
        if "dtype_bytes" in meta:
            dtype_bytes = _meta_int(meta, "dtype_bytes", where)
        else:
            elem = bg.elem_types.get(hidden_in)
            if elem not in ELEM_BYTES:
                raise ValueError(
                    f"{where}: cannot tell the bytes per element: the hidden-state input "
                    f"{hidden_in!r} has element type {_elem_name(elem)} and there is no "
                    f"{META_PREFIX}dtype_bytes; pass dtype_bytes= (known element types: "
                    f"FLOAT16, BFLOAT16, FLOAT, DOUBLE, INT8, UINT8)")
            dtype_bytes = ELEM_BYTES[elem]

    ops = _BlockOps(find_patterns(bg, hidden_in), hidden_in)
    # One op per group, in the order of each group's first node.
    for _, idxs in sorted(ops.pt.members.items(), key=lambda kv_: min(kv_[1])):
        ops.add_group(idxs)
    if not ops.templates:
        raise ValueError(f"{where}: the block is empty: none of its {len(bg.nodes)} nodes is an "
                         f"operator that costs anything (a MatMul/Gemm, norm, softmax or "
                         f"arithmetic on activations)")

    # The final norm copies the block's norm unless the metadata names the kind.
    norm = meta.get("norm", ops.norm_kind or "layernorm")
    if norm not in NORM_FLOPS:
        raise ValueError(f"{where}: metadata {META_PREFIX}norm={norm!r} is not one of "
                         f"{tuple(NORM_FLOPS)}")
    norm_params = ops.norm_params
    if "norm" in meta or norm_params is None:
        norm_params = 2 * hidden if norm == "layernorm" else hidden
    pos = position or meta.get("position") or ("rope" if ops.rope_found else "learned")
    if pos not in ("learned", "rope"):
        raise ValueError(f"{where}: position={pos!r} (argument or {META_PREFIX}position) is "
                         f"not one of ('learned', 'rope')")
    learned = pos == "learned"
    embedding = (OpTemplate("embed", OpKind.EMBEDDING, width=hidden,
                            num_inputs=2 if learned else 1,
                            flops_per_element=1.0 if learned else 0.0),)
    head = (OpTemplate("final_norm", OpKind.NORM, width=hidden,
                       flops_per_element=NORM_FLOPS[norm], param_elements=norm_params),
            OpTemplate("lm_head", OpKind.GEMM, weight_k=hidden, weight_n=vocab))
    return BlockTemplate(name or meta.get("model_name") or bg.graph.name or "onnx-block",
                         embedding, tuple(ops.block()), head, layers,
                         int(dtype_bytes))
