"""ONNX in and out: one decoder block as an ONNX graph, and back to a template.

Export
------
:func:`export_block_onnx` writes one pre-norm decoder block of a
:class:`~.spec.ModelSpec` with :mod:`onnx.helper` (opset 20, standard ops only).

* Inputs: ``hidden_states [batch, seq, d]``, ``past_key`` and ``past_value``
  ``[batch, kv_heads, past, head_dim]``, an additive attention mask
  ``attn_mask [batch, 1, 1, seq, past + seq]`` (0 or -inf; causal masking is
  the caller's) and, for rotary models, ``cos`` and ``sin``
  ``[batch, seq, 1, head_dim]``. Outputs: the block output and
  ``present_key`` / ``present_value`` (the cache with this step's keys appended
  by ``Concat``). ``batch``, ``seq`` and ``past`` are symbolic dims.
* **Weights are graph inputs with static shapes, not initializers.** The file
  describes the *shape* of the computation; storing even zeros for a 70B
  block would take ~1.7 GB. Their names are listed (comma-separated) in the
  ``llmsim.weights`` metadata entry and each carries ``doc_string="weight"``.
  A 70B block exports in a few kilobytes. Only tiny constants (epsilon,
  reshape targets, the 1/sqrt(head_dim) scale) are initializers.
* Rotary embedding is in the graph, as the HF ``rotate_half`` form
  (``q*cos + concat(-q2, q1)*sin``) on q and k. ``cos``/``sin`` are inputs,
  because they depend on each token's position.
* The QKV projection is one ``[d, d + 2*kv]`` MatMul followed by ``Split``;
  the gated FFN's gate and up projections are one ``[d, 2*f]`` MatMul. This
  is the fused layout :func:`~.template.decoder_template` prices.
* Attention is laid out ``[batch, kv_heads, group, seq, head_dim]`` so that a
  grouped-query model broadcasts its K/V over the query group inside
  ``MatMul`` (no ``Expand`` and no copy of the cache).
* Norms: ``LayerNormalization`` for layernorm; for rmsnorm the decomposed
  pattern ``Pow -> ReduceMean -> Add(eps) -> Sqrt -> Div -> Mul(weight)``
  that exporters emit for LLaMA.
* Metadata (``metadata_props``, keys prefixed ``llmsim.``) carries what is not
  in a block: ``num_layers``, ``vocab_size``, ``hidden_size``, ``norm``,
  ``position``, ``dtype_bytes``, head counts, and the other spec fields, so
  :func:`spec_from_onnx_metadata` can rebuild the spec.

Import
------
:func:`import_block_onnx` turns such a graph -- ours or a user's that follows
the same conventions -- into a :class:`~.template.BlockTemplate`:

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
* Shape-only ops (:data:`FREE_OPS`) cost nothing. Any other op raises.

Token dims must be symbolic (or 1): a per-token width is the product of a
tensor's static dims. Op names come from node names (``"qkv_proj/MatMul"``
and ``"/model/layers.0/self_attn/q_proj/MatMul"`` both name the op by the
path part before the last).
"""

from __future__ import annotations

import math
import os
from collections import defaultdict
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, shape_inference

from .ops import OpKind
from .spec import ModelSpec
from .template import ACT_FLOPS, NORM_FLOPS, BlockTemplate, OpTemplate

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
SUPPORTED_OPS = FREE_OPS | ANCHOR_OPS | VECTOR_OPS

_ELEM_TYPES = {2: TensorProto.FLOAT16, 4: TensorProto.FLOAT, 8: TensorProto.DOUBLE}
_ELEM_BYTES = {TensorProto.FLOAT16: 2, TensorProto.BFLOAT16: 2, TensorProto.FLOAT: 4,
               TensorProto.DOUBLE: 8, TensorProto.INT8: 1, TensorProto.UINT8: 1}
_EPS = 1e-5


# --------------------------------------------------------------------------- export
class _GraphBuilder:
    """Small helper that names nodes ``"<op>/<part>"`` and collects the graph."""

    def __init__(self, elem_type: int):
        self.elem = elem_type
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.weights: list[str] = []
        self.inits: list[onnx.TensorProto] = []

    def node(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        out = name.replace("/", ".")
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out

    def multi(self, op_type: str, inputs: list[str], outputs: list[str], name: str,
              **attrs) -> list[str]:
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs

    def weight(self, name: str, shape: list[int]) -> str:
        vi = helper.make_tensor_value_info(name, self.elem, shape)
        vi.doc_string = "weight"
        self.inputs.append(vi)
        self.weights.append(name)
        return name

    def scalar(self, name: str, value: float) -> str:
        self.inits.append(helper.make_tensor(name, self.elem, [], [value]))
        return name

    def ints(self, name: str, values: list[int]) -> str:
        self.inits.append(helper.make_tensor(name, TensorProto.INT64, [len(values)], values))
        return name


def _norm(g: _GraphBuilder, spec: ModelSpec, x: str, prefix: str) -> str:
    d = spec.hidden_size
    w = g.weight(f"{prefix}.weight", [d])
    if spec.norm == "layernorm":
        b = g.weight(f"{prefix}.bias", [d])
        return g.node("LayerNormalization", [x, w, b], f"{prefix}/LayerNormalization",
                      axis=-1, epsilon=_EPS)
    sq = g.node("Pow", [x, "const.two"], f"{prefix}/Pow")
    mean = g.node("ReduceMean", [sq, "const.axes_last"], f"{prefix}/ReduceMean", keepdims=1)
    var = g.node("Add", [mean, "const.eps"], f"{prefix}/AddEps")
    rms = g.node("Sqrt", [var], f"{prefix}/Sqrt")
    normed = g.node("Div", [x, rms], f"{prefix}/Div")
    return g.node("Mul", [normed, w], f"{prefix}/MulWeight")


def _linear(g: _GraphBuilder, spec: ModelSpec, x: str, prefix: str, k: int, n: int) -> str:
    w = g.weight(f"{prefix}.weight", [k, n])
    y = g.node("MatMul", [x, w], f"{prefix}/MatMul")
    if spec.bias:
        b = g.weight(f"{prefix}.bias", [n])
        y = g.node("Add", [y, b], f"{prefix}/AddBias")
    return y


def _rope(g: _GraphBuilder, t: str, which: str) -> str:
    """``t*cos + rotate_half(t)*sin`` on ``t [batch, seq, heads, head_dim]``."""
    p = f"rope/{which}"
    first = g.node("Slice", [t, "const.zero", "const.half", "const.axes_last"],
                   f"{p}_slice1")
    second = g.node("Slice", [t, "const.half", "const.big", "const.axes_last"],
                    f"{p}_slice2")
    neg = g.node("Neg", [second], f"{p}_neg")
    rot = g.node("Concat", [neg, first], f"{p}_rotate_half", axis=-1)
    a = g.node("Mul", [t, "cos"], f"{p}_mul_cos")
    b = g.node("Mul", [rot, "sin"], f"{p}_mul_sin")
    return g.node("Add", [a, b], f"{p}_add")


def export_block_onnx(spec: ModelSpec | str, path: str | os.PathLike | None = None
                      ) -> onnx.ModelProto:
    """Export one decoder block of ``spec`` as an ONNX model.

    Parameters
    ----------
    spec : ModelSpec or str
        The model (a catalog name is looked up with
        :func:`~.catalog.get_model`).
    path : str or path-like, optional
        Where to save the ``.onnx`` file; nothing is written when omitted.

    Returns
    -------
    onnx.ModelProto
        A model that passes ``onnx.checker.check_model``. Weights are static-
        shape graph inputs (see the module docstring), so even a 70B block is
        a few kilobytes.
    """
    if isinstance(spec, str):
        from .catalog import get_model
        spec = get_model(spec)
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"spec must be a ModelSpec or a catalog name, got {spec!r}")
    d, f, kv, hd = spec.hidden_size, spec.ffn_hidden_size, spec.kv_dim, spec.head_dim
    h, kvh = spec.num_heads, spec.num_kv_heads
    group = h // kvh
    rope = spec.position == "rope"
    if rope and hd % 2:
        raise ValueError(f"ModelSpec.head_dim={hd} must be even for rotary embeddings "
                         f"(position='rope')")
    elem = _ELEM_TYPES.get(spec.dtype_bytes, TensorProto.FLOAT16)
    g = _GraphBuilder(elem)

    g.inputs.append(helper.make_tensor_value_info("hidden_states", elem, ["batch", "seq", d]))
    for nm in ("past_key", "past_value"):
        g.inputs.append(helper.make_tensor_value_info(nm, elem, ["batch", kvh, "past", hd]))
    if rope:
        for nm in ("cos", "sin"):
            g.inputs.append(helper.make_tensor_value_info(nm, elem, ["batch", "seq", 1, hd]))
    g.inputs.append(helper.make_tensor_value_info("attn_mask", elem,
                                                  ["batch", 1, 1, "seq", "total"]))
    g.scalar("const.two", 2.0)
    g.scalar("const.eps", _EPS)
    g.scalar("const.scale", 1.0 / math.sqrt(hd))
    g.ints("const.axes_last", [-1])
    g.ints("const.zero", [0])
    g.ints("const.half", [hd // 2])
    g.ints("const.big", [hd])
    g.ints("const.split_qkv", [d, kv, kv])
    g.ints("const.split_ffn", [f, f])
    g.ints("const.shape_q", [0, 0, h, hd])
    g.ints("const.shape_kv", [0, 0, kvh, hd])
    g.ints("const.shape_q5", [0, 0, kvh, group, hd])
    g.ints("const.shape_out", [0, 0, d])
    g.ints("const.axis2", [2])

    x = "hidden_states"
    n1 = _norm(g, spec, x, "input_norm")
    qkv = _linear(g, spec, n1, "qkv_proj", d, d + 2 * kv)
    q, k, v = g.multi("Split", [qkv, "const.split_qkv"], ["q", "k", "v"], "qkv_split/Split",
                      axis=-1)
    q = g.node("Reshape", [q, "const.shape_q"], "qkv_split/ReshapeQ")
    k = g.node("Reshape", [k, "const.shape_kv"], "qkv_split/ReshapeK")
    v = g.node("Reshape", [v, "const.shape_kv"], "qkv_split/ReshapeV")
    if rope:
        q = _rope(g, q, "q")
        k = _rope(g, k, "k")
    # q: [b, s, h, hd] -> [b, kvh, group, s, hd]
    q = g.node("Reshape", [q, "const.shape_q5"], "attn_layout/ReshapeQ5")
    q = g.node("Transpose", [q], "attn_layout/TransposeQ", perm=[0, 2, 3, 1, 4])
    # k, v: [b, s, kvh, hd] -> [b, kvh, s, hd], appended to the cache.
    k = g.node("Transpose", [k], "attn_layout/TransposeK", perm=[0, 2, 1, 3])
    v = g.node("Transpose", [v], "attn_layout/TransposeV", perm=[0, 2, 1, 3])
    g.multi("Concat", ["past_key", k], ["present_key"], "kv_append/ConcatK", axis=2)
    g.multi("Concat", ["past_value", v], ["present_value"], "kv_append/ConcatV", axis=2)
    k5 = g.node("Unsqueeze", ["present_key", "const.axis2"], "attn_layout/UnsqueezeK")
    k5 = g.node("Transpose", [k5], "attn_layout/TransposeKT", perm=[0, 1, 2, 4, 3])
    v5 = g.node("Unsqueeze", ["present_value", "const.axis2"], "attn_layout/UnsqueezeV")
    scores = g.node("MatMul", [q, k5], "attn_score/MatMul")
    scores = g.node("Mul", [scores, "const.scale"], "attn_score/Scale")
    scores = g.node("Add", [scores, "attn_mask"], "attn_score/Mask")
    probs = g.node("Softmax", [scores], "attn_softmax/Softmax", axis=-1)
    ctx = g.node("MatMul", [probs, v5], "attn_context/MatMul")
    ctx = g.node("Transpose", [ctx], "attn_context/Transpose", perm=[0, 3, 1, 2, 4])
    ctx = g.node("Reshape", [ctx, "const.shape_out"], "attn_context/Reshape")
    attn = _linear(g, spec, ctx, "out_proj", d, d)
    h1 = g.node("Add", [x, attn], "attn_residual/Add")
    n2 = _norm(g, spec, h1, "post_attn_norm")
    gated = spec.activation == "swiglu"
    up = _linear(g, spec, n2, "ffn_up", d, 2 * f if gated else f)
    if gated:
        gate, upv = g.multi("Split", [up, "const.split_ffn"], ["ffn_gate", "ffn_upv"],
                            "ffn_act/Split", axis=-1)
        sig = g.node("Sigmoid", [gate], "ffn_act/Sigmoid")
        silu = g.node("Mul", [gate, sig], "ffn_act/MulSilu")
        act = g.node("Mul", [silu, upv], "ffn_act/MulGate")
    elif spec.activation == "gelu":
        act = g.node("Gelu", [up], "ffn_act/Gelu", approximate="tanh")
    else:
        act = g.node("Relu", [up], "ffn_act/Relu")
    down = _linear(g, spec, act, "ffn_down", f, d)
    g.multi("Add", [h1, down], ["output"], "ffn_residual/Add")

    outputs = [helper.make_tensor_value_info("output", elem, ["batch", "seq", d]),
               helper.make_tensor_value_info("present_key", elem,
                                             ["batch", kvh, "total", hd]),
               helper.make_tensor_value_info("present_value", elem,
                                             ["batch", kvh, "total", hd])]
    graph = helper.make_graph(g.nodes, f"{spec.name}_decoder_block", g.inputs, outputs,
                              initializer=g.inits,
                              doc_string=f"One decoder block of {spec.name}; weights are "
                                         f"static-shape inputs listed in llmsim.weights.")
    model = helper.make_model(graph, producer_name="llmsim_nb",
                              opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    meta = {
        "format_version": FORMAT_VERSION,
        "model_name": spec.name,
        "num_layers": spec.num_layers,
        "hidden_size": d,
        "num_heads": h,
        "num_kv_heads": kvh,
        "head_dim": hd,
        "ffn_hidden_size": f,
        "vocab_size": spec.vocab_size,
        "max_seq_len": spec.max_seq_len,
        "activation": spec.activation,
        "norm": spec.norm,
        "position": spec.position,
        "bias": str(spec.bias).lower(),
        "tied_embeddings": str(spec.tied_embeddings).lower(),
        "dtype_bytes": spec.dtype_bytes,
        "hidden_input": "hidden_states",
        "weights": ",".join(g.weights),
    }
    helper.set_model_props(model, {META_PREFIX + k_: str(v_) for k_, v_ in meta.items()})
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model


# --------------------------------------------------------------------------- import
def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props
            if p.key.startswith(META_PREFIX)}


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
        If the file lacks the ``llmsim.*`` metadata :func:`export_block_onnx`
        writes.
    """
    meta = _metadata(_load_model(path_or_model))
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


def _load_model(path_or_model) -> onnx.ModelProto:
    if isinstance(path_or_model, onnx.ModelProto):
        return path_or_model
    if isinstance(path_or_model, (str, os.PathLike)):
        return onnx.load(os.fspath(path_or_model))
    raise ValueError(f"path_or_model must be a path or an onnx.ModelProto, got "
                     f"{type(path_or_model).__name__}")


def _dims(vi: onnx.ValueInfoProto) -> list[int | None] | None:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _op_label(node: onnx.NodeProto) -> str | None:
    parts = [p for p in node.name.split("/") if p]
    if len(parts) >= 2:
        return parts[-2]
    return parts[0] if parts else None


class _BlockGraph:
    """Indexes of one ONNX graph that the importer queries."""

    def __init__(self, model: onnx.ModelProto):
        try:
            inferred = shape_inference.infer_shapes(model)
        except Exception as exc:  # noqa: BLE001 - onnx raises several error types
            raise ValueError(f"ONNX shape inference failed on this block: {exc}") from exc
        graph = inferred.graph
        self.graph = graph
        self.nodes = list(graph.node)
        self.meta = _metadata(model)
        self.shapes: dict[str, list[int | None] | None] = {}
        self.elem_types: dict[str, int] = {}
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            self.shapes[vi.name] = _dims(vi)
            self.elem_types[vi.name] = vi.type.tensor_type.elem_type
        self.weight_sizes: dict[str, int] = {}
        for init in graph.initializer:
            self.shapes[init.name] = list(init.dims)
            self.elem_types[init.name] = init.data_type
            self.weight_sizes[init.name] = int(np.prod(init.dims, dtype=np.int64))
        init_names = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in init_names]
        marked = self.meta.get("weights")
        for vi in inputs:
            dims = self.shapes.get(vi.name)
            if marked is not None:
                is_weight = vi.name in set(marked.split(",")) or vi.doc_string == "weight"
            else:  # foreign file: a fully static input is a parameter
                is_weight = bool(dims) and all(isinstance(x, int) and x > 0 for x in dims)
            if is_weight:
                self.weight_sizes[vi.name] = int(np.prod(dims, dtype=np.int64))
        self.graph_inputs = [vi.name for vi in inputs if vi.name not in self.weight_sizes]
        self.graph_outputs = {o.name for o in graph.output}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for i, node in enumerate(self.nodes):
            for out in node.output:
                self.producer[out] = i
            for inp in node.input:
                if inp:
                    self.consumers[inp].append(i)
        self.const: set[str] = set(self.weight_sizes)   # weights and constants
        self.shape_t: set[str] = set()                  # shape-valued tensors
        for node in self.nodes:
            ins = [t for t in node.input if t]
            if node.op_type == "Constant" or (ins and all(t in self.const for t in ins)):
                self.const.update(node.output)
                for out in node.output:  # constant-folded weights keep their size
                    dims = self.shapes.get(out)
                    if out not in self.weight_sizes and dims and all(
                            isinstance(x, int) for x in dims):
                        self.weight_sizes[out] = int(np.prod(dims, dtype=np.int64))
            elif node.op_type in ("Shape", "Size") or (
                    ins and all(t in self.const or t in self.shape_t for t in ins)):
                self.shape_t.update(node.output)

    def is_act(self, name: str) -> bool:
        return bool(name) and name not in self.const and name not in self.shape_t

    def act_inputs(self, node: onnx.NodeProto) -> list[str]:
        return [t for t in node.input if self.is_act(t)]

    def width(self, name: str, what: str) -> int:
        dims = self.shapes.get(name)
        if not dims:
            raise ValueError(f"cannot infer the shape of tensor {name!r} ({what}); give the "
                             f"graph static feature dims and symbolic token dims")
        return int(np.prod([x for x in dims if isinstance(x, int) and x > 0], dtype=np.int64))

    def param_elements(self, name: str) -> int:
        """Elements of a parameter tensor; scalars and integer constants count 0."""
        size = self.weight_sizes.get(name, 0)
        if size <= 1 or self.elem_types.get(name) in (TensorProto.INT64, TensorProto.INT32):
            return 0
        return size


def _check_ops(model: onnx.ModelProto) -> None:
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in SUPPORTED_OPS:
            raise ValueError(
                f"ONNX op type {node.op_type!r} (node {node.name!r}, domain "
                f"{node.domain or 'ai.onnx'!r}) is not supported by import_block_onnx; "
                f"supported op types are {sorted(SUPPORTED_OPS)}")


class _Groups:
    """Union-find over node indices."""

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def import_block_onnx(path_or_model, *, num_layers: int | None = None,
                      vocab_size: int | None = None, name: str | None = None,
                      position: str | None = None, dtype_bytes: int | None = None
                      ) -> BlockTemplate:
    """Read an ONNX decoder block into a :class:`~.template.BlockTemplate`.

    Parameters
    ----------
    path_or_model : str, path-like or onnx.ModelProto
        A block written by :func:`export_block_onnx`, or a user's block that
        follows the same conventions (module docstring).
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
    model = _load_model(path_or_model)
    _check_ops(model)
    bg = _BlockGraph(model)
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

    hidden_in = meta.get("hidden_input")
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
    hidden = bg.width(hidden_in, "hidden-state input")
    if dtype_bytes is None:
        dtype_bytes = int(meta["dtype_bytes"]) if "dtype_bytes" in meta else _ELEM_BYTES.get(
            bg.elem_types.get(hidden_in), 2)

    nodes = bg.nodes
    n = len(nodes)
    kind_of: dict[int, str] = {}   # node -> "free" | "anchor" | "vector"
    for i, node in enumerate(nodes):
        ins = [t for t in node.input if t]
        if node.op_type in FREE_OPS or all(not bg.is_act(t) for t in ins):
            kind_of[i] = "free"   # shape ops, and anything computed from constants only
        elif node.op_type in ANCHOR_OPS:
            kind_of[i] = "anchor"
        else:
            kind_of[i] = "vector"

    groups = _Groups(n)
    origin_cache: dict[str, frozenset] = {}

    def origin(t: str) -> frozenset:
        """Groups (node roots) or graph inputs a tensor comes from, through free ops."""
        if t in origin_cache:
            return origin_cache[t]
        if t not in bg.producer:
            res = frozenset({("input", t)})
        else:
            p = bg.producer[t]
            if kind_of[p] == "free":
                res = frozenset().union(*[origin(x) for x in bg.act_inputs(nodes[p])])
            else:
                res = frozenset({("node", p)})
        origin_cache[t] = res
        return res

    def roots(t: str) -> set[int]:
        return {groups.find(x[1]) for x in origin(t) if x[0] == "node"}

    # 1. Classify matmuls and fold bias adds into their GEMM.
    gemm_info: dict[int, dict[str, Any]] = {}
    attn_nodes: dict[int, OpKind] = {}
    softmax_nodes: set[int] = set()
    for i, node in enumerate(nodes):
        if kind_of[i] != "anchor":
            continue
        if node.op_type in ("MatMul", "Gemm"):
            a, b = node.input[0], node.input[1]
            if not bg.is_act(b) or not bg.is_act(a):
                if not bg.is_act(a):
                    raise ValueError(f"node {node.name!r} ({node.op_type}) multiplies a "
                                     f"weight on the left; only activations @ weight is "
                                     f"supported")
                shape = bg.shapes.get(b)
                if not shape or len(shape) != 2 or not all(isinstance(x, int) for x in shape):
                    raise ValueError(f"node {node.name!r}: weight {b!r} must be a static 2-D "
                                     f"tensor, got shape {shape}")
                k_, n_ = shape
                attrs = {a_.name: helper.get_attribute_value(a_) for a_ in node.attribute}
                if node.op_type == "Gemm" and attrs.get("transB", 0):
                    k_, n_ = n_, k_
                params = bg.param_elements(node.input[2]) if (
                    node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]) else 0
                gemm_info[i] = dict(k=k_, n=n_, params=params)
            else:
                attn_nodes[i] = OpKind.ATTN_SCORE  # refined below
        elif node.op_type == "Softmax":
            softmax_nodes.add(i)
    for i, node in enumerate(nodes):  # bias: Add(gemm_out, weight)
        if node.op_type != "Add" or kind_of[i] != "vector":
            continue
        acts = bg.act_inputs(node)
        params = [t for t in node.input if t and t in bg.const]
        if len(acts) == 1 and len(params) == 1 and bg.param_elements(params[0]) > 0:
            src = [x[1] for x in origin(acts[0]) if x[0] == "node"]
            if len(src) == 1 and src[0] in gemm_info and len(origin(acts[0])) == 1:
                gemm_info[src[0]]["params"] += bg.param_elements(params[0])
                kind_of[i] = "bias"
                groups.union(src[0], i)
    for i in attn_nodes:
        srcs = {x[1] for t in bg.act_inputs(nodes[i]) for x in origin(t) if x[0] == "node"}
        if srcs & softmax_nodes:
            attn_nodes[i] = OpKind.ATTN_CONTEXT

    # 2. Residual adds: an Add onto the residual stream (hidden input or earlier residual).
    residual: set[int] = set()
    for i, node in enumerate(nodes):
        if node.op_type != "Add" or kind_of[i] != "vector":
            continue
        acts = bg.act_inputs(node)
        if len(acts) != 2:
            continue
        stream = {("input", hidden_in)} | {("node", r) for r in residual}
        if any(origin(t) & stream for t in acts):
            residual.add(i)
            kind_of[i] = "anchor"

    # 3. Cluster the remaining arithmetic nodes with their arithmetic neighbours.
    for i, node in enumerate(nodes):
        if kind_of[i] != "vector":
            continue
        for t in bg.act_inputs(node):
            for x in origin(t):
                if x[0] == "node" and kind_of[x[1]] == "vector":
                    groups.union(i, x[1])
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        if kind_of[i] != "free":
            members[groups.find(i)].append(i)

    def downstream(t: str, seen: set[str] | None = None) -> set[int]:
        """Non-free consumers of ``t`` reached through free ops (-1 = graph output)."""
        seen = set() if seen is None else seen
        if t in seen:
            return set()
        seen.add(t)
        out: set[int] = {-1} if t in bg.graph_outputs else set()
        for c in bg.consumers.get(t, []):
            if kind_of[c] == "free":
                for o in nodes[c].output:
                    out |= downstream(o, seen)
            else:
                out.add(c)
        return out

    # 4. Attention geometry: metadata, else static dims of the first score matmul.
    attn_geom: dict[str, int] | None = None
    if all(k in meta for k in ("num_heads", "num_kv_heads", "head_dim")):
        attn_geom = dict(num_heads=int(meta["num_heads"]),
                         num_kv_heads=int(meta["num_kv_heads"]),
                         head_dim=int(meta["head_dim"]))
    else:
        scores = [i for i, kd in attn_nodes.items() if kd is OpKind.ATTN_SCORE]
        if scores:
            node = nodes[min(scores)]
            qdims = bg.shapes.get(node.input[0])
            if not qdims or not isinstance(qdims[-1], int):
                raise ValueError(f"cannot infer head_dim from the query operand of "
                                 f"{node.name!r}; add {META_PREFIX}num_heads, num_kv_heads "
                                 f"and head_dim metadata")
            hd = qdims[-1]
            attn_geom = dict(num_heads=bg.width(node.input[0], "query") // hd,
                             num_kv_heads=bg.width(node.input[1], "key") // hd, head_dim=hd)

    # 5. Build one OpTemplate per group, in the order of the group's first node.
    templates: list[tuple[int, OpTemplate]] = []
    used: dict[str, int] = defaultdict(int)
    rope_found = False
    rope_ops: set[int] = set()   # positions in ``templates`` of rotary clusters
    norm_kind: str | None = None
    norm_params: int | None = None

    def label(i: int, default: str) -> str:
        base = _op_label(nodes[i]) or nodes[i].name or default
        used[base] += 1
        return base if used[base] == 1 else f"{base}_{used[base] - 1}"

    for root, idxs in sorted(members.items(), key=lambda kv_: min(kv_[1])):
        first = min(idxs)
        node = nodes[first]
        if first in gemm_info:
            info = gemm_info[first]
            templates.append((first, OpTemplate(label(first, "gemm"), OpKind.GEMM,
                                                weight_k=info["k"], weight_n=info["n"],
                                                param_elements=info["params"])))
            continue
        if first in attn_nodes or first in softmax_nodes:
            if attn_geom is None:
                raise ValueError("attention ops found but no score MatMul to infer heads from")
            kind = attn_nodes.get(first, OpKind.SOFTMAX)
            templates.append((first, OpTemplate(label(first, kind.value), kind, **attn_geom)))
            continue
        if first in residual:
            out = node.output[0]
            templates.append((first, OpTemplate(label(first, "residual"), OpKind.ELEMENTWISE,
                                                width=bg.width(out, node.name),
                                                num_inputs=2)))
            continue
        if node.op_type in ("LayerNormalization", "RMSNormalization"):
            nk = "layernorm" if node.op_type == "LayerNormalization" else "rmsnorm"
            params = sum(bg.param_elements(t) for t in node.input[1:] if t)
            norm_kind = norm_kind or nk
            norm_params = params if norm_params is None else norm_params
            templates.append((first, OpTemplate(label(first, "norm"), OpKind.NORM,
                                                width=bg.width(node.output[0], node.name),
                                                flops_per_element=NORM_FLOPS[nk],
                                                param_elements=params)))
            continue
        # An arithmetic cluster.
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
                elif bg.is_act(t) and not (roots(t) & {groups.find(m) for m in member_set}):
                    ext_in.add(t)
            for t in nodes[i].output:
                if downstream(t) - member_set:
                    outs.add(t)
        src_nodes = {x[1] for t in ext_in for x in origin(t) if x[0] == "node"}
        if src_nodes and all(attn_nodes.get(s) is OpKind.ATTN_SCORE or s in softmax_nodes
                             for s in src_nodes):
            continue  # scale / mask on the score matrix: part of the softmax's cost
        if not outs:
            continue  # dead code
        side = {("input", x) for x in bg.graph_inputs if x != hidden_in}
        width = sum(bg.width(t, nodes[first].name) for t in outs)
        # Token-shaped data read; side inputs such as cos/sin tables are not counted.
        in_width = sum(bg.width(t, nodes[first].name) for t in ext_in
                       if not origin(t) <= side)
        if {"ReduceMean"} & set(types):
            nk = "layernorm" if ("Sub" in types or types.count("ReduceMean") >= 2) else "rmsnorm"
            norm_kind = norm_kind or nk
            norm_params = params if norm_params is None else norm_params
            templates.append((first, OpTemplate(label(first, "norm"), OpKind.NORM, width=width,
                                                flops_per_element=NORM_FLOPS[nk],
                                                param_elements=params)))
        elif {"Neg", "Sin", "Cos"} & set(types):
            rope_found = True
            rope_ops.add(len(templates))
            templates.append((first, OpTemplate(label(first, "rope"), OpKind.ELEMENTWISE,
                                                width=width, flops_per_element=3.0)))
        elif {"Gelu", "Relu", "Sigmoid", "Tanh", "Erf"} & set(types):
            if "Relu" in types:
                flops = ACT_FLOPS["relu"]
            elif "Sigmoid" in types:
                flops = ACT_FLOPS["swiglu"]
            else:
                flops = ACT_FLOPS["gelu"]
            num_inputs = max(1, round(in_width / width)) if width else 1
            templates.append((first, OpTemplate(label(first, "activation"), OpKind.ACTIVATION,
                                                width=width, num_inputs=num_inputs,
                                                flops_per_element=flops,
                                                param_elements=params)))
        else:
            num_inputs = max(1, round(in_width / width)) if width else 1
            templates.append((first, OpTemplate(label(first, "elementwise"),
                                                OpKind.ELEMENTWISE, width=width,
                                                num_inputs=num_inputs,
                                                flops_per_element=float(len(idxs)),
                                                param_elements=params)))

    # Adjacent rotary clusters (q then k) are one op, as in decoder_template.
    block: list[OpTemplate] = []
    prev_rope = False
    for pos_, (_, t) in enumerate(templates):
        is_rope = pos_ in rope_ops
        if is_rope and prev_rope:
            prev = block.pop()
            t = OpTemplate(prev.name, OpKind.ELEMENTWISE, width=prev.width + t.width,
                           flops_per_element=3.0)
        block.append(t)
        prev_rope = is_rope

    norm = meta.get("norm", norm_kind or "layernorm")
    if norm not in NORM_FLOPS:
        raise ValueError(f"{META_PREFIX}norm={norm!r} is not one of {tuple(NORM_FLOPS)}")
    if "norm" in meta or norm_params is None:
        norm_params = 2 * hidden if norm == "layernorm" else hidden
    pos = position or meta.get("position") or ("rope" if rope_found else "learned")
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
                         embedding, tuple(block), head, layers, int(dtype_bytes))
