"""ONNX export: one pre-norm decoder block of a :class:`~llmsim_nb.models.spec.ModelSpec`.

:func:`export_block_onnx` writes the block with :mod:`onnx.helper` (opset 20,
standard ops only).

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
  is the fused layout :func:`~llmsim_nb.models.decoder.decoder_template` prices.
* Attention is laid out ``[batch, kv_heads, group, seq, head_dim]`` so that a
  grouped-query model broadcasts its K/V over the query group inside
  ``MatMul`` (no ``Expand`` and no copy of the cache).
* Norms: ``LayerNormalization`` for layernorm; for rmsnorm the decomposed
  pattern ``Pow -> ReduceMean -> Add(eps) -> Sqrt -> Div -> Mul(weight)``
  that exporters emit for LLaMA.
* Metadata (``metadata_props``, keys prefixed ``llmsim.``) carries what is not
  in a block: ``num_layers``, ``vocab_size``, ``hidden_size``, ``norm``,
  ``position``, ``dtype_bytes``, head counts, and the other spec fields, so
  :func:`~.importer.spec_from_onnx_metadata` can rebuild the spec.

Node names are ``"<op>/<part>"``: the importer names each operator by the path
part before the last, so a round trip gives back the names of
:func:`~llmsim_nb.models.decoder.decoder_template`.
"""

from __future__ import annotations

import math
import os

import onnx
from onnx import TensorProto, helper

from ..spec import ModelSpec
from .conventions import ELEM_TYPES, FORMAT_VERSION, IR_VERSION, META_PREFIX, OPSET

#: Norm epsilon written into the graph (its value does not change any cost).
EPS = 1e-5


class _GraphBuilder:
    """Small helper that names nodes ``"<op>/<part>"`` and collects the graph."""

    def __init__(self, elem_type: int):
        self.elem = elem_type
        self.nodes: list[onnx.NodeProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.weights: list[str] = []
        self.inits: list[onnx.TensorProto] = []

    def node(self, op_type: str, inputs: list[str], name: str, **attrs) -> str:
        # Tensor names may not contain "/" in every runtime; node names keep it.
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
                      axis=-1, epsilon=EPS)
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


def _declare_inputs(g: _GraphBuilder, spec: ModelSpec, rope: bool) -> None:
    """The activation and cache inputs, then the constant initializers."""
    elem, d, hd = g.elem, spec.hidden_size, spec.head_dim
    h, kvh, kv, f = spec.num_heads, spec.num_kv_heads, spec.kv_dim, spec.ffn_hidden_size
    g.inputs.append(helper.make_tensor_value_info("hidden_states", elem, ["batch", "seq", d]))
    for nm in ("past_key", "past_value"):
        g.inputs.append(helper.make_tensor_value_info(nm, elem, ["batch", kvh, "past", hd]))
    if rope:
        for nm in ("cos", "sin"):
            g.inputs.append(helper.make_tensor_value_info(nm, elem, ["batch", "seq", 1, hd]))
    g.inputs.append(helper.make_tensor_value_info("attn_mask", elem,
                                                  ["batch", 1, 1, "seq", "total"]))
    g.scalar("const.two", 2.0)
    g.scalar("const.eps", EPS)
    g.scalar("const.scale", 1.0 / math.sqrt(hd))
    g.ints("const.axes_last", [-1])
    g.ints("const.zero", [0])
    g.ints("const.half", [hd // 2])
    g.ints("const.big", [hd])
    g.ints("const.split_qkv", [d, kv, kv])
    g.ints("const.split_ffn", [f, f])
    g.ints("const.shape_q", [0, 0, h, hd])
    g.ints("const.shape_kv", [0, 0, kvh, hd])
    g.ints("const.shape_q5", [0, 0, kvh, h // kvh, hd])
    g.ints("const.shape_out", [0, 0, d])
    g.ints("const.axis2", [2])


def _attention(g: _GraphBuilder, spec: ModelSpec, x: str, rope: bool) -> str:
    """Norm, QKV, rotary, the KV-cache append, attention and the output projection."""
    d, kv = spec.hidden_size, spec.kv_dim
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
    # A size-1 group axis on K and V lets MatMul broadcast them over the query group.
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
    return _linear(g, spec, ctx, "out_proj", d, d)


def _ffn(g: _GraphBuilder, spec: ModelSpec, h1: str) -> None:
    """Norm, the (gated) feed-forward network and the residual add into ``output``."""
    d, f = spec.hidden_size, spec.ffn_hidden_size
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


def _metadata_entries(spec: ModelSpec, weights: list[str]) -> dict[str, str]:
    """The ``llmsim.*`` entries: what a block does not say about its model."""
    meta = {
        "format_version": FORMAT_VERSION,
        "model_name": spec.name,
        "num_layers": spec.num_layers,
        "hidden_size": spec.hidden_size,
        "num_heads": spec.num_heads,
        "num_kv_heads": spec.num_kv_heads,
        "head_dim": spec.head_dim,
        "ffn_hidden_size": spec.ffn_hidden_size,
        "vocab_size": spec.vocab_size,
        "max_seq_len": spec.max_seq_len,
        "activation": spec.activation,
        "norm": spec.norm,
        "position": spec.position,
        "bias": str(spec.bias).lower(),
        "tied_embeddings": str(spec.tied_embeddings).lower(),
        "dtype_bytes": spec.dtype_bytes,
        "hidden_input": "hidden_states",
        "weights": ",".join(weights),
    }
    return {META_PREFIX + k_: str(v_) for k_, v_ in meta.items()}


def export_block_onnx(spec: ModelSpec | str, path: str | os.PathLike | None = None
                      ) -> onnx.ModelProto:
    """Export one decoder block of ``spec`` as an ONNX model.

    Parameters
    ----------
    spec : ModelSpec or str
        The model (a catalog name is looked up with
        :func:`~llmsim_nb.models.catalog.get_model`).
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
        from ..catalog import get_model
        spec = get_model(spec)
    if not isinstance(spec, ModelSpec):
        raise ValueError(f"spec must be a ModelSpec or a catalog name, got {spec!r}")
    unexported = [name for name, used in (
        ("moe", spec.moe is not None), ("mla", spec.mla is not None),
        ("layer_types", bool(spec.layer_types)), ("qk_norm", spec.qk_norm),
        ("attention_sinks", spec.attention_sinks),
        ("weight_dtype", bool(spec.weight_dtype or spec.expert_weight_dtype)),
        ("kv_dtype", bool(spec.kv_dtype)),
        ("head_dim", spec.head_dim * spec.num_heads != spec.hidden_size)) if used]
    if unexported:
        raise ValueError(f"export_block_onnx({spec.name!r}): the block format holds one dense, "
                         f"full-attention layer; the spec sets {unexported}, which it cannot "
                         f"express (allowed: dense models of one kind of layer)")
    d, kvh, hd = spec.hidden_size, spec.num_kv_heads, spec.head_dim
    rope = spec.position == "rope"
    if rope and hd % 2:
        raise ValueError(f"ModelSpec.head_dim={hd} must be even for rotary embeddings "
                         f"(position='rope')")
    elem = ELEM_TYPES.get(spec.dtype_bytes, TensorProto.FLOAT16)
    g = _GraphBuilder(elem)

    # Graph inputs and nodes are appended in this order; the importer and the
    # tests rely on nodes being topologically sorted, which this order is.
    _declare_inputs(g, spec, rope)
    x = "hidden_states"
    attn = _attention(g, spec, x, rope)
    h1 = g.node("Add", [x, attn], "attn_residual/Add")
    _ffn(g, spec, h1)

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
    helper.set_model_props(model, _metadata_entries(spec, g.weights))
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model
