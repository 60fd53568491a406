"""MLASpec: multi-head latent attention (DeepSeek-V2/V3) hyperparameters.

MLA compresses keys and values into one latent vector per token of
``kv_lora_rank`` elements plus a shared rotary key of ``qk_rope_head_dim``;
the KV cache stores exactly those ``kv_lora_rank + qk_rope_head_dim``
elements per token per layer, for all heads together. Queries are
low-rank too when ``q_lora_rank`` > 0. Each head's query/key is
``qk_nope_head_dim + qk_rope_head_dim`` wide and its value ``v_head_dim``.

Weights per layer (the names of HuggingFace's DeepSeek modules)::

    q_a_proj       hidden x q_lora_rank            (q_lora_rank > 0)
    q_a_layernorm  q_lora_rank
    q_b_proj       q_lora_rank x heads*(nope+rope) (hidden x ... without q_lora)
    kv_a_proj      hidden x (kv_lora_rank + rope)  (kv_a_proj_with_mqa)
    kv_a_layernorm kv_lora_rank
    kv_b_proj      kv_lora_rank x heads*(nope+v)
    o_proj         heads*v x hidden

How the operators are timed (the "absorbed" form) is in :mod:`.template`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MLASpec:
    """Multi-head latent attention shape (see the module docstring).

    Parameters
    ----------
    kv_lora_rank : int
        Latent width of keys and values (DeepSeek-V3: 512).
    qk_rope_head_dim : int
        Rotary part of each query/key head, shared by the heads for keys (64).
    qk_nope_head_dim : int
        Non-rotary part of each query/key head (128).
    v_head_dim : int
        Value width per head (128).
    q_lora_rank : int, default 0
        Latent width of queries; 0 means queries are projected directly
        (DeepSeek-V2-Lite).
    """

    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int
    v_head_dim: int
    q_lora_rank: int = 0

    def __post_init__(self) -> None:
        for key in ("kv_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim",
                    "q_lora_rank"):
            value = getattr(self, key)
            minimum = 0 if key == "q_lora_rank" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"MLASpec.{key}={value!r} must be an integer >= {minimum}")

    @property
    def qk_head_dim(self) -> int:
        """Query/key width per head: ``qk_nope_head_dim + qk_rope_head_dim``."""
        return self.qk_nope_head_dim + self.qk_rope_head_dim

    @property
    def kv_elements_per_token(self) -> int:
        """Elements one token's cache holds in one layer: latent + rotary key."""
        return self.kv_lora_rank + self.qk_rope_head_dim

    def attention_parameters(self, hidden_size: int, num_heads: int) -> int:
        """Weights of one MLA attention block, norms included (no biases)."""
        d, h = hidden_size, num_heads
        if self.q_lora_rank:
            q = d * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * h * self.qk_head_dim
        else:
            q = d * h * self.qk_head_dim
        kv = (d * self.kv_elements_per_token + self.kv_lora_rank
              + self.kv_lora_rank * h * (self.qk_nope_head_dim + self.v_head_dim))
        return q + kv + h * self.v_head_dim * d
