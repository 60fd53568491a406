"""Hardened at every door: HuggingFace configs, ONNX blocks and network files.

Each door has a table of (case, bad input, pattern): the input is written to a
file, read, and must be refused with a one-line ValueError that names the file,
then matches the pattern (the key or node, the value, what is allowed). Each
reader also gets a hypothesis fuzz test: random values swapped into a valid
file, random bytes, truncations. Every outcome must be a clean one-line
ValueError or a correct parse -- never another exception.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from llmsim_nb.models import (BatchShape, ModelSpec, OpKind, decoder_template,
                              model_from_hf_config)
from llmsim_nb.models.onnx import export_block_onnx, import_block_onnx, spec_from_onnx_metadata
from llmsim_nb.network import Topology, load_topology

HF_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "models" / "hf"
# LLMSIM_FUZZ_EXAMPLES=3000 runs a longer fuzz (about two minutes).
FUZZ = settings(max_examples=int(os.environ.get("LLMSIM_FUZZ_EXAMPLES", "150")), deadline=None,
                suppress_health_check=list(HealthCheck))


def one_line_error(call, where: str) -> str:
    """The ValueError ``call`` raises: one line, starting with ``where``."""
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    assert "\n" not in message, message
    assert message.startswith(where), message
    return message


# ================================================================ HuggingFace config.json
LLAMA = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "hidden_act": "silu",
    "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 131072,
    "mlp_bias": False, "model_type": "llama", "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}
GPT2 = {"model_type": "gpt2", "activation_function": "gelu_new", "n_embd": 768, "n_head": 12,
        "n_layer": 12, "n_positions": 1024, "vocab_size": 50257, "n_inner": None}
OPT = {"model_type": "opt", "activation_function": "relu", "do_layer_norm_before": True,
       "enable_bias": True, "ffn_dim": 8192, "hidden_size": 2048,
       "max_position_embeddings": 2048, "num_attention_heads": 32, "num_hidden_layers": 24,
       "vocab_size": 50272, "word_embed_proj_dim": 2048}
NEOX = {"model_type": "gpt_neox", "hidden_act": "gelu", "hidden_size": 512,
        "intermediate_size": 2048, "max_position_embeddings": 2048, "num_attention_heads": 8,
        "num_hidden_layers": 6, "vocab_size": 50304, "rotary_pct": 0.25,
        "tie_word_embeddings": False}
BASES = {"llama": LLAMA, "gpt2": GPT2, "opt": OPT, "neox": NEOX}


def patched(base: dict, **changes) -> str:
    """``base`` with keys changed (``None`` via ``_drop``), as JSON text."""
    data = dict(base)
    for key in changes.pop("_drop", ()):
        data.pop(key)
    data.update(changes)
    return json.dumps(data, indent=2)


# (id, file text, pattern after "HuggingFace config '<path>': ")
HF_CASES = [
    # ------------------------------------------------------------ strings, floats, bools
    ("tie as string", patched(LLAMA, tie_word_embeddings="false"),
     r"tie_word_embeddings='false' must be true or false \(a JSON boolean\)"),
    ("bias as string", patched(LLAMA, attention_bias="true"),
     r"attention_bias='true' must be true or false"),
    ("bias as int", patched(LLAMA, mlp_bias=0), r"mlp_bias=0 must be true or false"),
    ("tie null", patched(GPT2, tie_word_embeddings=None),
     r"tie_word_embeddings=None must be true or false"),
    ("opt pre-norm as string", patched(OPT, do_layer_norm_before="false"),
     r"do_layer_norm_before='false' must be true or false"),
    ("hidden fractional", patched(LLAMA, hidden_size=4096.5),
     r"hidden_size=4096\.5 must be a JSON integer >= 1, got a float"),
    ("hidden integral float", patched(LLAMA, hidden_size=4096.0),
     r"hidden_size=4096\.0 must be a JSON integer >= 1, got a float"),
    ("layers as string", patched(LLAMA, num_hidden_layers="32"),
     r"num_hidden_layers='32' must be a JSON integer >= 1, got str"),
    ("layers as bool", patched(LLAMA, num_hidden_layers=True),
     r"num_hidden_layers=True must be a JSON integer >= 1, got bool"),
    ("vocab huge", patched(LLAMA, vocab_size=2 ** 40),
     r"vocab_size=1099511627776 must be an integer in 1\.\.2147483647"),
    ("vocab list", patched(LLAMA, vocab_size=[128256]),
     r"vocab_size=\[128256\] must be a JSON integer >= 1, got list"),
    ("n_inner float", patched(GPT2, n_inner=3072.0), r"n_inner=3072\.0 must be a JSON integer"),
    ("positions nan", patched(LLAMA, max_position_embeddings=float("nan")),
     r"max_position_embeddings=nan must be a JSON integer"),
    # ------------------------------------------------------------ heads
    ("kv heads zero", patched(LLAMA, num_key_value_heads=0),
     r"num_key_value_heads=0 must be an integer in 1\.\.2147483647"),
    ("kv heads negative", patched(LLAMA, num_key_value_heads=-8),
     r"num_key_value_heads=-8 must be an integer in 1\.\."),
    ("kv heads not dividing", patched(LLAMA, num_key_value_heads=5),
     r"num_key_value_heads=5 does not divide num_attention_heads=32"),
    ("kv heads above heads", patched(LLAMA, num_key_value_heads=64),
     r"num_key_value_heads=64 does not divide num_attention_heads=32"),
    ("heads not dividing hidden", patched(LLAMA, num_attention_heads=3, num_key_value_heads=3),
     r"hidden_size=4096 is not divisible by num_attention_heads=3"),
    ("gpt2 heads not dividing", patched(GPT2, n_head=7),
     r"n_embd=768 is not divisible by n_head=7"),
    ("head_dim as string", patched(LLAMA, head_dim="128"),
     r"head_dim='128' must be a JSON integer"),
    # ------------------------------------------------------------ what is not modelled
    ("model_type unknown", patched(LLAMA, model_type="phi3"),
     r"model_type='phi3' is not supported; supported model_type values are \['llama', "),
    ("model_type moe without top-k", patched(LLAMA, model_type="mixtral", num_local_experts=8),
     r"missing required key 'num_experts_per_tok' \(the top-k of a mixtral model\)"),
    ("moe type not modelled", patched(LLAMA, model_type="qwen2_moe", num_experts=60),
     r"model_type='qwen2_moe' is not supported \(mixture-of-experts with a gated shared "
     r"expert; num_experts=60\)"),
    ("shared experts on mixtral", patched(LLAMA, model_type="mixtral", num_local_experts=8,
                                          num_experts_per_tok=2, n_shared_experts=1),
     r"n_shared_experts=1 describes mixture-of-experts, which model_type 'mixtral' uses "
     r"\['num_local_experts', 'num_experts_per_tok'\]"),
    ("top-k above experts", patched(LLAMA, model_type="mixtral", num_local_experts=8,
                                    num_experts_per_tok=9),
     r"num_experts_per_token=9 exceeds num_experts=8"),
    ("model_type not a string", patched(LLAMA, model_type=["llama"]),
     r"model_type=\['llama'\] must be a string"),
    ("local experts on llama", patched(LLAMA, num_local_experts=8),
     r"num_local_experts=8 describes mixture-of-experts, which model_type 'llama' is a dense "
     r"model; importing it would silently model a different network"),
    ("experts on qwen2", patched(LLAMA, model_type="qwen2", num_experts=64),
     r"num_experts=64 describes mixture-of-experts, which model_type 'qwen2' is a dense"),
    ("routed experts", patched(LLAMA, n_routed_experts=256),
     r"n_routed_experts=256 describes mixture-of-experts"),
    ("experts per token", patched(LLAMA, num_experts_per_tok=2),
     r"num_experts_per_tok=2 describes mixture-of-experts"),
    ("latent attention", patched(LLAMA, kv_lora_rank=512),
     r"kv_lora_rank=512 describes multi-head latent attention, which model_type 'llama' is "
     r"a dense model"),
    ("q latent rank", patched(LLAMA, q_lora_rank=1536),
     r"q_lora_rank=1536 describes multi-head latent"),
    ("latent attention on qwen3_moe", patched(LLAMA, model_type="qwen3_moe", num_experts=8,
                                              num_experts_per_tok=2, moe_intermediate_size=64,
                                              kv_lora_rank=512),
     r"kv_lora_rank=512 describes multi-head latent attention, which model_type 'qwen3_moe' "
     r"uses"),
    ("sliding window on llama", patched(LLAMA, sliding_window=4096),
     r"sliding_window=4096 is narrower than the context \(max_position_embeddings=131072\) "
     r"and model_type 'llama' has no rule for which layers slide"),
    ("qwen2 window without its layers", patched(LLAMA, model_type="qwen2", sliding_window=4096,
                                                use_sliding_window=True),
     r"missing required key 'max_window_layers'"),
    ("sliding window flag as string", patched(LLAMA, use_sliding_window="no"),
     r"use_sliding_window='no' must be true or false"),
    ("sliding window not a number", patched(LLAMA, sliding_window="4k"),
     r"sliding_window='4k' must be null or a JSON integer >= 1"),
    ("layer types of two layers", patched(LLAMA, layer_types=["sliding_attention",
                                                             "full_attention"]),
     r"layer_types=\['sliding_attention', 'full_attention'\] must be a list of 32 strings"),
    ("chunked layers", patched(LLAMA, layer_types=["chunked_attention"] * 32),
     r"layer_types lists \['chunked_attention'\]; modelled kinds are \['full_attention', "
     r"'sliding_attention'\]"),
    ("sliding layers without a window", patched(LLAMA, layer_types=["sliding_attention"] * 32),
     r"layer_types lists sliding_attention layers but sliding_window is missing"),
    ("unknown quantisation", patched(LLAMA, quantization_config={"quant_method": "bitsandbytes"}),
     r"quantization_config \(quant_method='bitsandbytes'\) stores weights in a layout that "
     r"is not modelled"),
    ("chunked attention", patched(LLAMA, attention_chunk_size=8192),
     r"attention_chunk_size=8192: chunked attention is not modelled"),
    ("encoder-decoder", patched(LLAMA, is_encoder_decoder=True),
     r"is_encoder_decoder=true: encoder-decoder / cross-attention models are not modelled"),
    ("cross attention", patched(GPT2, add_cross_attention=True), r"add_cross_attention=true"),
    ("llama gelu", patched(LLAMA, hidden_act="gelu"),
     r"hidden_act='gelu' is not supported for a llama-style gated FFN; allowed values are "
     r"'silu', 'swish'"),
    ("activation not a string", patched(LLAMA, hidden_act=3), r"hidden_act=3 must be a string"),
    ("opt post-norm", patched(OPT, do_layer_norm_before=False),
     r"do_layer_norm_before=false \(post-norm, no final norm\) is not supported"),
    ("opt projection", patched(OPT, word_embed_proj_dim=512),
     r"word_embed_proj_dim=512 differs from hidden_size=2048"),
    ("opt no final norm", patched(OPT, _remove_final_layer_norm=True),
     r"_remove_final_layer_norm=true is not supported"),
    ("opt swish", patched(OPT, activation_function="swish"),
     r"activation_function='swish' is not supported for an ungated FFN"),
    ("neox without biases", patched(NEOX, attention_bias=False),
     r"attention_bias=false is not supported"),
    ("required key null", patched(LLAMA, intermediate_size=None),
     r"llama-style HuggingFace config is missing required key\(s\) \['intermediate_size'\] "
     r"\(null counts as missing\)"),
    ("required key missing", patched(GPT2, _drop=["n_layer"]),
     r"gpt2-style HuggingFace config is missing required key\(s\) \['n_layer'\]"),
    ("name not a string", patched(LLAMA, _name_or_path=7), r"_name_or_path=7 must be a string"),
    ("layout unknown", json.dumps({"foo": 1}), r"cannot tell the layout of this config"),
    # ------------------------------------------------------------ the JSON itself
    ("duplicate key", '{"model_type": "llama", "hidden_size": 4096,\n "hidden_size": 8192}',
     r"key 'hidden_size' appears more than once in one JSON object"),
    ("duplicate nested key", patched(LLAMA, rope_scaling={"factor": 8.0})
     .replace('"factor": 8.0', '"factor": 8.0, "factor": 4.0'),
     r"key 'factor' appears more than once"),
    ("invalid JSON", '{\n  "hidden_size": 4096\n  "vocab_size": 10\n}',
     r"not valid JSON: Expecting ',' delimiter at line 3 column 3"),
    ("truncated JSON", patched(LLAMA)[:100], r"not valid JSON: .* at line \d+ column \d+"),
    ("empty file", "", r"not valid JSON: Expecting value at line 1 column 1"),
    ("a list", "[1, 2]", r"a HuggingFace config must be a JSON object, got list"),
    ("a number", "4096", r"must be a JSON object, got int"),
    ("a string", '"llama"', r"must be a JSON object, got str"),
]


@pytest.mark.parametrize("case,text,pattern", HF_CASES, ids=[c[0] for c in HF_CASES])
def test_hf_config_refuses(case, text, pattern, tmp_path):
    path = tmp_path / "config.json"
    path.write_text(text)
    message = one_line_error(lambda: model_from_hf_config(path),
                             f"HuggingFace config {str(path)!r}: ")
    assert re.search(pattern, message), message


def test_hf_config_missing_file_and_folder(tmp_path):
    missing = tmp_path / "nope" / "config.json"
    message = one_line_error(lambda: model_from_hf_config(missing), "HuggingFace config ")
    assert str(missing) in message and "file not found" in message
    (tmp_path / "empty").mkdir()
    message = one_line_error(lambda: model_from_hf_config(tmp_path / "empty"), "HuggingFace")
    assert str(tmp_path / "empty" / "config.json") in message and "file not found" in message


def test_hf_config_not_utf8(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b'{"hidden_size": "\xff"}')
    message = one_line_error(lambda: model_from_hf_config(path), "HuggingFace config")
    assert "is not UTF-8 text (byte 17)" in message


def test_hf_config_dict_is_named_too():
    message = one_line_error(lambda: model_from_hf_config({**LLAMA, "hidden_size": 4096.0}),
                             "HuggingFace config (dict): ")
    assert "hidden_size=4096.0 must be a JSON integer" in message


def test_hf_config_null_optional_keys_mean_not_given():
    spec = model_from_hf_config({**LLAMA, "num_key_value_heads": None, "head_dim": None,
                                 "sliding_window": None})
    assert spec.num_kv_heads == spec.num_heads == 32
    assert model_from_hf_config({**OPT, "word_embed_proj_dim": None}).hidden_size == 2048
    # a window as wide as the context, or switched off, is full attention
    assert model_from_hf_config({**LLAMA, "sliding_window": 131072}).max_seq_len == 131072
    assert model_from_hf_config({**LLAMA, "sliding_window": 4096,
                                 "use_sliding_window": False}).hidden_size == 4096
    assert model_from_hf_config({**LLAMA, "num_experts": 0}).hidden_size == 4096


# What each real config in ../shared/data/models/hf gives: (layers, hidden, heads, KV
# heads, dense FFN width, vocabulary, context, head size). The four dense configs that
# imported before import exactly as before.
REAL_CONFIGS = {
    "meta-llama/Llama-3.1-8B": (32, 4096, 32, 8, 14336, 128256, 131072, 128),
    "meta-llama/Llama-3.1-70B": (80, 8192, 64, 8, 28672, 128256, 131072, 128),
    "Qwen/Qwen2.5-72B": (80, 8192, 64, 8, 29568, 152064, 131072, 128),
    "Qwen/Qwen3-8B": (36, 4096, 32, 8, 12288, 151936, 40960, 128),
    "Qwen/Qwen3-32B": (64, 5120, 64, 8, 25600, 151936, 40960, 128),
    "Qwen/Qwen3-30B-A3B": (48, 2048, 32, 4, 6144, 151936, 40960, 128),
    "mistralai/Mixtral-8x7B-v0.1": (32, 4096, 32, 8, 14336, 32000, 32768, 128),
    "deepseek-ai/DeepSeek-V3": (61, 7168, 128, 128, 18432, 129280, 163840, 192),
    "microsoft/Phi-mini-MoE-instruct": (32, 4096, 32, 8, 960, 32064, 4096, 128),
    "openai/gpt-oss-20b": (24, 2880, 64, 8, 2880, 201088, 131072, 64),
}


@pytest.mark.parametrize("name", sorted(REAL_CONFIGS))
def test_real_hf_configs(name):
    path = HF_DIR / name / "config.json"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    spec = model_from_hf_config(path)
    got = (spec.num_layers, spec.hidden_size, spec.num_heads, spec.num_kv_heads,
           spec.ffn_hidden_size, spec.vocab_size, spec.max_seq_len, spec.head_dim)
    assert got == REAL_CONFIGS[name]
    norm = "layernorm" if "Phi" in name else "rmsnorm"
    bias = "Phi" in name or "gpt-oss" in name  # attention_bias true
    # The name is the config's _name_or_path, else its folder.
    named = json.loads(path.read_text()).get("_name_or_path") or name.split("/")[1]
    assert (spec.name, spec.activation, spec.norm, spec.position, spec.bias,
            spec.tied_embeddings, spec.dtype_bytes) == (
        named, "swiglu", norm, "rope", bias, False, 2)


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.integers(-3, 300_000)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)
    | st.sampled_from(["false", "true", "4096", "llama", "silu", "gelu", "relu", "qwen2"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=3),
    max_leaves=6)
# Per layout: HF count key -> the ModelSpec field that must then hold exactly its value.
_DECODER = {"hidden_size": "hidden_size", "num_hidden_layers": "num_layers",
            "num_attention_heads": "num_heads", "vocab_size": "vocab_size",
            "max_position_embeddings": "max_seq_len"}
COUNT_FIELDS = {
    "llama": {**_DECODER, "intermediate_size": "ffn_hidden_size",
              "num_key_value_heads": "num_kv_heads"},
    "neox": {**_DECODER, "intermediate_size": "ffn_hidden_size",
             "num_key_value_heads": "num_kv_heads"},
    "opt": {**_DECODER, "ffn_dim": "ffn_hidden_size"},
    "gpt2": {"n_embd": "hidden_size", "n_layer": "num_layers", "n_head": "num_heads",
             "vocab_size": "vocab_size", "n_positions": "max_seq_len"},
}
BIAS_KEYS = {"llama": ("attention_bias", "mlp_bias"), "opt": ("enable_bias",)}
EXTRA_KEYS = ["num_local_experts", "num_experts", "n_routed_experts", "kv_lora_rank",
              "sliding_window", "use_sliding_window", "layer_types", "head_dim",
              "is_encoder_decoder", "_name_or_path", "n_inner", "word_embed_proj_dim"]


@FUZZ
@given(base=st.sampled_from(sorted(BASES)), data=st.data(), via_file=st.booleans())
def test_hf_config_fuzz(base, data, via_file, tmp_path_factory):
    config = dict(BASES[base])
    key = data.draw(st.sampled_from(sorted(config) + EXTRA_KEYS), label="key")
    value = data.draw(JSON_VALUE, label="value")
    config[key] = value
    reference = model_from_hf_config(BASES[base])
    if via_file:
        path = tmp_path_factory.mktemp("hf") / "config.json"
        path.write_text(json.dumps(config))
        source, where = path, f"HuggingFace config {str(path)!r}: "
    else:
        source, where = config, "HuggingFace config (dict): "
    try:
        spec = model_from_hf_config(source)
    except ValueError as err:
        assert "\n" not in str(err) and str(err).startswith(where), str(err)
        return
    assert isinstance(spec, ModelSpec)
    for field in ("num_layers", "hidden_size", "num_heads", "num_kv_heads",
                  "ffn_hidden_size", "vocab_size", "max_seq_len"):
        assert type(getattr(spec, field)) is int  # never a float, never a bool
    counts = COUNT_FIELDS[base]
    if key in counts:
        expected = spec.num_heads if key == "num_key_value_heads" and value is None else value
        assert getattr(spec, counts[key]) == expected
    elif key == "tie_word_embeddings":
        assert spec.tied_embeddings is value
    elif key in BIAS_KEYS.get(base, ()):
        assert spec.bias is value
    elif key == "_name_or_path":
        assert spec.name == value if isinstance(value, str) and value else True
    elif key == "n_inner" and base == "gpt2":
        assert spec.ffn_hidden_size == (value if value is not None else 4 * spec.hidden_size)
    elif key in ("hidden_act", "activation_function"):
        assert spec.activation in ("gelu", "relu", "swiglu")
    elif key != "model_type":  # keys this reader does not use change nothing
        assert dataclasses.replace(spec, name=reference.name) == reference


# ================================================================ ONNX blocks
def vi(name, dims, elem=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, elem, dims)


def weight(name, *shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def graph_model(nodes, inputs, outputs, inits=(), meta=None, opset=None):
    graph = helper.make_graph(nodes, "bad", inputs, outputs, initializer=list(inits))
    kwargs = {"opset_imports": [helper.make_opsetid("", opset)]} if opset else {}
    model = helper.make_model(graph, **kwargs)
    if meta:
        helper.set_model_props(model, meta)
    return model


def fc(x_dims=("b", "s", 64), w_dims=(32, 16), name="fc/MatMul", **kw):
    return graph_model([helper.make_node("MatMul", ["x", "w"], ["y"], name=name)],
                       [vi("x", list(x_dims))], [vi("y", ["b", "s", w_dims[-1]])],
                       [weight("w", *w_dims)], **kw)


def exported_with(**meta) -> onnx.ModelProto:
    """The gpt2 block with ``llmsim.*`` metadata entries replaced."""
    model = export_block_onnx("gpt2")
    for prop in model.metadata_props:
        key = prop.key[len("llmsim."):]
        if key in meta:
            prop.value = meta[key]
    return model


def two_relus_in_a_cycle():
    return graph_model([helper.make_node("Relu", ["b"], ["a"], name="n1"),
                        helper.make_node("Add", ["x", "a"], ["b"], name="n2")],
                       [vi("x", ["b", "s", 8])], [vi("b", ["b", "s", 8])])


# (id, model (or raw bytes) to write, pattern after "ONNX file '<path>': ")
ONNX_CASES = [
    ("shapes do not multiply", fc(),
     r"node 'fc/MatMul' \(MatMul\): shapes do not multiply: 'x' \[\?, \?, 64\] by 'w' "
     r"\[32, 16\] \(64 != 32\)"),
    ("gemm shapes do not multiply", graph_model(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc/Gemm", transB=1)],
        [vi("x", ["t", 64])], [vi("y", ["t", 16])], [weight("w", 16, 32)],
        meta={"llmsim.hidden_input": "x"}),
     r"node 'fc/Gemm' \(Gemm\): shapes do not multiply: 'x' \[\?, 64\] by 'w' \[16, 32\]"),
    ("symbolic hidden width", fc(x_dims=("b", "s", "d")),
     r"tensor 'x' \(hidden-state input\) has shape \[\?, \?, \?\]: its last \(feature\) dim "
     r"is symbolic, but its width is needed"),
    ("symbolic activation width", graph_model(
        [helper.make_node("Relu", ["m"], ["y"], name="act/Relu")],
        [vi("x", ["b", "s", 8]), vi("m", ["b", "s", "f"])], [vi("y", ["b", "s", "f"])]),
     r"tensor 'y' \(node 'act/Relu' \(Relu\)\) has shape \[\?, \?, \?\]: its last \(feature\) "
     r"dim is symbolic"),
    ("zero-size weight", fc(x_dims=("b", "s", 32), w_dims=(32, 0)),
     r"initializer 'w' has shape \[32, 0\]; every dim of a weight must be >= 1"),
    ("zero-size weight input", graph_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc/MatMul")],
        [vi("x", ["b", "s", 32]), vi("w", [32, 0])], [vi("y", ["b", "s", 0])]),
     r"graph input 'w' has a zero-size dim \[32, 0\]"),
    ("weight on the left", graph_model(
        [helper.make_node("MatMul", ["w", "x"], ["y"], name="fc/MatMul")],
        [vi("x", ["b", 16, 4])], [vi("y", ["b", 8, 4])], [weight("w", 8, 16)]),
     r"node 'fc/MatMul' \(MatMul\) multiplies a weight on the left"),
    ("weight not 2-D", graph_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc/MatMul")],
        [vi("x", ["b", "s", 16])], [vi("y", [2, "s", 8])], [weight("w", 2, 16, 8)]),
     r"node 'fc/MatMul' \(MatMul\): weight 'w' must be a static 2-D tensor, got shape "
     r"\[2, 16, 8\]"),
    ("gemm transA", graph_model(
        [helper.make_node("Gemm", ["x", "w"], ["y"], name="fc/Gemm", transA=1)],
        [vi("x", [16, 4])], [vi("y", [4, 8])], [weight("w", 16, 8)],
        meta={"llmsim.hidden_input": "x", "llmsim.weights": "w"}),
     r"node 'fc/Gemm' \(Gemm\) has transA=1"),
    ("cycle", two_relus_in_a_cycle(),
     r"node 'n1' \(Relu\) reads 'b' before node 'n2' \(Add\) produces it: the graph has a "
     r"cycle"),
    ("undefined input", graph_model(
        [helper.make_node("Add", ["x", "ghost"], ["y"], name="add")],
        [vi("x", ["b", "s", 8])], [vi("y", ["b", "s", 8])]),
     r"node 'add' \(Add\) reads 'ghost', which is not a graph input"),
    ("written twice", graph_model(
        [helper.make_node("Relu", ["x"], ["y"], name="r1"),
         helper.make_node("Relu", ["x"], ["y"], name="r2")],
        [vi("x", ["b", "s", 8])], [vi("y", ["b", "s", 8])]),
     r"node 'r2' \(Relu\) writes 'y', which is already"),
    ("wrong arity", graph_model(
        [helper.make_node("MatMul", ["x"], ["y"], name="fc/MatMul")],
        [vi("x", ["b", "s", 8])], [vi("y", ["b", "s", 8])]),
     r"node 'fc/MatMul' \(MatMul\) has 1 inputs; MatMul takes 2\.\.2"),
    ("unnamed node", graph_model(
        [helper.make_node("MatMul", ["x"], ["y"])],
        [vi("x", ["b", "s", 8])], [vi("y", ["b", "s", 8])]),
     r"node #0 \(MatMul, output 'y'\) has 1 inputs"),
    ("no nodes", graph_model([], [vi("x", ["b", "s", 8])], [vi("x", ["b", "s", 8])]),
     r"the graph has no nodes \(an empty block\)"),
    ("only free ops", graph_model(
        [helper.make_node("Identity", ["x"], ["y"], name="id")],
        [vi("x", ["b", "s", 8])], [vi("y", ["b", "s", 8])]),
     r"the block is empty: none of its 1 nodes is an operator that costs anything"),
    ("unsupported op", graph_model(
        [helper.make_node("TopK", ["x", "k"], ["y", "i"], name="top")],
        [vi("x", ["b", "s", 8])], [vi("y", ["b", "s", 2])],
        [numpy_helper.from_array(np.array([2], np.int64), "k")]),
     r"ONNX op type 'TopK' \(node 'top', domain 'ai\.onnx'\) is not supported"),
    ("opset out of range", fc(x_dims=("b", "s", 32), opset=999),
     r"default-domain opset_import is 999; it must be an opset version in 1\.\."),
    ("unknown element bytes", graph_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="fc/MatMul")],
        [vi("x", ["b", "s", 4], TensorProto.INT32)], [vi("y", ["b", "s", 4], TensorProto.INT32)],
        [numpy_helper.from_array(np.ones((4, 4), np.int32), "w")]),
     r"cannot tell the bytes per element: the hidden-state input 'x' has element type INT32"),
    # ------------------------------------------------------------ metadata vs graph
    ("metadata head size", exported_with(head_dim="32"),
     r"metadata llmsim\.head_dim=32 contradicts the graph: the query operand "
     r"'attn_layout\.TransposeQ' of node 'attn_score/MatMul' \(MatMul\) has head size 64"),
    ("metadata kv heads", exported_with(num_kv_heads="5"),
     r"num_kv_heads=5 does not divide num_heads=12 \(attention of node 'attn_score/MatMul'"),
    ("metadata hidden size", exported_with(hidden_size="1024"),
     r"metadata llmsim\.hidden_size='1024' contradicts the graph: the hidden-state input "
     r"'hidden_states' has width 768"),
    ("metadata dtype zero", exported_with(dtype_bytes="0"),
     r"metadata llmsim\.dtype_bytes='0' must be an integer in 1\.\.2147483647"),
    ("metadata dtype negative", exported_with(dtype_bytes="-2"),
     r"metadata llmsim\.dtype_bytes='-2' must be an integer in 1\.\.2147483647"),
    ("metadata layers text", exported_with(num_layers="twelve"),
     r"metadata llmsim\.num_layers='twelve' must be an integer in 1\.\.2147483647"),
    ("metadata weights stray", exported_with(weights="qkv_proj.weight,nope"),
     r"llmsim\.weights names \['nope'\] which is neither a graph input nor an initializer; "
     r"the metadata contradicts the graph"),
    ("metadata norm", exported_with(norm="batchnorm"),
     r"metadata llmsim\.norm='batchnorm' is not one of \('layernorm', 'rmsnorm'\)"),
    ("metadata hidden input", exported_with(hidden_input="nope"),
     r"metadata llmsim\.hidden_input='nope' is not a \(non-weight\) graph input"),
    ("metadata format", exported_with(format_version="7"),
     r"metadata llmsim\.format_version='7' is not supported; this reader reads format '1'"),
    # ------------------------------------------------------------ not ONNX at all
    ("random bytes", bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8)),
     r"is not an ONNX model \(it does not parse as an ONNX protobuf"),
    ("truncated", export_block_onnx("gpt2").SerializeToString()[:1000],
     r"is not an ONNX model \(it does not parse as an ONNX protobuf"),
    ("empty file", b"", r"is not an ONNX model \(it holds no graph\)"),
    ("a JSON file", b'{"graph": {}}', r"is not an ONNX model"),
]


@pytest.mark.parametrize("case,content,pattern", ONNX_CASES, ids=[c[0] for c in ONNX_CASES])
def test_onnx_import_refuses(case, content, pattern, tmp_path):
    path = tmp_path / "block.onnx"
    path.write_bytes(content if isinstance(content, bytes) else content.SerializeToString())
    exported = not isinstance(content, bytes) and any(
        p.key == "llmsim.num_layers" for p in content.metadata_props)
    sizes = {} if exported else dict(num_layers=2, vocab_size=10)
    message = one_line_error(lambda: import_block_onnx(path, **sizes),
                             f"ONNX file {str(path)!r}: ")
    assert re.search(pattern, message), message


def test_onnx_metadata_only_entries(tmp_path):
    path = tmp_path / "block.onnx"
    onnx.save(exported_with(bias="yes"), path)
    message = one_line_error(lambda: spec_from_onnx_metadata(path), f"ONNX file {str(path)!r}: ")
    assert "metadata llmsim.bias='yes' must be 'true' or 'false'" in message
    onnx.save(exported_with(vocab_size="0"), path)
    message = one_line_error(lambda: spec_from_onnx_metadata(path), f"ONNX file {str(path)!r}: ")
    assert "metadata llmsim.vocab_size='0' must be an integer in 1..2147483647" in message


def test_onnx_missing_file_and_in_memory_names(tmp_path):
    missing = tmp_path / "none.onnx"
    message = one_line_error(lambda: import_block_onnx(missing), f"ONNX file {str(missing)!r}: ")
    assert message.endswith("file not found")
    message = one_line_error(lambda: import_block_onnx(two_relus_in_a_cycle()),
                             "ONNX model 'bad' (in memory): ")
    assert "node 'n1' (Relu) reads 'b'" in message
    message = one_line_error(lambda: import_block_onnx(export_block_onnx("gpt2"),
                                                       dtype_bytes=0), "import_block_onnx")
    assert "dtype_bytes=0 must be a positive integer" in message


def test_onnx_file_is_never_executed_or_followed(tmp_path):
    """An initializer pointing at external data is read for its shape only."""
    model = export_block_onnx("gpt2")
    tensor = model.graph.initializer[0]
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    path = tmp_path / "block.onnx"
    path.write_bytes(model.SerializeToString())
    import_block_onnx(path)  # loads without opening the "external" file


TINY = ModelSpec("tiny", num_layers=2, hidden_size=16, num_heads=4, num_kv_heads=2,
                 ffn_hidden_size=24, vocab_size=50, activation="swiglu", norm="rmsnorm",
                 position="rope", bias=False, tied_embeddings=False)
TINY_BYTES = export_block_onnx(TINY).SerializeToString()


def assert_sane(template):
    """A parse is usable: positive sizes everywhere, and it instantiates."""
    assert template.num_layers >= 1 and template.dtype_bytes >= 1
    for op in template.embedding + template.block + template.head:
        if op.kind is OpKind.GEMM:
            assert op.weight_k >= 1 and op.weight_n >= 1, op
        elif op.kind in (OpKind.ATTN_SCORE, OpKind.ATTN_CONTEXT, OpKind.SOFTMAX):
            assert min(op.num_heads, op.num_kv_heads, op.head_dim) >= 1, op
            assert op.num_heads % op.num_kv_heads == 0, op
        else:
            assert op.width >= 1 and op.num_inputs >= 1, op
        assert op.param_elements >= 0, op
    template.instantiate(BatchShape.from_lists([3, 1], [0, 5]))


def import_or_refuse(content: bytes, folder: Path):
    path = folder / "fuzz.onnx"
    path.write_bytes(content)
    try:
        return import_block_onnx(path)
    except ValueError as err:
        assert "\n" not in str(err) and str(err).startswith(f"ONNX file {str(path)!r}: ")
        return None


@FUZZ
@given(content=st.binary(max_size=2048))
def test_onnx_fuzz_random_bytes(content, tmp_path_factory):
    template = import_or_refuse(content, tmp_path_factory.mktemp("onnx"))
    if template is not None:
        assert_sane(template)


@FUZZ
@given(cut=st.integers(0, len(TINY_BYTES) - 1))
def test_onnx_fuzz_truncations(cut, tmp_path_factory):
    template = import_or_refuse(TINY_BYTES[:cut], tmp_path_factory.mktemp("onnx"))
    # A cut that still parses has lost only trailing metadata: same block, or refused.
    assert template is None or template == decoder_template(TINY)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(TINY_BYTES) - 1), st.integers(0, 255)),
                      min_size=1, max_size=4))
def test_onnx_fuzz_corrupted_bytes(edits, tmp_path_factory):
    content = bytearray(TINY_BYTES)
    for at, byte in edits:
        content[at] = byte
    template = import_or_refuse(bytes(content), tmp_path_factory.mktemp("onnx"))
    if template is not None:
        assert_sane(template)


# ================================================================ network files
NET = {"topology-name": "Hierarchical", "topologies-per-dim": ["Ring", "FullyConnected"],
       "dimension-type": ["N", "P"], "dimensions-count": 2, "units-count": [4, 2],
       "links-count": [2, 1], "link-latency": [500, 100], "link-bandwidth": [25, 12.5],
       "nic-latency": [0, 0], "router-latency": [0, 0], "hbm-latency": [500, 500],
       "hbm-bandwidth": [370, 370], "hbm-scale": [0, 0]}


def net(**changes) -> str:
    data = dict(NET)
    data.update({k.replace("_", "-"): v for k, v in changes.items()})
    return json.dumps(data)


YAML_DIM = "{kind: Ring, size: 4, bandwidth: 64 GB/s, latency: 10 ns, links: 2"

# (id, file name, text, pattern after the path)
NETWORK_CASES = [
    ("json duplicate key", "a.json", net()[:-1] + ', "units-count": [8, 8]}',
     r"key 'units-count' appears more than once in one JSON object"),
    ("json unknown key", "a.json", net(link_bandwith=[1, 2]),
     r"unknown key\(s\) \['link-bandwith'\] \(allowed: \['topology-name', "),
    ("json string for list", "a.json", net(link_bandwidth="25"),
     r"link-bandwidth='25' must be a list"),
    ("json number for list", "a.json", net(units_count=4), r"units-count=4 must be a list"),
    ("json string in list", "a.json", net(link_latency=["500ns", 100]),
     r"link-latency\[0\]='500ns' must be a number"),
    ("json bool in list", "a.json", net(links_count=[True, 1]),
     r"links-count\[0\]=True must be a number"),
    ("json zero bandwidth", "a.json", net(link_bandwidth=[0, 12.5]),
     r"dimension 0: Dimension\.bandwidth must be > 0, got 0\.0 \(from link-bandwidth\[0\]=0\)"),
    ("json negative bandwidth", "a.json", net(link_bandwidth=[25, -12.5]),
     r"dimension 1: Dimension\.bandwidth must be > 0, got -12500000000\.0 \(from "
     r"link-bandwidth\[1\]=-12\.5\)"),
    ("json nan bandwidth", "a.json", net(link_bandwidth=[float("nan"), 12.5]),
     r"link-bandwidth\[0\]=nan must be a finite number"),
    ("json infinite latency", "a.json", net(link_latency=[float("inf"), 100]),
     r"link-latency\[0\]=inf must be a finite number"),
    ("json bandwidth overflowing", "a.json", net(link_bandwidth=[1e300, 12.5]),
     r"Dimension\.bandwidth must be a finite number, got inf \(from link-bandwidth\[0\]=1e\+300\)"),
    ("json huge integer", "a.json", net(link_bandwidth=[10 ** 400, 12.5]),
     r"link-bandwidth\[0\]=1000000.* must be a finite number"),
    ("json fractional units", "a.json", net(units_count=[2.5, 2]),
     r"Dimension\.size must be an integer >= 1, got 2\.5 \(from units-count\[0\]=2\.5\)"),
    ("json integral float units", "a.json", net(units_count=[4.0, 2]),
     r"Dimension\.size must be an integer >= 1, got 4\.0 \(from units-count\[0\]=4\.0\)"),
    ("json fractional links", "a.json", net(links_count=[2, 0.5]),
     r"dimension 1: Dimension\.num_links must be an integer >= 1, got 0\.5 \(from "
     r"links-count\[1\]=0\.5\)"),
    ("json zero units", "a.json", net(units_count=[0, 2]),
     r"Dimension\.size must be an integer >= 1, got 0 \(from units-count\[0\]=0\)"),
    ("json short list", "a.json", net(nic_latency=[0]),
     r"nic-latency has 1 entries, fewer than dimensions-count=2"),
    ("json count fractional", "a.json", net(dimensions_count=2.0),
     r"dimensions-count=2\.0 must be an integer >= 1"),
    ("json count mismatched", "a.json", net(dimensions_count=3),
     r"topologies-per-dim=\['Ring', 'FullyConnected'\] must list exactly dimensions-count=3"),
    ("json negative nic latency", "a.json", net(nic_latency=[0, -5]),
     r"Dimension\.nic_latency must be >= 0, got -5e-09 \(from nic-latency\[1\]=-5\)"),
    ("json zero hbm bandwidth", "a.json", net(hbm_bandwidth=[370, 0]),
     r"hbm-bandwidth\[1\]=0 must be > 0"),
    ("json negative hbm latency", "a.json", net(hbm_latency=[-1, 500]),
     r"hbm-latency\[0\]=-1 must be >= 0"),
    ("json dimension type", "a.json", net(dimension_type=["N", 7]),
     r"Dimension\.dim_type=7 is not one of .* \(from dimension-type\[1\]=7\)"),
    ("json topology name", "a.json", net(topology_name=["Hierarchical"]),
     r"topology-name=\['Hierarchical'\]; only 'Hierarchical' is supported"),
    ("yaml duplicate key", "b.yaml", f"dimensions:\n  - {YAML_DIM}, links: 4}}\n",
     r"key 'links' appears more than once in one mapping \(line 2\)"),
    ("yaml duplicate top key", "b.yaml",
     f"dimensions:\n  - {YAML_DIM}}}\nname: a\nname: b\n",
     r"key 'name' appears more than once in one mapping \(line 4\)"),
    ("yaml fractional size", "b.yaml", "dimensions:\n  - {kind: Ring, size: 4.5, "
     "bandwidth: 64 GB/s, links: 2}\n",
     r"dimensions\[0\]: Dimension\.size must be an integer >= 1, got 4\.5 \(from size=4\.5\)"),
    ("yaml fractional links", "b.yaml", "dimensions:\n  - {kind: Ring, size: 4, "
     "bandwidth: 64 GB/s, links: 2.0}\n",
     r"Dimension\.num_links must be an integer >= 1, got 2\.0 \(from links=2\.0\)"),
    ("yaml zero bandwidth", "b.yaml", "dimensions:\n  - {kind: Ring, size: 4, "
     "bandwidth: 0 GB/s, links: 2}\n",
     r"Dimension\.bandwidth must be > 0, got 0\.0 \(from bandwidth='0 GB/s'\)"),
    ("yaml nan bandwidth", "b.yaml", "dimensions:\n  - {kind: Ring, size: 4, "
     "bandwidth: .nan, links: 2}\n",
     r"Dimension\.bandwidth must be a finite number, got nan \(from bandwidth=nan\)"),
    ("yaml list bandwidth", "b.yaml", "dimensions:\n  - {kind: Ring, size: 4, "
     "bandwidth: [64], links: 2}\n",
     r"bandwidth=\[64\] must be a number or a quantity in one of \['B/s'"),
    ("yaml hbm on some dimensions", "b.yaml",
     f"dimensions:\n  - {YAML_DIM}, hbm_bandwidth: 1 TB/s}}\n  - {YAML_DIM}}}\n",
     r"hbm_bandwidth is given for 1 of 2 dimensions; give it for every dimension or for none"),
    ("yaml zero hbm", "b.yaml", f"dimensions:\n  - {YAML_DIM}, hbm_bandwidth: 0}}\n",
     r"hbm_bandwidth=0 must be a finite number > 0"),
    ("yaml invalid", "b.yaml", "dimensions: [\n", r"not valid YAML \(.*\)$"),
]


@pytest.mark.parametrize("case,name,text,pattern", NETWORK_CASES,
                         ids=[c[0] for c in NETWORK_CASES])
def test_network_file_refuses(case, name, text, pattern, tmp_path):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError) as err:
        load_topology(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message, message
    assert re.search(pattern, message), message


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(f"dimensions:\n  - {{<<: {YAML_DIM}}}, size: 2}}\n")
    assert load_topology(path).sizes == (2,)


NET_VALUE = JSON_VALUE | st.lists(st.integers(-2, 9) | st.floats(allow_nan=True), max_size=3)


@FUZZ
@given(key=st.sampled_from(sorted(NET)), data=st.data(), in_list=st.booleans())
def test_network_json_fuzz(key, data, in_list, tmp_path_factory):
    """One value (or one list entry) swapped for a random JSON value."""
    config = json.loads(json.dumps(NET))
    if in_list and isinstance(config[key], list):
        at = data.draw(st.integers(0, len(config[key]) - 1), label="index")
        config[key][at] = data.draw(JSON_VALUE, label="entry")
    else:
        config[key] = data.draw(NET_VALUE, label="value")
    path = tmp_path_factory.mktemp("net") / "net.json"
    path.write_text(json.dumps(config))
    try:
        topo = load_topology(path)
    except ValueError as err:
        assert "\n" not in str(err) and str(path) in str(err), str(err)
        return
    assert isinstance(topo, Topology)
    n = config["dimensions-count"]
    assert len(topo.dimensions) == n
    for i, dim in enumerate(topo.dimensions):  # the parse says what the file says
        assert dim.kind == config["topologies-per-dim"][i]
        assert dim.size == config["units-count"][i] and type(dim.size) is int
        assert dim.num_links == config["links-count"][i] and type(dim.num_links) is int
        assert dim.bandwidth == config["link-bandwidth"][i] * 1e9 > 0
        assert dim.latency == config["link-latency"][i] / 1e9 >= 0
        assert math.isfinite(dim.bandwidth) and math.isfinite(dim.latency)
    assert all(v > 0 and math.isfinite(v) for v in topo.hbm_bandwidth)


@pytest.mark.parametrize("key, value, pattern", [
    ("link-bandwidth", [5e-324], r"Dimension.bandwidth=.* is out of range; allowed 1e\+06 \.\. 1e\+24"),
    ("link-bandwidth", [1e-300], r"Dimension.bandwidth=.* is out of range"),
    ("link-latency", [1e300], r"Dimension.latency=.* is out of range; allowed 0 \.\. 1"),
    ("units-count", [2**40], r"Dimension.size=1099511627776 is out of range; allowed 1 \.\. 65536"),
])
def test_network_numbers_no_run_could_use_are_refused_on_reading(tmp_path, key, value, pattern):
    """Before: 5e-324 B/s loaded and the run failed with an inf makespan; 1e300 ns ran."""
    from llmsim_nb.network import load_topology
    data = {"topology-name": "Hierarchical", "dimensions-count": 1,
            "topologies-per-dim": ["FullyConnected"], "dimension-type": ["N"],
            "units-count": [4], "links-count": [3], "link-latency": [500],
            "link-bandwidth": [50], key: value}
    path = tmp_path / "net.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=pattern) as info:
        load_topology(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_topology_of_too_many_devices_is_refused():
    from llmsim_nb.network import Dimension, Topology
    dims = [Dimension("FullyConnected", 1024, 1e11, 1e-6, 1) for _ in range(2)]
    with pytest.raises(ValueError, match=r"has 1048576 devices .* at most 131072"):
        Topology(dims, name="huge")


def test_a_quantised_checkpoint_is_planned_at_its_bits_not_at_two_bytes(tmp_path):
    from llmsim_nb.models import model_from_hf_config
    config = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
              "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
              "vocab_size": 1000, "max_position_embeddings": 512,
              "quantization_config": {"quant_method": "awq", "bits": 4}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    spec = model_from_hf_config(path)
    assert spec.dtypes == ("int4", "int4", "bf16")
    # Linear weights per layer: 4*256*256 (attention) + 3*256*512 (FFN) at 4 + 16/128 bits;
    # norms (2*256 a layer + 256), embedding and head (2*1000*256) at 16 bits.
    linear = 2 * (4 * 256 * 256 + 3 * 256 * 512)
    other = 2 * 2 * 256 + 256 + 2 * 1000 * 256
    assert spec.weight_bytes() == round((linear * 4.125 + other * 16) / 8)
    config["quantization_config"] = {"quant_method": "awq", "bits": 3}
    path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"quantization_config \(quant_method='awq'\) bits=3 "
                                         r"is not modelled; allowed bits: 4, 8"):
        model_from_hf_config(path)
    del config["quantization_config"]
    path.write_text(json.dumps(config))
    assert model_from_hf_config(path).weight_bytes() == 2 * (linear + other)


def test_onnx_metadata_counts_are_bounded(tmp_path):
    from llmsim_nb.models.onnx.metadata import _meta_int
    assert _meta_int({"num_layers": "32"}, "num_layers", "f.onnx") == 32
    with pytest.raises(ValueError, match=r"llmsim.num_layers='99999999999999999999' must be an "
                                         r"integer in 1..2147483647"):
        _meta_int({"num_layers": "99999999999999999999"}, "num_layers", "f.onnx")


@pytest.mark.parametrize("text, pattern", [
    (None, r"model catalog file '.*missing.yaml' does not exist"),
    ("models: [\n", r"model catalog file '.*' is not valid YAML: .* at line \d+, column \d+"),
    ("models: []\nmodels: []\n", r"key 'models' appears more than once \(again at line 2\)"),
    ("- 1\n", r"expected a mapping with a 'models' list"),
])
def test_catalog_files_are_refused_in_one_line(tmp_path, text, pattern):
    from llmsim_nb.models.catalog import load_catalog_file
    path = tmp_path / ("missing.yaml" if text is None else "catalog.yaml")
    if text is not None:
        path.write_text(text)
    with pytest.raises(ValueError, match=pattern) as info:
        load_catalog_file(path)
    assert "\n" not in str(info.value)
