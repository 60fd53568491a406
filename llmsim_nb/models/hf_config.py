"""Build a :class:`~.spec.ModelSpec` from a HuggingFace ``config.json``.

Four families of config layout are understood (detected from ``model_type``
when present, else from the keys):

* LLaMA / Mistral / Qwen style (``llama``, ``mistral``, ``qwen2``, ``qwen3``,
  and the mixture-of-experts types ``mixtral``, ``qwen3_moe``, ``phimoe``,
  ``gpt_oss``, ``deepseek_v2``, ``deepseek_v3``):
  ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
  ``num_key_value_heads``, ``intermediate_size``, ``vocab_size``,
  ``max_position_embeddings``, ``tie_word_embeddings``, ``hidden_act``,
  ``head_dim`` (explicit: ``num_attention_heads * head_dim`` may differ from
  ``hidden_size``), ``attention_bias``, ``mlp_bias``. Gated FFN, RMSNorm
  (PhiMoE: LayerNorm), rotary positions. Experts and DeepSeek's latent
  attention are read by :mod:`.hf_moe`; sliding windows, Qwen3's q/k norms,
  gpt-oss's attention sinks and quantised weights by :mod:`.hf_layers`.
  (Qwen2's built-in q/k/v biases have no config key and are not counted: a
  few thousand parameters a layer; nor is PhiMoE's LM-head bias, one per
  vocabulary entry.)
* GPT-2 style (``gpt2``): ``n_embd``, ``n_layer``, ``n_head``, ``n_positions``,
  ``n_inner`` (``null`` means ``4 * n_embd``), ``vocab_size``.
* OPT style (``opt``): ``hidden_size``, ``num_hidden_layers``,
  ``num_attention_heads``, ``ffn_dim``, ``vocab_size``,
  ``max_position_embeddings``, ``activation_function``, ``word_embed_proj_dim``.
* GPT-NeoX style (``gpt_neox``, Pythia): ``hidden_size``, ``num_hidden_layers``,
  ``num_attention_heads``, ``intermediate_size``, ``vocab_size``,
  ``max_position_embeddings``, ``hidden_act``; LayerNorm, rotary positions.

Numbers are read, never downloaded: pass a path to a ``config.json`` (or the
directory holding it) or an already-parsed dict.

What is refused
---------------
Every refusal is one ``ValueError`` line naming the config (its path, or
``(dict)``), the key, the value and what is allowed:

* a missing file, text that is not JSON (with line and column), a key that
  appears twice in one JSON object, a top level that is not an object;
* a ``model_type`` other than the ones above (``qwen2_moe``, ``olmoe``,
  ``dbrx``, ``jamba``, ``gemma`` ... are named with the reason);
* a count (``hidden_size``, ``num_key_value_heads``, ...) that is not a JSON
  integer in ``1 .. 2**31 - 1``. A float is refused even when it is integral
  (``4096.0``): HuggingFace writes counts as integers, so a float means the
  file was produced by something else and is not guessed at;
* a flag (``tie_word_embeddings``, ``attention_bias``, ...) that is not JSON
  ``true``/``false`` (the string ``"false"`` is not a boolean);
* head counts that do not divide the width (``hidden_size`` by
  ``num_attention_heads`` when ``head_dim`` is not given, and
  ``num_attention_heads`` by ``num_key_value_heads``);
* keys that describe an architecture the model type does not have, rather
  than importing a different model: mixture-of-experts keys (``num_experts``,
  ``n_shared_experts``, ...) or latent-attention keys (``kv_lora_rank``, ...)
  in a type that does not use them, chunked attention, layer kinds other
  than full and sliding, a sliding window where the type has no rule for
  it, quantisation methods other than fp8 / mxfp4 / gptq / awq,
  cross-attention and encoder-decoder configs, and OPT's post-norm
  (``do_layer_norm_before=false``), removed final norm or
  ``word_embed_proj_dim`` projection.

``null`` for an optional key means "not given" (HuggingFace's own reading);
for a required key it counts as missing. Keys this reader does not use
(``rms_norm_eps``, ``rope_theta``, ``torch_dtype``, ...) are not checked.

The file is read and its keys typed in :mod:`.hf_reader`; the layout is told
and unsupported architectures refused in :mod:`.hf_architecture`; this module
maps each layout to the ModelSpec's fields.
"""

from __future__ import annotations

from typing import Any

from .hf_architecture import _detect_style
from .hf_layers import attention_fields, weight_dtypes
from .hf_moe import mla_from_config, moe_from_config
from .hf_reader import _load, _Reader
from .spec import ModelSpec


def _plain_activation(rd: _Reader, key: str, default: str) -> str:
    value = rd.text(key, default)
    act = value.lower()
    if act.startswith("gelu"):  # gelu, gelu_new, gelu_fast, gelu_pytorch_tanh
        return "gelu"
    if act == "relu":
        return "relu"
    raise rd.fail(f"config {key}={value!r} is not supported for an ungated FFN; allowed "
                  f"values are 'relu' and the gelu variants ('gelu', 'gelu_new', ...)")


def _heads(rd: _Reader, d: int, heads: int, width_key: str, heads_key: str) -> None:
    if d % heads:
        raise rd.fail(f"{width_key}={d} is not divisible by {heads_key}={heads}; the head "
                      f"size must be a whole number (allowed: {heads_key} dividing "
                      f"{width_key})")


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
        config's ``torch_dtype`` describes the stored checkpoint and is not
        used; a ``quantization_config`` sets the weight data types, see
        :mod:`.hf_layers`).

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        One line naming the config, the key, the value and what is allowed:
        see "What is refused" in the module docstring.
    """
    config, folder, where = _load(path_or_dict)
    rd = _Reader(config, where)
    style = _detect_style(rd)
    if name is None:
        name = (rd.text("_name_or_path", None) or folder or rd.text("model_type", None)
                or "hf-model")
    fields: dict[str, Any] = dict(name=name, dtype_bytes=dtype_bytes)

    if style == "gpt2":
        d, layers, heads, positions, vocab = rd.require(
            style, "n_embd", "n_layer", "n_head", "n_positions", "vocab_size")
        _heads(rd, d, heads, "n_embd", "n_head")
        inner = rd.count("n_inner", None)
        fields.update(num_layers=layers, hidden_size=d, num_heads=heads, num_kv_heads=heads,
                      ffn_hidden_size=inner if inner is not None else 4 * d,
                      vocab_size=vocab, max_seq_len=positions,
                      activation=_plain_activation(rd, "activation_function", "gelu_new"),
                      norm="layernorm", position="learned", bias=True,
                      tied_embeddings=rd.flag("tie_word_embeddings", True))
    elif style == "opt":
        d, layers, heads, ffn, vocab, positions = rd.require(
            style, "hidden_size", "num_hidden_layers", "num_attention_heads",
            "ffn_dim", "vocab_size", "max_position_embeddings")
        _heads(rd, d, heads, "hidden_size", "num_attention_heads")
        proj = rd.count("word_embed_proj_dim", d)
        if proj != d:
            raise rd.fail(f"OPT config word_embed_proj_dim={proj} differs from "
                          f"hidden_size={d}; the extra project_in/project_out layers "
                          f"are not modelled (allowed: word_embed_proj_dim == hidden_size)")
        if not rd.flag("do_layer_norm_before", True):
            raise rd.fail("OPT config do_layer_norm_before=false (post-norm, no final "
                          "norm) is not supported; only pre-norm blocks (true) are modelled")
        if rd.flag("_remove_final_layer_norm", False):
            raise rd.fail("OPT config _remove_final_layer_norm=true is not supported; the "
                          "model always has a final norm (allowed: false)")
        if not rd.flag("layer_norm_elementwise_affine", True):
            raise rd.fail("OPT config layer_norm_elementwise_affine=false (norms without "
                          "weights) is not supported (allowed: true)")
        fields.update(num_layers=layers, hidden_size=d, num_heads=heads, num_kv_heads=heads,
                      ffn_hidden_size=ffn, vocab_size=vocab, max_seq_len=positions,
                      activation=_plain_activation(rd, "activation_function", "relu"),
                      norm="layernorm", position="learned",
                      bias=rd.flag("enable_bias", True),
                      tied_embeddings=rd.flag("tie_word_embeddings", True))
    else:
        d, layers, heads, ffn, vocab, positions = rd.require(
            style, "hidden_size", "num_hidden_layers", "num_attention_heads",
            "intermediate_size", "vocab_size", "max_position_embeddings")
        kv_heads = rd.count("num_key_value_heads", heads)
        head_dim = rd.count("head_dim", None)
        model_type = (rd.text("model_type", None) or "llama").lower()
        mla = mla_from_config(rd, model_type)
        if mla is not None:
            head_dim = mla.qk_head_dim
        elif head_dim is None:
            _heads(rd, d, heads, "hidden_size", "num_attention_heads")
        if heads % kv_heads:
            raise rd.fail(f"num_key_value_heads={kv_heads} does not divide "
                          f"num_attention_heads={heads} (allowed: a divisor of "
                          f"num_attention_heads)")
        fields.update(head_dim=head_dim or 0, mla=mla,
                      moe=moe_from_config(rd, model_type, layers))
        if style == "llama":
            fields.update(attention_fields(rd, model_type, layers, positions))
            fields.update(weight_dtypes(rd))
        fields.update(num_layers=layers, hidden_size=d, num_heads=heads,
                      num_kv_heads=kv_heads, ffn_hidden_size=ffn, vocab_size=vocab,
                      max_seq_len=positions, position="rope")
        if style == "gpt_neox":
            if not rd.flag("attention_bias", True):
                raise rd.fail("gpt_neox config attention_bias=false is not supported; "
                              "GPT-NeoX blocks are modelled with biases (allowed: true)")
            fields.update(activation=_plain_activation(rd, "hidden_act", "gelu"),
                          norm="layernorm", bias=True,
                          tied_embeddings=rd.flag("tie_word_embeddings", False))
        else:
            value = rd.text("hidden_act", "silu")
            act = value.lower()
            if act not in ("silu", "swish"):
                raise rd.fail(f"config hidden_act={act!r} is not supported for a "
                              f"llama-style gated FFN; allowed values are 'silu', 'swish'")
            bias = rd.flag("attention_bias", False)
            bias = rd.flag("mlp_bias", False) or bias
            fields.update(activation="swiglu", norm="layernorm" if model_type == "phimoe"
                          else "rmsnorm", bias=bias,
                          tied_embeddings=rd.flag("tie_word_embeddings", False))
    try:
        return ModelSpec(**fields)
    except ValueError as err:
        raise rd.fail(str(err)) from None
