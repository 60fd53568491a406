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

from collections import defaultdict

import onnx

from ..ops import OpKind
from ..spec import ModelSpec
from ..template import ACT_FLOPS, NORM_FLOPS, BlockTemplate, OpTemplate
from .conventions import ELEM_BYTES, META_PREFIX, SUPPORTED_OPS, load_model, read_metadata
from .graph import BlockGraph, op_label
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
        writes.
    """
    meta = read_metadata(load_model(path_or_model))
    keys = ("model_name", "num_layers", "hidden_size", "num_heads", "num_kv_heads",
            "ffn_hidden_size", "vocab_size", "max_seq_len", "activation", "norm",
            "position", "bias", "tied_embeddings", "dtype_bytes")
    missing = [k for k in keys if k not in meta]
    if missing:
        raise ValueError(f"ONNX metadata lacks {[META_PREFIX + k for k in missing]}; only "
                         f"files written by export_block_onnx carry a full spec")
    ints = {k: int(meta[k]) for k in keys[1:8] + ("dtype_bytes",)}
    return ModelSpec(name=meta["model_name"], activation=meta["activation"],
                     norm=meta["norm"], position=meta["position"],
                     bias=meta["bias"] == "true",
                     tied_embeddings=meta["tied_embeddings"] == "true", **ints)


def _check_ops(model: onnx.ModelProto) -> None:
    """Raise for the first node whose op type the importer cannot price."""
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
            raise ValueError(
                f"ONNX op type {node.op_type!r} (node {node.name!r}, domain "
                f"{node.domain or 'ai.onnx'!r}) is not supported by import_block_onnx; "
                f"supported op types are {sorted(SUPPORTED_OPS)}")


def _hidden_input(bg: BlockGraph) -> str:
    """The hidden-state input: named in the metadata, else the first rank-3 input."""
    hidden_in = bg.meta.get("hidden_input")
    if hidden_in is None:
        ranked = [t for t in bg.graph_inputs if bg.shapes.get(t) and len(bg.shapes[t]) == 3]
        if not ranked:
            raise ValueError("cannot find the hidden-state input: no non-weight graph input "
                             "of rank 3 [batch, seq, hidden]; name it in the "
                             f"'{META_PREFIX}hidden_input' metadata entry")
        hidden_in = ranked[0]
    if hidden_in not in bg.graph_inputs:
        raise ValueError(f"{META_PREFIX}hidden_input={hidden_in!r} is not a graph input; "
                         f"inputs are {bg.graph_inputs}")
    return hidden_in


def _attention_geometry(pt: BlockPatterns) -> dict[str, int] | None:
    """Head counts and size: metadata, else static dims of the first score matmul."""
    bg, meta = pt.bg, pt.bg.meta
    if all(k in meta for k in ("num_heads", "num_kv_heads", "head_dim")):
        return dict(num_heads=int(meta["num_heads"]), num_kv_heads=int(meta["num_kv_heads"]),
                    head_dim=int(meta["head_dim"]))
    scores = [i for i, kd in pt.attn_nodes.items() if kd is OpKind.ATTN_SCORE]
    if not scores:
        return None
    node = bg.nodes[min(scores)]
    qdims = bg.shapes.get(node.input[0])
    if not qdims or not isinstance(qdims[-1], int):
        raise ValueError(f"cannot infer head_dim from the query operand of "
                         f"{node.name!r}; add {META_PREFIX}num_heads, num_kv_heads "
                         f"and head_dim metadata")
    hd = qdims[-1]
    return dict(num_heads=bg.width(node.input[0], "query") // hd,
                num_kv_heads=bg.width(node.input[1], "key") // hd, head_dim=hd)


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
                raise ValueError("attention ops found but no score MatMul to infer heads from")
            kind = pt.attn_nodes.get(first, OpKind.SOFTMAX)
            self.templates.append(OpTemplate(self.label(first, kind.value), kind,
                                             **self.attn_geom))
        elif first in pt.residual:
            out = node.output[0]
            self.templates.append(OpTemplate(self.label(first, "residual"), OpKind.ELEMENTWISE,
                                             width=bg.width(out, node.name), num_inputs=2))
        elif node.op_type in ("LayerNormalization", "RMSNormalization"):
            nk = "layernorm" if node.op_type == "LayerNormalization" else "rmsnorm"
            params = sum(bg.param_elements(t) for t in node.input[1:] if t)
            self._saw_norm(nk, params)
            self.templates.append(OpTemplate(self.label(first, "norm"), OpKind.NORM,
                                             width=bg.width(node.output[0], node.name),
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
        width = sum(bg.width(t, nodes[first].name) for t in outs)
        # Token-shaped data read; side inputs such as cos/sin tables are not counted.
        in_width = sum(bg.width(t, nodes[first].name) for t in ext_in
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
        For an unsupported op type (naming it and the node), missing
        ``num_layers``/``vocab_size`` for a foreign file, or a graph whose
        shapes cannot be inferred.
    """
    model = load_model(path_or_model)
    _check_ops(model)
    bg = BlockGraph(model)
    meta = bg.meta

    def meta_int(key: str, given: int | None) -> int:
        if given is not None:
            return given
        if key in meta:
            return int(meta[key])
        raise ValueError(f"{key} is not in the ONNX metadata ({META_PREFIX}{key}); pass "
                         f"{key}= to import_block_onnx (an int > 0)")

    layers = meta_int("num_layers", num_layers)
    vocab = meta_int("vocab_size", vocab_size)
    for key, value in (("num_layers", layers), ("vocab_size", vocab)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"import_block_onnx {key}={value!r} must be a positive integer")

    hidden_in = _hidden_input(bg)
    hidden = bg.width(hidden_in, "hidden-state input")
    if dtype_bytes is None:
        dtype_bytes = int(meta["dtype_bytes"]) if "dtype_bytes" in meta else ELEM_BYTES.get(
            bg.elem_types.get(hidden_in), 2)

    ops = _BlockOps(find_patterns(bg, hidden_in), hidden_in)
    # One op per group, in the order of each group's first node.
    for _, idxs in sorted(ops.pt.members.items(), key=lambda kv_: min(kv_[1])):
        ops.add_group(idxs)

    # The final norm copies the block's norm unless the metadata names the kind.
    norm = meta.get("norm", ops.norm_kind or "layernorm")
    if norm not in NORM_FLOPS:
        raise ValueError(f"{META_PREFIX}norm={norm!r} is not one of {tuple(NORM_FLOPS)}")
    norm_params = ops.norm_params
    if "norm" in meta or norm_params is None:
        norm_params = 2 * hidden if norm == "layernorm" else hidden
    pos = position or meta.get("position") or ("rope" if ops.rope_found else "learned")
    if pos not in ("learned", "rope"):
        raise ValueError(f"position={pos!r} is not one of ('learned', 'rope')")
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
