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

Which node is which is decided in :mod:`.patterns`; this module turns each
cluster into an :class:`~llmsim_nb.models.template.OpTemplate` and adds the
embedding and head a block file does not contain.
"""

from __future__ import annotations

import re
from collections import defaultdict

import onnx

from ..ops import OpKind
from ..spec import ModelSpec
from ..template import ACT_FLOPS, NORM_FLOPS, BlockTemplate, OpTemplate
from .conventions import (ELEM_BYTES, FORMAT_VERSION, META_PREFIX, SUPPORTED_OPS, open_model,
                          read_metadata)
from .graph import BlockGraph, check_nodes, node_desc, op_label
from .patterns import BlockPatterns, find_patterns


def spec_from_onnx_metadata(path_or_model) -> ModelSpec:
    """Rebuild the :class:`ModelSpec` an ONNX file was exported from.

    Parameters
    ----------
    path_or_model : str, path-like or onnx.ModelProto

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        If the file lacks the ``llmsim.*`` metadata :func:`~.export.export_block_onnx`
        writes, or an entry is not a valid value (naming the entry).
    """
    model, where = open_model(path_or_model)
    meta = read_metadata(model)
    _check_format(meta, where)
    keys = ("model_name", "num_layers", "hidden_size", "num_heads", "num_kv_heads",
            "ffn_hidden_size", "vocab_size", "max_seq_len", "activation", "norm",
            "position", "bias", "tied_embeddings", "dtype_bytes")
    missing = [k for k in keys if k not in meta]
    if missing:
        raise ValueError(f"{where}: ONNX metadata lacks {[META_PREFIX + k for k in missing]}; "
                         f"only files written by export_block_onnx carry a full spec")
    ints = {k: _meta_int(meta, k, where) for k in keys[1:8] + ("dtype_bytes",)}
    try:
        return ModelSpec(name=meta["model_name"], activation=meta["activation"],
                         norm=meta["norm"], position=meta["position"],
                         bias=_meta_bool(meta, "bias", where),
                         tied_embeddings=_meta_bool(meta, "tied_embeddings", where), **ints)
    except ValueError as err:
        raise ValueError(f"{where}: the {META_PREFIX}* metadata does not make a valid spec: "
                         f"{err}") from None


_INT_TEXT = re.compile(r"[0-9]+")


def _elem_name(elem: int | None) -> str:
    try:
        return onnx.TensorProto.DataType.Name(elem)
    except (ValueError, TypeError):
        return repr(elem)


def _meta_int(meta: dict[str, str], key: str, where: str) -> int:
    """An ``llmsim.<key>`` entry that must be a decimal integer >= 1."""
    raw = meta[key]
    if not _INT_TEXT.fullmatch(raw) or int(raw) < 1:
        raise ValueError(f"{where}: metadata {META_PREFIX}{key}={raw!r} must be an integer "
                         f">= 1")
    return int(raw)


def _meta_bool(meta: dict[str, str], key: str, where: str) -> bool:
    raw = meta[key]
    if raw not in ("true", "false"):
        raise ValueError(f"{where}: metadata {META_PREFIX}{key}={raw!r} must be 'true' or "
                         f"'false'")
    return raw == "true"


def _check_format(meta: dict[str, str], where: str) -> None:
    version = meta.get("format_version")
    if version is not None and version != FORMAT_VERSION:
        raise ValueError(f"{where}: metadata {META_PREFIX}format_version={version!r} is not "
                         f"supported; this reader reads format {FORMAT_VERSION!r}")


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


def _attention_geometry(pt: BlockPatterns) -> dict[str, int] | None:
    """Head counts and size: metadata, else static dims of the first score matmul.

    The metadata's head size must agree with the query operand's last dim
    when that dim is static; either way the counts must be >= 1 and the KV
    heads must divide the query heads.
    """
    bg, meta = pt.bg, pt.bg.meta
    where = bg.where
    scores = [i for i, kd in pt.attn_nodes.items() if kd is OpKind.ATTN_SCORE]
    first = min(scores) if scores else None
    node = bg.nodes[first] if first is not None else None
    desc = node_desc(node, first) if node is not None else ""
    qdims = bg.shapes.get(node.input[0]) if node is not None else None
    q_hd = qdims[-1] if qdims and isinstance(qdims[-1], int) else None
    if all(k in meta for k in ("num_heads", "num_kv_heads", "head_dim")):
        geom = {k: _meta_int(meta, k, where) for k in ("num_heads", "num_kv_heads", "head_dim")}
        if q_hd is not None and q_hd != geom["head_dim"]:
            raise ValueError(f"{where}: metadata {META_PREFIX}head_dim={geom['head_dim']} "
                             f"contradicts the graph: the query operand {node.input[0]!r} of "
                             f"{desc} has head size {q_hd}")
    else:
        if node is None:
            return None
        if q_hd is None:
            raise ValueError(f"{where}: cannot infer head_dim from the query operand of "
                             f"{desc}; add {META_PREFIX}num_heads, num_kv_heads and head_dim "
                             f"metadata")
        q_w = bg.width(node.input[0], f"query of {desc}")
        k_w = bg.width(node.input[1], f"key of {desc}", feature_last=False)
        if q_w % q_hd or k_w % q_hd:
            raise ValueError(f"{where}: {desc}: query width {q_w} and key width {k_w} are not "
                             f"whole numbers of heads of size {q_hd}; add "
                             f"{META_PREFIX}num_heads, num_kv_heads and head_dim metadata")
        geom = dict(num_heads=q_w // q_hd, num_kv_heads=k_w // q_hd, head_dim=q_hd)
    if geom["num_heads"] % geom["num_kv_heads"]:
        raise ValueError(f"{where}: num_kv_heads={geom['num_kv_heads']} does not divide "
                         f"num_heads={geom['num_heads']} (attention of {desc or 'the block'})")
    return geom


class _BlockOps:
    """The block's op templates, built one group at a time in file order.

    Besides the templates it records what the embedding and head need: the
    first norm's kind and parameter count and whether a rotary embedding was
    seen.
    """

    def __init__(self, pt: BlockPatterns, hidden_in: str):
        self.pt = pt
        self.hidden_in = hidden_in
        self.attn_geom = _attention_geometry(pt)
        self.templates: list[OpTemplate] = []
        self.rope_ops: set[int] = set()   # positions in ``templates`` of rotary clusters
        self.rope_found = False
        self.norm_kind: str | None = None
        self.norm_params: int | None = None
        self._used: dict[str, int] = defaultdict(int)

    def label(self, i: int, default: str) -> str:
        """A unique op name for node ``i``: its label, suffixed ``_1``, ``_2`` on repeats."""
        nodes = self.pt.bg.nodes
        base = op_label(nodes[i]) or nodes[i].name or default
        self._used[base] += 1
        return base if self._used[base] == 1 else f"{base}_{self._used[base] - 1}"

    def _saw_norm(self, kind: str, params: int) -> None:
        # The first norm of the block stands for the model's final norm.
        self.norm_kind = self.norm_kind or kind
        self.norm_params = params if self.norm_params is None else self.norm_params

    def add_group(self, idxs: list[int]) -> None:
        """Append the template of one group (``idxs``: its nodes), if it costs anything."""
        pt, bg = self.pt, self.pt.bg
        first = min(idxs)
        node = bg.nodes[first]
        if first in pt.gemm_info:
            info = pt.gemm_info[first]
            self.templates.append(OpTemplate(self.label(first, "gemm"), OpKind.GEMM,
                                             weight_k=info["k"], weight_n=info["n"],
                                             param_elements=info["params"]))
        elif first in pt.attn_nodes or first in pt.softmax_nodes:
            if self.attn_geom is None:
                raise ValueError(f"{bg.where}: {node_desc(node, first)}: attention ops found "
                                 f"but no score MatMul to infer heads from")
            kind = pt.attn_nodes.get(first, OpKind.SOFTMAX)
            self.templates.append(OpTemplate(self.label(first, kind.value), kind,
                                             **self.attn_geom))
        elif first in pt.residual:
            out = node.output[0]
            self.templates.append(OpTemplate(self.label(first, "residual"), OpKind.ELEMENTWISE,
                                             width=bg.width(out, node_desc(node, first)),
                                             num_inputs=2))
        elif node.op_type in ("LayerNormalization", "RMSNormalization"):
            nk = "layernorm" if node.op_type == "LayerNormalization" else "rmsnorm"
            params = sum(bg.param_elements(t) for t in node.input[1:] if t)
            self._saw_norm(nk, params)
            self.templates.append(OpTemplate(self.label(first, "norm"), OpKind.NORM,
                                             width=bg.width(node.output[0],
                                                            node_desc(node, first)),
                                             flops_per_element=NORM_FLOPS[nk],
                                             param_elements=params))
        else:
            self._add_cluster(first, idxs)

    def _add_cluster(self, first: int, idxs: list[int]) -> None:
        """An arithmetic cluster: a norm, rotary, activation or other elementwise op."""
        pt, bg = self.pt, self.pt.bg
        nodes = bg.nodes
        member_set = set(idxs)
        types = [nodes[i].op_type for i in idxs]
        ext_in: set[str] = set()
        outs: set[str] = set()
        params = 0
        for i in idxs:
            for t in nodes[i].input:
                if not t:
                    continue
                if t in bg.const:
                    params += bg.param_elements(t)
                elif bg.is_act(t) and not (pt.roots(t) & {pt.groups.find(m) for m in member_set}):
                    ext_in.add(t)
            for t in nodes[i].output:
                if pt.downstream(t) - member_set:
                    outs.add(t)
        src_nodes = {x[1] for t in ext_in for x in pt.origin(t) if x[0] == "node"}
        if src_nodes and all(pt.attn_nodes.get(s) is OpKind.ATTN_SCORE or s in pt.softmax_nodes
                             for s in src_nodes):
            return  # scale / mask on the score matrix: part of the softmax's cost
        if not outs:
            return  # dead code
        side = {("input", x) for x in bg.graph_inputs if x != self.hidden_in}
        what = node_desc(nodes[first], first)
        # Norms, rotary embeddings and activations are feature-wide: their width must
        # be static. Other arithmetic (mask building, say) keeps the static dims only.
        featured = bool({"ReduceMean", "Neg", "Sin", "Cos", "Gelu", "Relu", "Sigmoid", "Tanh",
                         "Erf"} & set(types))
        width = sum(bg.width(t, what, feature_last=featured) for t in sorted(outs))
        # Token-shaped data read; side inputs such as cos/sin tables are not counted.
        in_width = sum(bg.width(t, what, feature_last=False) for t in sorted(ext_in)
                       if not pt.origin(t) <= side)
        if {"ReduceMean"} & set(types):
            # Layernorm takes the mean twice (of x and of its square) or subtracts it.
            nk = "layernorm" if ("Sub" in types or types.count("ReduceMean") >= 2) else "rmsnorm"
            self._saw_norm(nk, params)
            self.templates.append(OpTemplate(self.label(first, "norm"), OpKind.NORM,
                                             width=width, flops_per_element=NORM_FLOPS[nk],
                                             param_elements=params))
        elif {"Neg", "Sin", "Cos"} & set(types):
            self.rope_found = True
            self.rope_ops.add(len(self.templates))
            self.templates.append(OpTemplate(self.label(first, "rope"), OpKind.ELEMENTWISE,
                                             width=width, flops_per_element=3.0))
        elif {"Gelu", "Relu", "Sigmoid", "Tanh", "Erf"} & set(types):
            if "Relu" in types:
                flops = ACT_FLOPS["relu"]
            elif "Sigmoid" in types:
                flops = ACT_FLOPS["swiglu"]
            else:
                flops = ACT_FLOPS["gelu"]
            num_inputs = max(1, round(in_width / width)) if width else 1
            self.templates.append(OpTemplate(self.label(first, "activation"),
                                             OpKind.ACTIVATION, width=width,
                                             num_inputs=num_inputs, flops_per_element=flops,
                                             param_elements=params))
        else:
            num_inputs = max(1, round(in_width / width)) if width else 1
            self.templates.append(OpTemplate(self.label(first, "elementwise"),
                                             OpKind.ELEMENTWISE, width=width,
                                             num_inputs=num_inputs,
                                             flops_per_element=float(len(idxs)),
                                             param_elements=params))

    def block(self) -> list[OpTemplate]:
        """The templates, adjacent rotary clusters (q then k) merged into one op, as in
        :func:`~llmsim_nb.models.template.decoder_template`."""
        block: list[OpTemplate] = []
        prev_rope = False
        for pos_, t in enumerate(self.templates):
            is_rope = pos_ in self.rope_ops
            if is_rope and prev_rope:
                prev = block.pop()
                t = OpTemplate(prev.name, OpKind.ELEMENTWISE, width=prev.width + t.width,
                               flops_per_element=3.0)
            block.append(t)
            prev_rope = is_rope
        return block


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
