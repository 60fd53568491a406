"""Per-layer attention kinds, sinks, q/k norms and weight quantisation of a
llama-style HuggingFace config.

Sliding windows, by ``model_type``:

* ``layer_types`` when the config lists it (gpt-oss): ``"full_attention"`` or
  ``"sliding_attention"`` per layer, with ``sliding_window`` tokens;
* ``mistral``, ``mixtral``, ``phimoe``: every layer slides over
  ``sliding_window`` tokens when it is given (null: none);
* ``qwen2``, ``qwen3``, ``qwen3_moe``: only with ``use_sliding_window=true``,
  and then the layers from ``max_window_layers`` on (HuggingFace's rule);
* other types: a ``sliding_window`` narrower than the context is refused.

A window at least as wide as ``max_position_embeddings`` is full attention.
Other layer kinds (``chunked_attention``, linear attention) are refused.

Fixed by the architecture (no config key): Qwen3 and Qwen3-MoE normalise
queries and keys per head; gpt-oss has a learned attention sink per head.

Quantised checkpoints (``quantization_config``): ``fp8`` stores every linear
weight in fp8 (DeepSeek-V3: embeddings, head, norms and router stay bf16);
``mxfp4`` stores the expert weights in MXFP4, and the attention weights too
unless ``modules_to_not_convert`` keeps ``self_attn`` (gpt-oss keeps it);
``gptq`` / ``awq`` with ``bits`` 4 or 8 are ``int4`` / ``int8`` group-scaled
weights. Other methods are refused, naming them.
"""

from __future__ import annotations

from typing import Any

from .hf_reader import _Reader, _show

_WINDOW_ALL = ("mistral", "mixtral", "phimoe")
_WINDOW_QWEN = ("qwen2", "qwen3", "qwen3_moe")
_QK_NORM = ("qwen3", "qwen3_moe")
_KINDS = {"full_attention": "full", "sliding_attention": "sliding"}


def _window(rd: _Reader) -> int | None:
    value = rd.config.get("sliding_window")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise rd.fail(f"sliding_window={_show(value)} must be null or a JSON integer >= 1")
    return value


def attention_fields(rd: _Reader, model_type: str, num_layers: int,
                     positions: int) -> dict[str, Any]:
    """``layer_types``, ``sliding_window``, ``qk_norm``, ``attention_sinks``."""
    config = rd.config
    if config.get("attention_chunk_size") is not None:
        raise rd.fail(f"attention_chunk_size={_show(config['attention_chunk_size'])}: chunked "
                      f"attention is not modelled (allowed: null)")
    use_window = rd.flag("use_sliding_window", model_type not in _WINDOW_QWEN)
    window = _window(rd)
    listed = config.get("layer_types")
    if listed is not None:
        if (not isinstance(listed, list) or len(listed) != num_layers
                or not all(isinstance(t, str) for t in listed)):
            raise rd.fail(f"layer_types={_show(listed)} must be a list of {num_layers} "
                          f"strings (one per layer)")
        other = sorted(set(listed) - set(_KINDS))
        if other:
            raise rd.fail(f"layer_types lists {other}; modelled kinds are {list(_KINDS)}")
        kinds = [_KINDS[t] for t in listed]
    elif window is None or not use_window:
        kinds = ["full"] * num_layers
    elif model_type in _WINDOW_ALL:
        kinds = ["sliding"] * num_layers
    elif model_type in _WINDOW_QWEN:
        first = rd.count("max_window_layers")
        kinds = ["full" if i < first else "sliding" for i in range(num_layers)]
    elif window >= positions:
        kinds = ["full"] * num_layers
    else:
        raise rd.fail(f"sliding_window={window} is narrower than the context "
                      f"(max_position_embeddings={positions}) and model_type {model_type!r} "
                      f"has no rule for which layers slide (allowed: null, a window >= "
                      f"max_position_embeddings, or use_sliding_window=false)")
    if "sliding" in kinds and window is None:
        raise rd.fail("layer_types lists sliding_attention layers but sliding_window is "
                      "missing; a sliding layer needs its window")
    if window is not None and window >= positions:
        kinds = ["full"] * num_layers  # the window never cuts anything off
    sliding = "sliding" in kinds
    return dict(layer_types=tuple(kinds) if sliding else (),
                sliding_window=window if sliding else 0,
                qk_norm=model_type in _QK_NORM,
                attention_sinks=model_type == "gpt_oss")


def weight_dtypes(rd: _Reader) -> dict[str, str]:
    """``weight_dtype`` / ``expert_weight_dtype`` from ``quantization_config``."""
    quant = rd.config.get("quantization_config")
    if quant is None:
        return {}
    if not isinstance(quant, dict):
        raise rd.fail(f"quantization_config={_show(quant)} must be a JSON object")
    method = quant.get("quant_method")
    if method == "fp8":
        return dict(weight_dtype="fp8", expert_weight_dtype="fp8")
    if method == "mxfp4":
        keep = quant.get("modules_to_not_convert") or []
        if not isinstance(keep, list):
            raise rd.fail(f"quantization_config.modules_to_not_convert={_show(keep)} must "
                          f"be a list of module patterns")
        attention_kept = any(isinstance(m, str) and m.endswith("self_attn") for m in keep)
        return dict(weight_dtype="" if attention_kept else "mxfp4",
                    expert_weight_dtype="mxfp4")
    if method in ("gptq", "awq"):
        bits = quant.get("bits", quant.get("w_bit"))
        if "bits" in quant and "w_bit" in quant and quant["bits"] != quant["w_bit"]:
            raise rd.fail(f"quantization_config bits={_show(quant['bits'])} and w_bit="
                          f"{_show(quant['w_bit'])} disagree; the weight width must be one "
                          f"number")
        if bits not in (4, 8) or isinstance(bits, bool):
            raise rd.fail(f"quantization_config (quant_method={method!r}) bits="
                          f"{_show(bits)} is not modelled; allowed bits: 4, 8")
        dtype = "int4" if bits == 4 else "int8"
        return dict(weight_dtype=dtype, expert_weight_dtype=dtype)
    raise rd.fail(f"quantization_config (quant_method={_show(method)}) stores weights in a "
                  f"layout that is not modelled; allowed quant_method values: 'fp8', "
                  f"'mxfp4', 'gptq', 'awq'")
