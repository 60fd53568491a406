"""Architectures a HuggingFace config may describe, and the ones refused.

:func:`_detect_style` tells the config's layout (llama, gpt2, opt, gpt_neox)
from ``model_type`` or its keys, after :func:`_check_architecture` has refused
keys that describe an architecture :class:`~.spec.ModelSpec` cannot express
(cross-attention and encoder-decoder configs), and mixture-of-experts or
latent-attention keys a dense model type does not use (:mod:`.hf_moe`).
Sliding windows and quantisation of llama-style types are read in
:mod:`.hf_layers`; the GPT-2, OPT and GPT-NeoX layouts refuse them.
"""

from __future__ import annotations

from typing import Any

from .hf_moe import MLA_KEYS as _MLA_KEYS
from .hf_moe import MOE_KEYS as _MOE_KEYS
from .hf_moe import MOE_TYPES, check_moe_keys
from .hf_reader import _Reader, _show

_STYLES = ("llama", "gpt2", "opt", "gpt_neox")
_LLAMA_TYPES = ("llama", "mistral", "qwen2", "qwen3") + MOE_TYPES
_SUPPORTED_TYPES = _LLAMA_TYPES + ("gpt2", "opt", "gpt_neox")
# Architectures whose shape ModelSpec cannot express; refusing beats a silent mis-model.
_UNSUPPORTED_TYPES = {
    "qwen2_moe": "mixture-of-experts with a gated shared expert",
    "olmoe": "mixture-of-experts", "dbrx": "mixture-of-experts",
    "jamba": "mixture-of-experts with state-space layers",
    "gemma": "non-standard FFN", "gemma2": "non-standard FFN",
    "t5": "encoder-decoder", "bart": "encoder-decoder", "bert": "encoder",
}


def _active(value: Any) -> bool:
    return value is not None and not (isinstance(value, (int, float)) and value == 0)


def _architecture_keys(config: dict[str, Any]) -> list[str]:
    """``key=value`` of every mixture-of-experts or latent-attention key set in ``config``."""
    found = [k for k in _MOE_KEYS if _active(config.get(k))]
    found += [k for k in _MLA_KEYS if config.get(k) is not None]
    shown = [f"{k}={_show(config[k])}" for k in found[:3]]
    return shown + ["..."] if len(found) > 3 else shown


def _check_architecture(rd: _Reader, model_type: str) -> None:
    """Refuse keys that describe an architecture ModelSpec cannot express."""
    config = rd.config
    check_moe_keys(rd, model_type or "llama")
    for key in ("is_encoder_decoder", "add_cross_attention"):
        if rd.flag(key, False):
            raise rd.fail(f"{key}=true: encoder-decoder / cross-attention models are not "
                          f"modelled; only decoder-only configs are (allowed: false)")
    if model_type in _LLAMA_TYPES or not model_type and "n_embd" not in config \
            and "ffn_dim" not in config:
        return  # windows, layer kinds and quantisation: hf_layers
    quant = config.get("quantization_config")
    if quant is not None:
        method = quant.get("quant_method") if isinstance(quant, dict) else None
        raise rd.fail(f"quantization_config (quant_method={_show(method)}) stores quantised "
                      f"weights, which the {model_type or 'GPT-2/OPT'} layout does not "
                      f"model; allowed: no quantization_config key or null")
    layer_types = config.get("layer_types")
    if layer_types is not None:
        if not isinstance(layer_types, list) or not all(isinstance(t, str) for t in layer_types):
            raise rd.fail(f"layer_types={_show(layer_types)} must be a list of strings")
        other = sorted(set(layer_types) - {"full_attention"})
        if other:
            raise rd.fail(f"layer_types lists {other}; only 'full_attention' layers are "
                          f"modelled for model_type {model_type!r}")
    chunk = config.get("attention_chunk_size")
    if chunk is not None:
        raise rd.fail(f"attention_chunk_size={_show(chunk)}: chunked attention is not "
                      f"modelled (allowed: null)")
    window = config.get("sliding_window")
    if window is not None and rd.flag("use_sliding_window", True):
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise rd.fail(f"sliding_window={_show(window)} must be null or a JSON integer "
                          f">= 1")
        positions = config.get("max_position_embeddings", config.get("n_positions"))
        if not (isinstance(positions, int) and not isinstance(positions, bool)
                and window >= positions):
            raise rd.fail(f"sliding_window={window} is narrower than the context "
                          f"(max_position_embeddings={_show(positions)}); sliding-window "
                          f"attention is not modelled for model_type {model_type!r} "
                          f"(allowed: null, a window >= max_position_embeddings, or "
                          f"use_sliding_window=false)")


def _detect_style(rd: _Reader) -> str:
    config = rd.config
    given = rd.text("model_type", None)
    model_type = given.lower() if given is not None else ""
    if model_type and model_type not in _SUPPORTED_TYPES:
        detail = ", ".join(_architecture_keys(config))
        reason = _UNSUPPORTED_TYPES.get(model_type)
        why = (f" ({reason}{'; ' + detail if detail else ''})" if reason
               else f" ({detail})" if detail else "")
        raise rd.fail(f"config model_type={given!r} is not supported{why}; supported "
                      f"model_type values are {list(_SUPPORTED_TYPES)}")
    _check_architecture(rd, model_type)
    if model_type in _LLAMA_TYPES:
        return "llama"
    if model_type:
        return model_type
    if "n_embd" in config:
        return "gpt2"
    if "ffn_dim" in config:
        return "opt"
    if "hidden_size" in config and "intermediate_size" in config:
        return "llama"
    keys = sorted(str(k) for k in config)
    shown = keys if len(keys) <= 20 else keys[:20] + [f"... {len(keys) - 20} more"]
    raise rd.fail(f"cannot tell the layout of this config (no model_type, keys={shown}); "
                  f"expected one of the styles {list(_STYLES)}: llama/mistral keys "
                  f"(hidden_size, intermediate_size, ...), gpt2 keys (n_embd, n_layer, ...) "
                  f"or opt keys (ffn_dim, ...)")
