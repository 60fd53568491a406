"""Mixture-of-experts and latent-attention keys of a HuggingFace config.

Each ``model_type`` names its experts and layers with its own keys; this
module reads them into one :class:`~.moe_spec.MoESpec` (and DeepSeek's
attention into an :class:`~.mla_spec.MLASpec`):

=============  ===================  =====================  =====================  ==========================
model_type     experts              top-k                  expert width           which layers are MoE
=============  ===================  =====================  =====================  ==========================
mixtral        num_local_experts    num_experts_per_tok    intermediate_size      all
phimoe         num_local_experts    num_experts_per_tok    intermediate_size      all
gpt_oss        num_local_experts    num_experts_per_tok    intermediate_size      all
                                    (= experts_per_token)
qwen3_moe      num_experts          num_experts_per_tok    moe_intermediate_size  ``(i+1) % decoder_sparse_step
                                                                                  == 0`` and not in
                                                                                  mlp_only_layers
deepseek_v2/3  n_routed_experts     num_experts_per_tok    moe_intermediate_size  ``i >= first_k_dense_replace``
               (+ n_shared_experts                                                and ``i % moe_layer_freq == 0``
               of the same width)
=============  ===================  =====================  =====================  ==========================

A key of this family that the model's type does not use (``n_shared_experts``
in a Mixtral config, ``kv_lora_rank`` in a Qwen3 one) changes the
architecture in a way this reader does not know, so it is refused, naming
the key. Routing-only keys (``norm_topk_prob``, ``n_group``, ``topk_group``,
``routed_scaling_factor``, aux-loss coefficients, jitter) change which experts
are chosen but not what an iteration costs; they are read by nobody and not
checked. DeepSeek's multi-token-prediction layers
(``num_nextn_predict_layers``) are not part of the served model (the published
671B excludes them) and are not counted.
"""

from __future__ import annotations

from typing import Any

from .hf_reader import _Reader, _show
from .mla_spec import MLASpec
from .moe_spec import MoESpec

#: Keys that make a model a mixture of experts (a value other than null or 0).
MOE_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "n_shared_experts",
            "moe_num_experts", "moe_intermediate_size", "num_experts_per_tok",
            "experts_per_token", "shared_expert_intermediate_size", "first_k_dense_replace",
            "moe_layer_freq", "decoder_sparse_step", "mlp_only_layers")
#: Keys of multi-head latent attention (DeepSeek-V2/V3); any non-null value.
MLA_KEYS = ("kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim",
            "v_head_dim")

#: The MoE / MLA keys each model type understands.
_USES = {
    "mixtral": ("num_local_experts", "num_experts_per_tok"),
    "phimoe": ("num_local_experts", "num_experts_per_tok"),
    "gpt_oss": ("num_local_experts", "num_experts_per_tok", "experts_per_token"),
    "qwen3_moe": ("num_experts", "num_experts_per_tok", "moe_intermediate_size",
                  "decoder_sparse_step", "mlp_only_layers"),
    "deepseek_v2": ("n_routed_experts", "n_shared_experts", "num_experts_per_tok",
                    "moe_intermediate_size", "first_k_dense_replace", "moe_layer_freq")
    + MLA_KEYS,
}
_USES["deepseek_v3"] = _USES["deepseek_v2"]
MOE_TYPES = tuple(_USES)


def _set(value: Any) -> bool:
    return value is not None and not (isinstance(value, (int, float)) and not isinstance(
        value, bool) and value == 0) and value != []


def check_moe_keys(rd: _Reader, model_type: str) -> None:
    """Refuse MoE / MLA keys that ``model_type`` does not use (all of them for
    a dense type), naming the first."""
    uses = _USES.get(model_type, ())
    for key in MOE_KEYS + MLA_KEYS:
        if key in uses or not _set(rd.config.get(key)):
            continue
        what = "multi-head latent attention" if key in MLA_KEYS else "mixture-of-experts"
        known = f"model_type {model_type!r} uses {list(uses)}" if uses else (
            f"model_type {model_type!r} is a dense model")
        raise rd.fail(f"{key}={_show(rd.config[key])} describes {what}, which {known}; "
                      f"importing it would silently model a different network (allowed: "
                      f"no {key} key, null or 0)")


def _count0(rd: _Reader, key: str, default: int) -> int:
    """A count that may be 0 (``first_k_dense_replace``)."""
    value = rd.config.get(key)
    if value is None:
        return default
    if value == 0 and isinstance(value, int) and not isinstance(value, bool):
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise rd.fail(f"{key}={_show(value)} must be a JSON integer >= 0")
    return rd.count(key)


def _layers_list(rd: _Reader, key: str, num_layers: int) -> list[int]:
    value = rd.config.get(key)
    if value is None:
        return []
    if (not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool)
                                               and 0 <= i < num_layers for i in value)):
        raise rd.fail(f"{key}={_show(value)} must be a list of layer indices in "
                      f"0..{num_layers - 1}")
    return value


def moe_from_config(rd: _Reader, model_type: str, num_layers: int) -> MoESpec | None:
    """The :class:`MoESpec` of an MoE ``model_type`` (None for a dense type)."""
    if model_type not in _USES:
        return None
    top_k = rd.count("num_experts_per_tok", None)
    if model_type == "gpt_oss":
        other = rd.count("experts_per_token", None)
        if top_k is not None and other is not None and other != top_k:
            raise rd.fail(f"experts_per_token={other} and num_experts_per_tok={top_k} "
                          f"disagree; a token's expert count must be one number")
        top_k = top_k if top_k is not None else other
    if top_k is None:
        raise rd.fail(f"missing required key 'num_experts_per_tok' (the top-k of a "
                      f"{model_type} model)")
    fields: dict[str, Any] = dict(num_experts_per_token=top_k)
    if model_type in ("mixtral", "phimoe", "gpt_oss"):
        fields.update(num_experts=rd.count("num_local_experts"),
                      expert_ffn_size=rd.count("intermediate_size"))
        if model_type == "gpt_oss":  # the gate and every expert GEMM carry biases
            fields.update(router_bias=True, expert_bias=True)
    elif model_type == "qwen3_moe":
        step = rd.count("decoder_sparse_step", 1)
        dense = set(_layers_list(rd, "mlp_only_layers", num_layers))
        layers = [i for i in range(num_layers) if i not in dense and (i + 1) % step == 0]
        fields.update(num_experts=rd.count("num_experts"),
                      expert_ffn_size=rd.count("moe_intermediate_size"),
                      moe_layers=() if len(layers) == num_layers else tuple(layers))
        if not layers:
            raise rd.fail(f"mlp_only_layers / decoder_sparse_step={step} leave no MoE "
                          f"layer; a qwen3_moe config needs at least one")
    else:  # deepseek_v2 / deepseek_v3
        first = _count0(rd, "first_k_dense_replace", 0)
        freq = rd.count("moe_layer_freq", 1)
        layers = [i for i in range(num_layers) if i >= first and i % freq == 0]
        if not layers:
            raise rd.fail(f"first_k_dense_replace={first} with moe_layer_freq={freq} leaves "
                          f"no MoE layer among {num_layers}")
        width = rd.count("moe_intermediate_size")
        shared = _count0(rd, "n_shared_experts", 0)
        scoring = rd.text("scoring_func", "softmax")
        if scoring not in ("softmax", "sigmoid"):
            raise rd.fail(f"scoring_func={scoring!r} is not one of ['softmax', 'sigmoid']")
        fields.update(num_experts=rd.count("n_routed_experts"), expert_ffn_size=width,
                      num_shared_experts=shared, shared_expert_ffn_size=width if shared else 0,
                      moe_layers=() if len(layers) == num_layers else tuple(layers),
                      router_scoring=scoring,
                      router_bias=rd.text("topk_method", "greedy") == "noaux_tc")
    try:
        return MoESpec(**fields)
    except ValueError as err:
        raise rd.fail(str(err)) from None


def mla_from_config(rd: _Reader, model_type: str) -> MLASpec | None:
    """DeepSeek's latent attention (None for other types)."""
    if model_type not in ("deepseek_v2", "deepseek_v3"):
        return None
    q_lora = rd.config.get("q_lora_rank")
    try:
        return MLASpec(kv_lora_rank=rd.count("kv_lora_rank"),
                       qk_rope_head_dim=rd.count("qk_rope_head_dim"),
                       qk_nope_head_dim=rd.count("qk_nope_head_dim"),
                       v_head_dim=rd.count("v_head_dim"),
                       q_lora_rank=0 if q_lora is None else rd.count("q_lora_rank"))
    except ValueError as err:
        raise rd.fail(str(err)) from None
