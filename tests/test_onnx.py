"""ONNX export of a decoder block, import back to a BlockTemplate, round trips."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from llmsim_nb.models import (BatchShape, ModelSpec, OpKind, decoder_template,
                              export_block_onnx, get_model, import_block_onnx, list_models)
from llmsim_nb.models.onnx import SUPPORTED_OPS, spec_from_onnx_metadata

ROUND_TRIP = ["gpt3-6.7b", "llama-2-70b", "llama-7b", "opt-1.3b", "llama-3.1-8b", "gpt2"]
BATCH = BatchShape.from_lists([512, 1, 1, 37], [0, 1023, 7, 100],
                              num_logit_tokens=[1, 1, 1, 0])


def _strip_metadata(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    del copy.metadata_props[:]
    return copy


def _kind_totals(blocks):
    totals = {}
    for blk in blocks:
        for op in blk.ops:
            f, b = totals.get(op.kind, (0.0, 0.0))
            totals[op.kind] = (f + blk.repeat * op.total_flops,
                               b + blk.repeat * op.total_bytes)
    return totals


# ------------------------------------------------------------------------- export
def _one_kind(name):
    spec = get_model(name)
    return not (spec.moe or spec.mla or spec.layer_types or spec.qk_norm
                or spec.head_dim * spec.num_heads != spec.hidden_size)


@pytest.mark.parametrize("name", [n for n in list_models() if not _one_kind(n)])
def test_models_the_block_format_cannot_hold_are_refused_by_field(name):
    with pytest.raises(ValueError, match=rf"export_block_onnx\('{name}'\): the block format "
                                         rf"holds one dense, full-attention layer; the spec "
                                         rf"sets \["):
        export_block_onnx(get_model(name))


@pytest.mark.parametrize("name", [n for n in list_models() if _one_kind(n)])
def test_every_catalog_model_exports_a_valid_small_graph(name):
    start = time.perf_counter()
    model = export_block_onnx(get_model(name))
    assert time.perf_counter() - start < 1.0
    onnx.checker.check_model(model, full_check=True)
    assert model.ByteSize() < 1_000_000
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["llmsim.num_layers"] == str(get_model(name).num_layers)
    weights = meta["llmsim.weights"].split(",")
    assert "qkv_proj.weight" in weights and "ffn_down.weight" in weights


def test_70b_block_is_tiny_and_weights_are_static_inputs():
    model = export_block_onnx("llama-2-70b")
    assert model.ByteSize() < 20_000
    inputs = {i.name: [d.dim_value or d.dim_param for d in i.type.tensor_type.shape.dim]
              for i in model.graph.input}
    assert inputs["qkv_proj.weight"] == [8192, 8192 + 2 * 1024]
    assert inputs["ffn_up.weight"] == [8192, 2 * 28672]
    assert inputs["hidden_states"] == ["batch", "seq", 8192]
    assert inputs["past_key"] == ["batch", 8, "past", 128]
    assert {o.name for o in model.graph.output} == {"output", "present_key", "present_value"}
    # only tiny constants are stored
    assert sum(np.prod(t.dims) for t in model.graph.initializer) < 32


def test_export_writes_file_and_import_reads_it(tmp_path):
    path = tmp_path / "block.onnx"
    model = export_block_onnx(get_model("llama-2-7b"), path)
    assert path.exists() and path.stat().st_size == len(model.SerializeToString())
    assert import_block_onnx(path) == decoder_template(get_model("llama-2-7b"))
    assert import_block_onnx(str(path)).name == "llama-2-7b"


def test_export_by_name_and_bad_input():
    assert export_block_onnx("gpt2").graph.name == "gpt2_decoder_block"
    with pytest.raises(ValueError, match="ModelSpec or a catalog name"):
        export_block_onnx(3.5)
    odd = ModelSpec("odd", num_layers=1, hidden_size=12, num_heads=4, num_kv_heads=4,
                    ffn_hidden_size=8, vocab_size=10, position="rope")
    with pytest.raises(ValueError, match="head_dim=3 must be even"):
        export_block_onnx(odd)


def test_metadata_rebuilds_the_spec():
    for name in ("llama-2-70b", "gpt3-6.7b", "opt-1.3b"):
        spec = get_model(name)
        rebuilt = spec_from_onnx_metadata(export_block_onnx(spec))
        assert rebuilt == spec
    with pytest.raises(ValueError, match="metadata lacks"):
        spec_from_onnx_metadata(_strip_metadata(export_block_onnx("gpt2")))


# ---------------------------------------------------------- numerical semantics
def _numpy_block(spec: ModelSpec, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Reference pre-norm decoder block in numpy (what the graph must compute)."""
    d, h, kvh, hd, f = (spec.hidden_size, spec.num_heads, spec.num_kv_heads, spec.head_dim,
                        spec.ffn_hidden_size)
    x = feeds["hidden_states"]
    eps = 1e-5

    def norm(t, prefix):
        w = feeds[f"{prefix}.weight"]
        if spec.norm == "layernorm":
            mu = t.mean(-1, keepdims=True)
            var = ((t - mu) ** 2).mean(-1, keepdims=True)
            return (t - mu) / np.sqrt(var + eps) * w + feeds[f"{prefix}.bias"]
        return t / np.sqrt((t ** 2).mean(-1, keepdims=True) + eps) * w

    def linear(t, prefix):
        y = t @ feeds[f"{prefix}.weight"]
        return y + feeds[f"{prefix}.bias"] if spec.bias else y

    def rope(t):
        half = hd // 2
        rot = np.concatenate([-t[..., half:], t[..., :half]], axis=-1)
        return t * feeds["cos"] + rot * feeds["sin"]

    b, s, _ = x.shape
    qkv = linear(norm(x, "input_norm"), "qkv_proj")
    q = qkv[..., :d].reshape(b, s, h, hd)
    k = qkv[..., d:d + kvh * hd].reshape(b, s, kvh, hd)
    v = qkv[..., d + kvh * hd:].reshape(b, s, kvh, hd)
    if spec.position == "rope":
        q, k = rope(q), rope(k)
    keys = np.concatenate([feeds["past_key"], k.transpose(0, 2, 1, 3)], axis=2)
    vals = np.concatenate([feeds["past_value"], v.transpose(0, 2, 1, 3)], axis=2)
    ctx = np.empty((b, s, h, hd), dtype=x.dtype)
    group = h // kvh
    mask = feeds["attn_mask"][:, 0, 0]  # [b, s, total]
    for head in range(h):
        kh = head // group
        scores = q[:, :, head] @ keys[:, kh].transpose(0, 2, 1) / np.sqrt(hd) + mask
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        ctx[:, :, head] = (scores / scores.sum(-1, keepdims=True)) @ vals[:, kh]
    h1 = x + linear(ctx.reshape(b, s, d), "out_proj")
    up = linear(norm(h1, "post_attn_norm"), "ffn_up")
    if spec.activation == "swiglu":
        gate, upv = up[..., :f], up[..., f:]
        act = gate / (1 + np.exp(-gate)) * upv
    elif spec.activation == "gelu":
        act = 0.5 * up * (1 + np.tanh(np.sqrt(2 / np.pi) * (up + 0.044715 * up ** 3)))
    else:
        act = np.maximum(up, 0)
    return h1 + linear(act, "ffn_down")


@pytest.mark.parametrize("spec", [
    ModelSpec("tiny-llama-gqa", num_layers=2, hidden_size=16, num_heads=4, num_kv_heads=2,
              ffn_hidden_size=24, vocab_size=50, activation="swiglu", norm="rmsnorm",
              position="rope", bias=False, tied_embeddings=False, dtype_bytes=4),
    ModelSpec("tiny-gpt", num_layers=2, hidden_size=16, num_heads=2, num_kv_heads=2,
              ffn_hidden_size=32, vocab_size=50, activation="gelu", dtype_bytes=4),
    ModelSpec("tiny-opt", num_layers=2, hidden_size=12, num_heads=3, num_kv_heads=3,
              ffn_hidden_size=20, vocab_size=50, activation="relu", dtype_bytes=4),
], ids=lambda s: s.name)
def test_exported_block_computes_a_decoder_block(spec):
    model = export_block_onnx(spec)
    rng = np.random.default_rng(0)
    b, s, past, hd, kvh = 2, 3, 4, spec.head_dim, spec.num_kv_heads
    feeds = {}
    for vi in model.graph.input:
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        shape = {"hidden_states": (b, s, spec.hidden_size), "past_key": (b, kvh, past, hd),
                 "past_value": (b, kvh, past, hd), "cos": (b, s, 1, hd),
                 "sin": (b, s, 1, hd)}.get(vi.name, tuple(dims))
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32) * 0.5
    causal = np.triu(np.full((s, past + s), -np.inf, dtype=np.float32), k=past + 1)
    feeds["attn_mask"] = np.broadcast_to(causal, (b, 1, 1, s, past + s)).copy()
    out, present_k, present_v = ReferenceEvaluator(model).run(None, feeds)
    np.testing.assert_allclose(out, _numpy_block(spec, feeds), rtol=2e-4, atol=2e-4)
    assert present_k.shape == (b, kvh, past + s, hd)
    np.testing.assert_array_equal(present_v[:, :, :past], feeds["past_value"])


# -------------------------------------------------------------------- round trip
@pytest.mark.parametrize("name", ROUND_TRIP)
def test_round_trip_gives_the_decoder_template(name):
    spec = get_model(name)
    imported = import_block_onnx(export_block_onnx(spec))
    reference = decoder_template(spec)
    assert imported == reference  # identical op lists, names and parameters
    got, want = imported.instantiate(BATCH), reference.instantiate(BATCH)
    for g_blk, w_blk in zip(got, want):
        assert g_blk.op_names == w_blk.op_names and g_blk.repeat == w_blk.repeat
        for g_op, w_op in zip(g_blk.ops, w_blk.ops):
            np.testing.assert_array_equal(g_op.flops, w_op.flops)
            np.testing.assert_array_equal(g_op.bytes_read, w_op.bytes_read)
            np.testing.assert_array_equal(g_op.bytes_written, w_op.bytes_written)
    g_tot, w_tot = _kind_totals(got), _kind_totals(want)
    assert set(g_tot) == set(w_tot)
    for kind in w_tot:
        assert g_tot[kind] == pytest.approx(w_tot[kind], rel=1e-9)


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_round_trip_without_metadata_infers_heads_and_weights(name):
    spec = get_model(name)
    bare = _strip_metadata(export_block_onnx(spec))
    with pytest.raises(ValueError, match="num_layers="):
        import_block_onnx(bare)
    with pytest.raises(ValueError, match="vocab_size="):
        import_block_onnx(bare, num_layers=spec.num_layers)
    imported = import_block_onnx(bare, num_layers=spec.num_layers,
                                 vocab_size=spec.vocab_size, name=spec.name)
    assert imported == decoder_template(spec)


def test_import_overrides_metadata():
    tpl = import_block_onnx(export_block_onnx("gpt2"), num_layers=3, name="short-gpt2",
                            vocab_size=7)
    assert (tpl.num_layers, tpl.name, tpl.head[-1].weight_n) == (3, "short-gpt2", 7)
    with pytest.raises(ValueError, match="num_layers=0"):
        import_block_onnx(export_block_onnx("gpt2"), num_layers=0)


def test_import_rejects_bad_argument():
    with pytest.raises(ValueError, match="path_or_model"):
        import_block_onnx(12)


# ------------------------------------------------------------------ foreign files
def _vi(name, dims, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, dims)


def _init(name, *shape, rng=np.random.default_rng(1)):
    return onnx.numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)


def _foreign_block(extra_nodes=(), d=32, heads=4, ffn=64):
    """A hand-written pre-norm block: separate q/k/v GEMMs, real initializers,
    torch-style node names, layout [batch, heads, seq, head_dim], no KV cache."""
    hd = d // heads
    inits = [_init("ln1.w", d), _init("ln1.b", d), _init("wq", d, d), _init("wk", d, d),
             _init("wv", d, d), _init("bq", d), _init("wo", d, d), _init("ln2.w", d),
             _init("ln2.b", d), _init("w1", d, ffn), _init("w2", ffn, d),
             onnx.numpy_helper.from_array(np.array([0, 0, heads, hd], np.int64), "shape4"),
             onnx.numpy_helper.from_array(np.array([0, 0, d], np.int64), "shape3"),
             onnx.numpy_helper.from_array(np.array(np.sqrt(hd), np.float32), "sqrt_hd")]
    L = "/model/layers.0"
    nodes = [
        helper.make_node("LayerNormalization", ["x", "ln1.w", "ln1.b"], ["n1"],
                         name=f"{L}/input_layernorm/LayerNormalization"),
        helper.make_node("MatMul", ["n1", "wq"], ["q0"], name=f"{L}/self_attn/q_proj/MatMul"),
        helper.make_node("Add", ["q0", "bq"], ["q1"], name=f"{L}/self_attn/q_proj/Add"),
        helper.make_node("MatMul", ["n1", "wk"], ["k0"], name=f"{L}/self_attn/k_proj/MatMul"),
        helper.make_node("MatMul", ["n1", "wv"], ["v0"], name=f"{L}/self_attn/v_proj/MatMul"),
        helper.make_node("Reshape", ["q1", "shape4"], ["q2"], name=f"{L}/self_attn/Reshape"),
        helper.make_node("Transpose", ["q2"], ["q"], perm=[0, 2, 1, 3],
                         name=f"{L}/self_attn/Transpose"),
        helper.make_node("Reshape", ["k0", "shape4"], ["k2"], name=f"{L}/self_attn/Reshape_1"),
        helper.make_node("Transpose", ["k2"], ["kT"], perm=[0, 2, 3, 1],
                         name=f"{L}/self_attn/Transpose_1"),
        helper.make_node("Reshape", ["v0", "shape4"], ["v2"], name=f"{L}/self_attn/Reshape_2"),
        helper.make_node("Transpose", ["v2"], ["v"], perm=[0, 2, 1, 3],
                         name=f"{L}/self_attn/Transpose_2"),
        helper.make_node("MatMul", ["q", "kT"], ["s0"], name=f"{L}/self_attn/MatMul"),
        helper.make_node("Div", ["s0", "sqrt_hd"], ["s1"], name=f"{L}/self_attn/Div"),
        helper.make_node("Softmax", ["s1"], ["p"], axis=-1, name=f"{L}/self_attn/Softmax"),
        helper.make_node("MatMul", ["p", "v"], ["c0"], name=f"{L}/self_attn/MatMul_1"),
        helper.make_node("Transpose", ["c0"], ["c1"], perm=[0, 2, 1, 3],
                         name=f"{L}/self_attn/Transpose_3"),
        helper.make_node("Reshape", ["c1", "shape3"], ["c2"], name=f"{L}/self_attn/Reshape_3"),
        helper.make_node("MatMul", ["c2", "wo"], ["o"], name=f"{L}/self_attn/o_proj/MatMul"),
        helper.make_node("Add", ["x", "o"], ["h1"], name=f"{L}/Add"),
        helper.make_node("LayerNormalization", ["h1", "ln2.w", "ln2.b"], ["n2"],
                         name=f"{L}/post_attention_layernorm/LayerNormalization"),
        helper.make_node("MatMul", ["n2", "w1"], ["u"], name=f"{L}/mlp/fc1/MatMul"),
        helper.make_node("Relu", ["u"], ["a"], name=f"{L}/mlp/act/Relu"),
        helper.make_node("MatMul", ["a", "w2"], ["dn"], name=f"{L}/mlp/fc2/MatMul"),
        helper.make_node("Add", ["h1", "dn"], ["y"], name=f"{L}/Add_1"),
        *extra_nodes,
    ]
    graph = helper.make_graph(nodes, "foreign", [_vi("x", ["batch", "seq", d])],
                              [_vi("y", ["batch", "seq", d])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_foreign_block_imports():
    model = _foreign_block()
    with pytest.raises(ValueError, match="num_layers="):
        import_block_onnx(model)
    tpl = import_block_onnx(model, num_layers=6, vocab_size=1000)
    assert tpl.name == "foreign" and tpl.num_layers == 6 and tpl.dtype_bytes == 4
    names = [t.name for t in tpl.block]
    assert names == ["input_layernorm", "q_proj", "k_proj", "v_proj", "self_attn",
                     "self_attn_1", "self_attn_2", "o_proj", "layers.0",
                     "post_attention_layernorm", "fc1", "act", "fc2", "layers.0_1"]
    kinds = [t.kind for t in tpl.block]
    assert kinds == [OpKind.NORM, OpKind.GEMM, OpKind.GEMM, OpKind.GEMM, OpKind.ATTN_SCORE,
                     OpKind.SOFTMAX, OpKind.ATTN_CONTEXT, OpKind.GEMM, OpKind.ELEMENTWISE,
                     OpKind.NORM, OpKind.GEMM, OpKind.ACTIVATION, OpKind.GEMM,
                     OpKind.ELEMENTWISE]
    q_proj = tpl.block[1]
    assert (q_proj.weight_k, q_proj.weight_n, q_proj.param_elements) == (32, 32, 32)
    assert tpl.block[2].param_elements == 0
    score = tpl.block[4]
    assert (score.num_heads, score.num_kv_heads, score.head_dim) == (4, 4, 8)
    assert tpl.block[0].param_elements == 64 and tpl.block[0].flops_per_element == 8
    act = tpl.block[11]
    assert (act.width, act.num_inputs, act.flops_per_element) == (64, 1, 1)
    assert tpl.block[8].num_inputs == 2 and tpl.block[8].width == 32
    # embedding / head from the arguments and the block's own norm
    assert tpl.embedding[0].num_inputs == 2  # no rotary found -> learned positions
    assert tpl.head[0].param_elements == 64 and tpl.head[1].weight_n == 1000
    # and it instantiates like any template
    emb, blk, head = tpl.instantiate(BatchShape.from_lists([5, 1], [0, 9]))
    assert blk.repeat == 6 and len(blk.ops) == 14
    gemm_flops = sum(op.total_flops for op in blk.ops if op.kind is OpKind.GEMM)
    assert gemm_flops == 2 * 6 * (4 * 32 * 32 + 2 * 32 * 64) + 6 * 32


def test_foreign_decomposed_norm_and_gemm_bias():
    """A torch-style decomposed LayerNorm and a Gemm with transB are recognised."""
    d = 16
    inits = [_init("g", d), _init("beta", d), _init("w", 24, d), _init("bias", 24),
             onnx.numpy_helper.from_array(np.array([-1], np.int64), "axes"),
             onnx.numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             onnx.numpy_helper.from_array(np.array(1e-5, np.float32), "eps")]
    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["mu"], name="ln/ReduceMean"),
        helper.make_node("Sub", ["x", "mu"], ["xc"], name="ln/Sub"),
        helper.make_node("Pow", ["xc", "two"], ["sq"], name="ln/Pow"),
        helper.make_node("ReduceMean", ["sq", "axes"], ["var"], name="ln/ReduceMean_1"),
        helper.make_node("Add", ["var", "eps"], ["ve"], name="ln/Add"),
        helper.make_node("Sqrt", ["ve"], ["sd"], name="ln/Sqrt"),
        helper.make_node("Div", ["xc", "sd"], ["xn"], name="ln/Div"),
        helper.make_node("Mul", ["xn", "g"], ["xg"], name="ln/Mul"),
        helper.make_node("Add", ["xg", "beta"], ["n"], name="ln/Add_1"),
        helper.make_node("Gemm", ["n", "w", "bias"], ["y"], transB=1, name="fc/Gemm"),
    ]
    graph = helper.make_graph(nodes, "g", [_vi("x", ["tokens", d])], [_vi("y", ["tokens", 24])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    with pytest.raises(ValueError, match="hidden-state input"):
        import_block_onnx(model, num_layers=1, vocab_size=10)  # input is rank 2
    model.metadata_props.add(key="llmsim.hidden_input", value="x")
    tpl = import_block_onnx(model, num_layers=1, vocab_size=10)
    norm, fc = tpl.block
    assert (norm.kind, norm.name, norm.flops_per_element, norm.param_elements, norm.width) == (
        OpKind.NORM, "ln", 8, 32, 16)
    assert (fc.kind, fc.weight_k, fc.weight_n, fc.param_elements) == (OpKind.GEMM, 16, 24, 24)


@pytest.mark.parametrize("op_type", ["Conv", "TopK"])
def test_unsupported_op_is_named(op_type):
    extra = {
        "Conv": helper.make_node("Conv", ["y", "y"], ["bad"], name="my_conv_node"),
        "TopK": helper.make_node("TopK", ["y", "kk"], ["bad", "idx"], name="my_topk_node"),
    }[op_type]
    model = _foreign_block()
    graph = model.graph
    graph.node.append(extra)
    graph.initializer.append(onnx.numpy_helper.from_array(np.array([2], np.int64), "kk"))
    with pytest.raises(ValueError) as err:
        import_block_onnx(model, num_layers=1, vocab_size=10)
    msg = str(err.value)
    assert repr(op_type) in msg and f"my_{op_type.lower()}_node" in msg
    assert "Softmax" in msg and "MatMul" in msg  # lists what is supported


def test_supported_ops_cover_the_export():
    for name in ("llama-2-70b", "gpt3-6.7b", "opt-1.3b"):
        ops = {n.op_type for n in export_block_onnx(name).graph.node}
        assert ops <= SUPPORTED_OPS


# ------------------------------------------------------------------- packaging
def test_importing_models_does_not_import_onnx():
    # A fresh interpreter: this one imported onnx at the top of this file.
    code = ("import llmsim_nb.models, sys; assert 'onnx' not in sys.modules, "
            "sorted(m for m in sys.modules if 'onnx' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_onnx_names_resolve_lazily_from_models():
    import llmsim_nb.models as models
    from llmsim_nb.models import onnx as onnx_pkg
    for name in ("export_block_onnx", "import_block_onnx"):
        assert name in models.__all__ and name in dir(models)
        assert getattr(models, name) is getattr(onnx_pkg, name)
    with pytest.raises(AttributeError, match="no_such_name"):
        models.no_such_name  # noqa: B018

