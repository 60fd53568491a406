"""Build a :class:`~.spec.ModelSpec` from a HuggingFace ``config.json``.

Three families of config layout are understood (detected from ``model_type``
when present, else from the keys):

* LLaMA / Mistral style (``llama``, ``mistral``): ``hidden_size``,
  ``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``,
  ``intermediate_size``, ``vocab_size``, ``max_position_embeddings``,
  ``tie_word_embeddings``, ``hidden_act``. Gated FFN, RMSNorm, rotary positions.
* GPT-2 style (``gpt2``): ``n_embd``, ``n_layer``, ``n_head``, ``n_positions``,
  ``n_inner`` (``None`` means ``4 * n_embd``), ``vocab_size``.
* OPT style (``opt``): ``hidden_size``, ``num_hidden_layers``,
  ``num_attention_heads``, ``ffn_dim``, ``vocab_size``,
  ``max_position_embeddings``, ``activation_function``, ``word_embed_proj_dim``.
* GPT-NeoX style (``gpt_neox``, Pythia): ``hidden_size``, ``num_hidden_layers``,
  ``num_attention_heads``, ``intermediate_size``, ``vocab_size``,
  ``max_position_embeddings``, ``hidden_act``; LayerNorm, rotary positions.

Numbers are read, never downloaded: pass a path to a ``config.json`` (or the
directory holding it) or an already-parsed dict.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from .spec import ModelSpec

_STYLES = ("llama", "gpt2", "opt", "gpt_neox")
_LLAMA_TYPES = ("llama", "mistral")
# Architectures whose shape ModelSpec cannot express; refusing beats a silent mis-model.
_UNSUPPORTED_TYPES = ("mixtral", "qwen2_moe", "deepseek_v2", "deepseek_v3", "gemma",
                      "gemma2", "t5", "bert", "bart")


def _load(path_or_dict) -> tuple[dict[str, Any], str | None]:
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict), None
    if not isinstance(path_or_dict, (str, os.PathLike)):
        raise ValueError(f"path_or_dict must be a path to config.json or a dict, got "
                         f"{type(path_or_dict).__name__}")
    path = os.fspath(path_or_dict)
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    with open(path, encoding="utf-8") as fh:
        config = json.load(fh)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a HuggingFace config must be a JSON object")
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return config, folder or None


def _detect_style(config: dict[str, Any]) -> str:
    model_type = str(config.get("model_type", "")).lower()
    if model_type in _UNSUPPORTED_TYPES or "num_local_experts" in config:
        raise ValueError(f"config model_type={model_type!r} is not supported (mixture-of-"
                         f"experts, encoder or non-standard FFN); supported model_type values "
                         f"are {list(_LLAMA_TYPES) + ['gpt2', 'opt', 'gpt_neox']}")
    if model_type in _LLAMA_TYPES:
        return "llama"
    if model_type in ("gpt2", "opt", "gpt_neox"):
        return model_type
    if "n_embd" in config:
        return "gpt2"
    if "ffn_dim" in config:
        return "opt"
    if "hidden_size" in config and "intermediate_size" in config:
        return "llama"
    raise ValueError(f"cannot tell the layout of this config (model_type={model_type!r}, "
                     f"keys={sorted(config)}); expected one of the styles {list(_STYLES)}: "
                     f"llama/mistral keys (hidden_size, intermediate_size, ...), gpt2 keys "
                     f"(n_embd, n_layer, ...) or opt keys (ffn_dim, ...)")


def _require(config: dict[str, Any], style: str, *keys: str) -> list[Any]:
    missing = [key for key in keys if config.get(key) is None]
    if missing:
        raise ValueError(f"{style}-style HuggingFace config is missing required key(s) "
                         f"{missing}; it needs {list(keys)}")
    return [config[key] for key in keys]


def _plain_activation(value: Any, key: str) -> str:
    act = str(value).lower()
    if act.startswith("gelu"):  # gelu, gelu_new, gelu_fast, gelu_pytorch_tanh
        return "gelu"
    if act == "relu":
        return "relu"
    raise ValueError(f"config {key}={value!r} is not supported for an ungated FFN; allowed "
                     f"values are 'relu' and the gelu variants ('gelu', 'gelu_new', ...)")


def model_from_hf_config(path_or_dict, name: str | None = None, *,
                         dtype_bytes: int = 2) -> ModelSpec:
    """Build a ModelSpec from a HuggingFace ``config.json``.

    Parameters
    ----------
    path_or_dict : str, path-like or dict
        Path of ``config.json`` (or its directory), or the parsed config.
    name : str, optional
        Name of the spec. Defaults to ``_name_or_path`` in the config, then the
        directory name, then ``model_type``.
    dtype_bytes : int, default 2
        Bytes per weight/activation element (the serving precision; the
        config's ``torch_dtype`` is not used because it is the storage dtype).

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        Naming missing keys, or values ModelSpec cannot represent (e.g. a
        ``head_dim`` that differs from ``hidden_size / num_attention_heads``,
        OPT's ``word_embed_proj_dim`` projection, post-norm OPT).
    """
    config, folder = _load(path_or_dict)
    style = _detect_style(config)
    if name is None:
        name = config.get("_name_or_path") or folder or config.get("model_type") or "hf-model"
    fields: dict[str, Any] = dict(name=str(name), dtype_bytes=dtype_bytes)

    if style == "gpt2":
        d, layers, heads, positions, vocab = _require(
            config, style, "n_embd", "n_layer", "n_head", "n_positions", "vocab_size")
        inner = config.get("n_inner")
        fields.update(num_layers=layers, hidden_size=d, num_heads=heads, num_kv_heads=heads,
                      ffn_hidden_size=inner if inner is not None else 4 * d,
                      vocab_size=vocab, max_seq_len=positions,
                      activation=_plain_activation(
                          config.get("activation_function", "gelu_new"),
                          "activation_function"),
                      norm="layernorm", position="learned", bias=True,
                      tied_embeddings=bool(config.get("tie_word_embeddings", True)))
    elif style == "opt":
        d, layers, heads, ffn, vocab, positions = _require(
            config, style, "hidden_size", "num_hidden_layers", "num_attention_heads",
            "ffn_dim", "vocab_size", "max_position_embeddings")
        proj = config.get("word_embed_proj_dim", d)
        if proj != d:
            raise ValueError(f"OPT config word_embed_proj_dim={proj} differs from "
                             f"hidden_size={d}; the extra project_in/project_out layers "
                             f"are not modelled (allowed: word_embed_proj_dim == hidden_size)")
        if config.get("do_layer_norm_before", True) is False:
            raise ValueError("OPT config do_layer_norm_before=False (post-norm) is not "
                             "supported; only pre-norm blocks (True) are modelled")
        fields.update(num_layers=layers, hidden_size=d, num_heads=heads, num_kv_heads=heads,
                      ffn_hidden_size=ffn, vocab_size=vocab, max_seq_len=positions,
                      activation=_plain_activation(config.get("activation_function", "relu"),
                                                   "activation_function"),
                      norm="layernorm", position="learned",
                      bias=bool(config.get("enable_bias", True)),
                      tied_embeddings=bool(config.get("tie_word_embeddings", True)))
    else:
        d, layers, heads, ffn, vocab, positions = _require(
            config, style, "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "vocab_size", "max_position_embeddings")
        kv_heads = config.get("num_key_value_heads") or heads
        head_dim = config.get("head_dim")
        if head_dim is not None and head_dim * heads != d:
            raise ValueError(f"config head_dim={head_dim} is not hidden_size/"
                             f"num_attention_heads={d}/{heads}; ModelSpec needs "
                             f"head_dim * num_attention_heads == hidden_size")
        fields.update(num_layers=layers, hidden_size=d, num_heads=heads,
                      num_kv_heads=kv_heads, ffn_hidden_size=ffn, vocab_size=vocab,
                      max_seq_len=positions, position="rope")
        if style == "gpt_neox":
            fields.update(activation=_plain_activation(config.get("hidden_act", "gelu"),
                                                       "hidden_act"),
                          norm="layernorm", bias=True,
                          tied_embeddings=bool(config.get("tie_word_embeddings", False)))
        else:
            act = str(config.get("hidden_act", "silu")).lower()
            if act not in ("silu", "swish"):
                raise ValueError(f"config hidden_act={act!r} is not supported for a "
                                 f"llama-style gated FFN; allowed values are 'silu', 'swish'")
            fields.update(activation="swiglu", norm="rmsnorm",
                          bias=bool(config.get("attention_bias", False)
                                    or config.get("mlp_bias", False)),
                          tied_embeddings=bool(config.get("tie_word_embeddings", False)))
    return ModelSpec(**fields)
