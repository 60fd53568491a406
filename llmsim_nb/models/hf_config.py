"""Build a :class:`~.spec.ModelSpec` from a HuggingFace ``config.json``.

Four families of config layout are understood (detected from ``model_type``
when present, else from the keys):

* LLaMA / Mistral / Qwen style (``llama``, ``mistral``, ``qwen2``, ``qwen3``):
  ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``,
  ``num_key_value_heads``, ``intermediate_size``, ``vocab_size``,
  ``max_position_embeddings``, ``tie_word_embeddings``, ``hidden_act``,
  ``head_dim``, ``attention_bias``, ``mlp_bias``. Gated FFN, RMSNorm, rotary
  positions. (Qwen2's built-in q/k/v biases and Qwen3's per-head q/k norms
  have no config key and are not counted: a few thousand parameters a layer.)
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
* a ``model_type`` other than the ones above;
* a count (``hidden_size``, ``num_key_value_heads``, ...) that is not a JSON
  integer in ``1 .. 2**31 - 1``. A float is refused even when it is integral
  (``4096.0``): HuggingFace writes counts as integers, so a float means the
  file was produced by something else and is not guessed at;
* a flag (``tie_word_embeddings``, ``attention_bias``, ...) that is not JSON
  ``true``/``false`` (the string ``"false"`` is not a boolean);
* head counts that do not divide the width (``hidden_size`` by
  ``num_attention_heads`` when ``head_dim`` is not given, and
  ``num_attention_heads`` by ``num_key_value_heads``), and a ``head_dim``
  other than ``hidden_size / num_attention_heads``;
* keys that describe an architecture ModelSpec cannot express, rather than
  importing it as a dense model: mixture-of-experts keys (``num_experts``,
  ``num_local_experts``, ``n_routed_experts``, ...), multi-head latent
  attention (``kv_lora_rank``, ``q_lora_rank``, ...), sliding-window or
  chunked attention narrower than the context, cross-attention and
  encoder-decoder configs, and OPT's post-norm (``do_layer_norm_before=false``),
  removed final norm or ``word_embed_proj_dim`` projection.

``null`` for an optional key means "not given" (HuggingFace's own reading);
for a required key it counts as missing. Keys this reader does not use
(``rms_norm_eps``, ``rope_theta``, ``torch_dtype``, ...) are not checked.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from .spec import ModelSpec

_STYLES = ("llama", "gpt2", "opt", "gpt_neox")
_LLAMA_TYPES = ("llama", "mistral", "qwen2", "qwen3")
_SUPPORTED_TYPES = _LLAMA_TYPES + ("gpt2", "opt", "gpt_neox")
# Architectures whose shape ModelSpec cannot express; refusing beats a silent mis-model.
_UNSUPPORTED_TYPES = {
    "mixtral": "mixture-of-experts", "qwen2_moe": "mixture-of-experts",
    "qwen3_moe": "mixture-of-experts", "phimoe": "mixture-of-experts",
    "gpt_oss": "mixture-of-experts", "olmoe": "mixture-of-experts",
    "dbrx": "mixture-of-experts", "jamba": "mixture-of-experts",
    "deepseek_v2": "mixture-of-experts with latent attention",
    "deepseek_v3": "mixture-of-experts with latent attention",
    "gemma": "non-standard FFN", "gemma2": "non-standard FFN",
    "t5": "encoder-decoder", "bart": "encoder-decoder", "bert": "encoder",
}
#: Keys that make a model a mixture of experts (a value other than null or 0).
_MOE_KEYS = ("num_local_experts", "num_experts", "n_routed_experts", "n_shared_experts",
             "moe_num_experts", "moe_intermediate_size", "num_experts_per_tok",
             "experts_per_token")
#: Keys of multi-head latent attention (DeepSeek-V2/V3); any non-null value.
_MLA_KEYS = ("kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim",
             "v_head_dim")
_MAX_INT = 2**31 - 1
_MISSING = object()


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _show(value: Any) -> str:
    """``repr`` of a value from the file, cut short so a message stays one line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _load(path_or_dict) -> tuple[dict[str, Any], str | None, str]:
    """The parsed config, the name of its folder (or None) and how messages name it."""
    if isinstance(path_or_dict, Mapping):
        return dict(path_or_dict), None, "HuggingFace config (dict)"
    if not isinstance(path_or_dict, (str, os.PathLike)):
        raise ValueError(f"path_or_dict must be a path to config.json or a dict, got "
                         f"{type(path_or_dict).__name__}")
    path = os.fspath(path_or_dict)
    if isinstance(path, bytes):
        raise ValueError(f"path_or_dict must be a str path, got bytes {path!r}")
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    where = f"HuggingFace config {path!r}"
    if not os.path.isfile(path):
        raise ValueError(f"{where}: file not found (give a config.json or the directory "
                         f"holding one)")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        text = raw.decode("utf-8")
    except OSError as err:
        raise ValueError(f"{where}: cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: is not UTF-8 text (byte {err.start}); a config.json "
                         f"is JSON text") from None
    try:
        config = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as dup:
        raise ValueError(f"{where}: key {dup.key!r} appears more than once in one JSON "
                         f"object; each key may appear only once") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{where}: not valid JSON: {err.msg} at line {err.lineno} column "
                         f"{err.colno}") from None
    except RecursionError:
        raise ValueError(f"{where}: not valid JSON: nested too deeply") from None
    if not isinstance(config, dict):
        raise ValueError(f"{where}: a HuggingFace config must be a JSON object, got "
                         f"{type(config).__name__}")
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return config, folder or None, where


class _Reader:
    """Typed reads of config keys; every refusal names the config, the key and the value."""

    def __init__(self, config: dict[str, Any], where: str):
        self.config = config
        self.where = where

    def fail(self, message: str) -> ValueError:
        return ValueError(f"{self.where}: {message}")

    def count(self, key: str, default: Any = _MISSING) -> Any:
        """A JSON integer in ``1 .. 2**31 - 1``; ``default`` when absent or null."""
        value = self.config.get(key)
        if value is None:
            if default is _MISSING:
                raise self.fail(f"missing required key {key!r}")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            kind = "a float" if isinstance(value, float) else type(value).__name__
            raise self.fail(f"{key}={_show(value)} must be a JSON integer >= 1, got {kind}")
        if not 1 <= value <= _MAX_INT:
            raise self.fail(f"{key}={value} must be an integer in 1..{_MAX_INT}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        """JSON ``true``/``false``; ``default`` when absent."""
        if key not in self.config:
            return default
        value = self.config[key]
        if not isinstance(value, bool):
            raise self.fail(f"{key}={_show(value)} must be true or false (a JSON boolean)")
        return value

    def text(self, key: str, default: str | None) -> str | None:
        """A string; ``default`` when absent or null."""
        value = self.config.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(f"{key}={_show(value)} must be a string")
        return value

    def require(self, style: str, *keys: str) -> list[int]:
        missing = [key for key in keys if self.config.get(key) is None]
        if missing:
            raise self.fail(f"{style}-style HuggingFace config is missing required key(s) "
                            f"{missing} (null counts as missing); it needs {list(keys)}")
        return [self.count(key) for key in keys]


def _active(value: Any) -> bool:
    return value is not None and not (isinstance(value, (int, float)) and value == 0)


def _architecture_keys(config: dict[str, Any]) -> list[str]:
    """``key=value`` of every mixture-of-experts or latent-attention key set in ``config``."""
    found = [k for k in _MOE_KEYS if _active(config.get(k))]
    found += [k for k in _MLA_KEYS if config.get(k) is not None]
    shown = [f"{k}={_show(config[k])}" for k in found[:3]]
    return shown + ["..."] if len(found) > 3 else shown


def _check_architecture(rd: _Reader) -> None:
    """Refuse keys that describe an architecture ModelSpec cannot express."""
    config = rd.config
    for key in _MOE_KEYS:
        if _active(config.get(key)):
            raise rd.fail(f"{key}={_show(config[key])} makes this a mixture-of-experts "
                          f"model, which ModelSpec does not model (importing it as a dense "
                          f"model would be wrong); allowed: no {key} key, null or 0")
    for key in _MLA_KEYS:
        if config.get(key) is not None:
            raise rd.fail(f"{key}={_show(config[key])} is multi-head latent attention, "
                          f"which ModelSpec does not model; allowed: no {key} key or null")
    for key in ("is_encoder_decoder", "add_cross_attention"):
        if rd.flag(key, False):
            raise rd.fail(f"{key}=true: encoder-decoder / cross-attention models are not "
                          f"modelled; only decoder-only configs are (allowed: false)")
    layer_types = config.get("layer_types")
    if layer_types is not None:
        if not isinstance(layer_types, list) or not all(isinstance(t, str) for t in layer_types):
            raise rd.fail(f"layer_types={_show(layer_types)} must be a list of strings")
        other = sorted(set(layer_types) - {"full_attention"})
        if other:
            raise rd.fail(f"layer_types lists {other}; only 'full_attention' layers are "
                          f"modelled (no sliding-window or chunked attention)")
    chunk = config.get("attention_chunk_size")
    if chunk is not None:
        raise rd.fail(f"attention_chunk_size={_show(chunk)}: chunked attention is not "
                      f"modelled (allowed: null)")
    use_window = rd.flag("use_sliding_window", True)
    window = config.get("sliding_window")
    if window is not None and use_window:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise rd.fail(f"sliding_window={_show(window)} must be null or a JSON integer "
                          f">= 1")
        positions = config.get("max_position_embeddings")
        if not (isinstance(positions, int) and not isinstance(positions, bool)
                and window >= positions):
            raise rd.fail(f"sliding_window={window} is narrower than the context "
                          f"(max_position_embeddings={_show(positions)}); sliding-window "
                          f"attention is not modelled (allowed: null, a window >= "
                          f"max_position_embeddings, or use_sliding_window=false)")


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
    _check_architecture(rd)
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
        config's ``torch_dtype`` and ``quantization_config`` are not used
        because they describe the stored checkpoint).

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
        if head_dim is not None and head_dim * heads != d:
            raise rd.fail(f"config head_dim={head_dim} is not hidden_size/"
                          f"num_attention_heads={d}/{heads}; ModelSpec needs "
                          f"head_dim * num_attention_heads == hidden_size")
        _heads(rd, d, heads, "hidden_size", "num_attention_heads")
        if heads % kv_heads:
            raise rd.fail(f"num_key_value_heads={kv_heads} does not divide "
                          f"num_attention_heads={heads} (allowed: a divisor of "
                          f"num_attention_heads)")
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
            fields.update(activation="swiglu", norm="rmsnorm", bias=bias,
                          tied_embeddings=rd.flag("tie_word_embeddings", False))
    try:
        return ModelSpec(**fields)
    except ValueError as err:
        raise rd.fail(str(err)) from None
