"""Models of today: explicit head sizes, MoE, MLA, sliding windows, weight dtypes.

Published parameter counts are the makers' figures as listed (with where each
was read) in ../shared/data/models/README.md; KV bytes are computed by hand.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from llmsim_nb.models import ModelSpec
from llmsim_nb.models.hf_config import model_from_hf_config
from llmsim_nb.models.mla_spec import MLASpec
from llmsim_nb.models.moe_spec import MoESpec

HF_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "models" / "hf"

# (published total, published active, whether the publisher counts the input
# embedding among active parameters). Sources: the models README (model cards,
# the Mixtral blog, DeepSeek-V3's README, OpenAI's gpt-oss README, SlimMoE paper).
# OpenAI's gpt-oss figures leave the embedding lookup out of "active" (20.91B total,
# 3.61B active in its model card); the others count it.
PUBLISHED = {
    "meta-llama/Llama-3.1-8B": (8.0e9, 8.0e9, True),
    "meta-llama/Llama-3.1-70B": (70e9, 70e9, True),
    "Qwen/Qwen3-8B": (8.2e9, 8.2e9, True),
    "Qwen/Qwen3-32B": (32.8e9, 32.8e9, True),
    "Qwen/Qwen2.5-72B": (72.7e9, 72.7e9, True),
    "mistralai/Mixtral-8x7B-v0.1": (46.7e9, 12.9e9, True),
    "Qwen/Qwen3-30B-A3B": (30.5e9, 3.3e9, True),
    "deepseek-ai/DeepSeek-V3": (671e9, 37e9, True),
    "openai/gpt-oss-20b": (21e9, 3.6e9, False),
    "microsoft/Phi-mini-MoE-instruct": (7.6e9, 2.4e9, True),
}


def _config(name):
    path = HF_DIR / name / "config.json"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    return model_from_hf_config(path)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_counted_parameters_are_within_two_percent_of_the_published(name):
    spec = _config(name)
    total, active, with_embedding = PUBLISHED[name]
    assert spec.num_parameters() == pytest.approx(total, rel=0.02)
    assert spec.num_active_parameters(with_embedding) == pytest.approx(active, rel=0.02)
    if spec.moe is None:
        assert spec.num_active_parameters() == spec.num_parameters()
    else:
        assert spec.num_active_parameters() < spec.num_parameters() / 3


@pytest.mark.parametrize("name, per_token", [
    # 2 (K and V) * layers * KV heads * head size * 2 bytes
    ("meta-llama/Llama-3.1-8B", 2 * 32 * 8 * 128 * 2),
    ("Qwen/Qwen3-32B", 2 * 64 * 8 * 128 * 2),          # head_dim 128 with 64 heads != 5120
    ("Qwen/Qwen3-30B-A3B", 2 * 48 * 4 * 128 * 2),
    ("openai/gpt-oss-20b", 2 * 24 * 8 * 64 * 2),
    # MLA: (kv_lora_rank 512 + qk_rope_head_dim 64) elements per layer, 61 layers, bf16
    ("deepseek-ai/DeepSeek-V3", (512 + 64) * 61 * 2),
])
def test_kv_bytes_per_token_are_the_hand_computed_figures(name, per_token):
    assert _config(name).kv_bytes_per_token() == per_token


def test_deepseek_v3_is_three_dense_and_fifty_eight_moe_layers_with_latent_attention():
    spec = _config("deepseek-ai/DeepSeek-V3")
    kinds = spec.layer_kinds()
    assert [moe for _, moe in kinds] == [False] * 3 + [True] * 58
    assert spec.mla == MLASpec(kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128,
                               v_head_dim=128, q_lora_rank=1536)
    assert (spec.moe.num_experts, spec.moe.num_experts_per_token, spec.moe.expert_ffn_size,
            spec.moe.num_shared_experts, spec.moe.shared_expert_ffn_size) == (256, 8, 2048, 1,
                                                                               2048)
    assert spec.moe.router_scoring == "sigmoid" and spec.moe.router_bias  # noaux_tc
    assert spec.dtypes == ("fp8", "fp8", "bf16")
    # fp8 linear weights, bf16 embeddings / head / norms / router: about 1 byte a parameter.
    assert spec.weight_bytes() == pytest.approx(spec.num_parameters(), rel=0.01)


def test_gpt_oss_alternates_sliding_and_full_layers_with_sinks_and_mxfp4_experts():
    spec = _config("openai/gpt-oss-20b")
    assert [kind for kind, _ in spec.layer_kinds()] == ["sliding", "full"] * 12
    assert spec.sliding_window == 128 and spec.attention_sinks
    assert spec.dtypes == ("bf16", "mxfp4", "bf16")
    assert spec.moe.router_bias and spec.moe.expert_bias
    counts = spec.parameters()
    expected = round(((counts.attention + counts.dense_ffn) * 16
                      + (counts.routed_experts + counts.shared_experts) * 4.25
                      + (counts.router + counts.small + counts.routed_expert_biases
                         + counts.embedding + counts.head) * 16)
                     / 8)
    assert spec.weight_bytes() == expected
    # A request of 1,000 tokens keeps 128 of them in the 12 sliding layers.
    per_layer_token = 2 * 8 * 64 * 2
    assert spec.kv_bytes(1000) == per_layer_token * (12 * 1000 + 12 * 128)


def test_qwen3_has_explicit_head_size_and_qk_norms():
    spec = _config("Qwen/Qwen3-32B")
    assert spec.q_dim == 64 * 128 != spec.hidden_size
    assert spec.qk_norm and not spec.layer_types


def test_qwen2_windows_start_at_max_window_layers():
    base = {"model_type": "qwen2", "hidden_size": 256, "intermediate_size": 512,
            "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
            "vocab_size": 1000, "max_position_embeddings": 8192}
    spec = model_from_hf_config({**base, "use_sliding_window": True, "sliding_window": 1024,
                                 "max_window_layers": 2})
    assert spec.layer_types == ("full", "full", "sliding", "sliding")
    assert spec.sliding_window == 1024
    off = model_from_hf_config({**base, "use_sliding_window": False, "sliding_window": 1024})
    assert off.layer_types == () and off.sliding_window == 0


def test_a_tiny_moe_is_counted_by_hand():
    moe = MoESpec(num_experts=4, num_experts_per_token=2, expert_ffn_size=32,
                  num_shared_experts=1, shared_expert_ffn_size=16, moe_layers=(1,))
    spec = ModelSpec("tiny-moe", num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=2,
                     ffn_hidden_size=128, vocab_size=100, activation="swiglu", norm="rmsnorm",
                     position="rope", bias=False, tied_embeddings=False, moe=moe)
    attention = 64 * (64 + 2 * 32) + 64 * 64
    norms = 2 * 64
    dense = 3 * 64 * 128
    experts = 4 * 3 * 64 * 32
    shared = 3 * 64 * 16
    router = 64 * 4
    embeddings = 2 * 100 * 64 + 64  # embedding, head, final norm
    total = 2 * (attention + norms) + dense + experts + shared + router + embeddings
    assert spec.num_parameters() == total
    assert spec.num_active_parameters() == total - experts + 2 * 3 * 64 * 32
    assert spec.layer_kinds() == (("full", False), ("full", True))


@pytest.mark.parametrize("patch, match", [
    (dict(layer_types=("full",)), r"layer_types has 1 entries; expected one per layer \(2\)"),
    (dict(layer_types=("full", "local")), r"layer_types has \['local'\]; allowed kinds"),
    (dict(layer_types=("full", "sliding")), r"sliding_window=0 with layer_types listing"),
    (dict(sliding_window=128), r"sliding_window=128 with layer_types without 'sliding'"),
    (dict(head_dim=-1), r"head_dim must be a positive integer, got -1"),
    (dict(num_heads=5, num_kv_heads=5), r"hidden_size=64 must be a multiple of num_heads=5 "
                                        r"\(or give head_dim\)"),
    (dict(weight_dtype="fp6"), r"ModelSpec.weight_dtype='fp6' is not a known data type"),
    (dict(kv_dtype="mxfp4"), r"ModelSpec.kv_dtype='mxfp4' is not a known data type"),
    (dict(dtype_bytes=3), r"dtype_bytes=3 is not one of \[1, 2, 4\]"),
    (dict(moe=MoESpec(4, 2, 32, moe_layers=(5,))), r"moe_layers lists \[5\], beyond the "
                                                   r"model's 2 layers"),
    (dict(moe={"num_experts": 4}), r"ModelSpec.moe must be a MoESpec or None"),
])
def test_bad_model_specs_are_refused(patch, match):
    base = dict(name="x", num_layers=2, hidden_size=64, num_heads=4, num_kv_heads=4,
                ffn_hidden_size=128, vocab_size=100)
    with pytest.raises(ValueError, match=match):
        ModelSpec(**{**base, **patch})


def test_an_explicit_head_size_need_not_multiply_to_the_width():
    spec = ModelSpec("x", num_layers=2, hidden_size=64, num_heads=5, num_kv_heads=5,
                     ffn_hidden_size=128, vocab_size=100, head_dim=32)
    assert spec.q_dim == 160 and spec.kv_dim == 160
    assert dataclasses.replace(spec, name="y").head_dim == 32


@pytest.mark.parametrize("fields, match", [
    (dict(num_experts=4, num_experts_per_token=5, expert_ffn_size=8), r"exceeds num_experts"),
    (dict(num_experts=0, num_experts_per_token=1, expert_ffn_size=8), r"num_experts=0"),
    (dict(num_experts=4, num_experts_per_token=1, expert_ffn_size=8, num_shared_experts=1),
     r"both are 0 \(no shared experts\) or both > 0"),
    (dict(num_experts=4, num_experts_per_token=1, expert_ffn_size=8, moe_layers=(2, 1)),
     r"strictly increasing"),
    (dict(num_experts=4, num_experts_per_token=1, expert_ffn_size=8, router_scoring="relu"),
     r"router_scoring='relu'"),
])
def test_bad_moe_specs_are_refused(fields, match):
    with pytest.raises(ValueError, match=match):
        MoESpec(**fields)


def test_bad_mla_spec_is_refused():
    with pytest.raises(ValueError, match=r"MLASpec.kv_lora_rank=0 must be an integer >= 1"):
        MLASpec(kv_lora_rank=0, qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128)


@pytest.mark.parametrize("catalog_name, hf_name", [
    ("qwen3-8b", "Qwen/Qwen3-8B"), ("qwen3-32b", "Qwen/Qwen3-32B"),
    ("qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B"), ("mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1"),
    ("deepseek-v3", "deepseek-ai/DeepSeek-V3"), ("gpt-oss-20b", "openai/gpt-oss-20b"),
    ("phi-mini-moe", "microsoft/Phi-mini-MoE-instruct"),
])
def test_catalog_entries_equal_their_hf_configs(catalog_name, hf_name):
    from llmsim_nb.models import get_model
    path = HF_DIR / hf_name / "config.json"
    if not path.is_file():
        pytest.skip(f"{path} is not available")
    assert get_model(catalog_name) == model_from_hf_config(path, name=catalog_name)
    assert get_model(hf_name) is get_model(catalog_name)


def test_catalog_moe_entries_without_the_files():
    from llmsim_nb.models import get_model
    ds = get_model("deepseek-v3")
    assert ds.moe.moe_layers == tuple(range(3, 61)) and ds.kv_bytes_per_token() == 70272
    oss = get_model("gpt-oss-20b")
    assert oss.layer_types == ("sliding", "full") * 12
    assert oss.num_active_parameters(include_embedding=False) == pytest.approx(3.61e9,
                                                                               rel=0.01)


def test_the_gpu_engine_reads_stored_weights_at_their_own_size():
    from llmsim_nb.engines.gpu import GPUEngine
    from llmsim_nb.engines.hardware import get_hardware
    from llmsim_nb.models.template import OpTemplate
    from llmsim_nb.models.ops import OpKind
    bf16 = GPUEngine(get_hardware("h100-sxm").spec)
    fp8 = GPUEngine(get_hardware("h100-sxm-fp8").spec)
    tokens = np.array([4, 0, 2, 1])
    mxfp4 = OpTemplate("expert_up", OpKind.GEMM, weight_k=256, weight_n=512, num_experts=4,
                       weight_bytes=4.25 / 8).expert_op(tokens, 2.0)
    # 7 rows x 256 in at 2 bytes, 3 active experts' 256 x 512 at 4.25 bits, 7 x 512 out.
    assert bf16.gemm_bytes(mxfp4).tolist() == [7 * 256 * 2.0 + 3 * 256 * 512 * 4.25 / 8
                                               + 7 * 512 * 2.0]
    plain = OpTemplate("expert_up", OpKind.GEMM, weight_k=256, weight_n=512,
                       num_experts=4).expert_op(tokens, 2.0)
    assert bf16.gemm_bytes(plain).tolist() == [7 * 256 * 2.0 + 3 * 256 * 512 * 2.0
                                               + 7 * 512 * 2.0]
    # A W8A8 preset reads bf16-stored weights (and activations) at 1 byte.
    assert fp8.gemm_bytes(plain).tolist() == [7 * 256 * 1.0 + 3 * 256 * 512 * 1.0
                                              + 7 * 512 * 2.0]


def test_latent_attention_refuses_what_it_does_not_have():
    mla = MLASpec(kv_lora_rank=64, qk_rope_head_dim=16, qk_nope_head_dim=32, v_head_dim=32)
    base = dict(name="x", num_layers=2, hidden_size=128, num_heads=4, num_kv_heads=4,
                ffn_hidden_size=256, vocab_size=100, head_dim=48, mla=mla, bias=False)
    for key in ("qk_norm", "bias", "attention_sinks"):
        with pytest.raises(ValueError, match=rf"ModelSpec.{key}=True with mla"):
            ModelSpec(**{**base, key: True})


def test_awq_bit_widths_must_agree():
    config = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
              "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 1000,
              "max_position_embeddings": 512,
              "quantization_config": {"quant_method": "awq", "bits": 4, "w_bit": 8}}
    with pytest.raises(ValueError, match=r"bits=4 and w_bit=8 disagree"):
        model_from_hf_config(config)
