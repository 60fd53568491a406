"""ModelSpec: the hyperparameters of one decoder-only transformer.

A spec is pure data. It knows how to count its own parameters and the bytes its
weights and KV cache take, because the scheduler needs those figures to size the
paged KV cache. How a block turns into operators lives in ``template.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ACTIVATIONS = ("gelu", "relu", "swiglu")
NORMS = ("layernorm", "rmsnorm")
POSITIONS = ("learned", "rope")


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"ModelSpec.{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Hyperparameters of a decoder-only transformer.

    Parameters
    ----------
    name : str
        Catalog name (the seed's spelling, e.g. ``"gpt3-6.7b"``).
    num_layers : int
        Number of identical transformer blocks.
    hidden_size : int
        Model width ``d_model``.
    num_heads : int
        Query heads. ``hidden_size`` must divide evenly by it.
    num_kv_heads : int
        Key/value heads (``num_heads`` for multi-head attention, fewer for
        grouped-query attention). Must divide ``num_heads``.
    ffn_hidden_size : int
        Inner width of the feed-forward network.
    vocab_size : int
        Vocabulary size (embedding rows and LM-head columns).
    max_seq_len : int
        Longest context the model supports, in tokens.
    activation : {"gelu", "relu", "swiglu"}
        FFN activation. ``swiglu`` means a gated FFN with three matrices.
    norm : {"layernorm", "rmsnorm"}
        Normalisation; layernorm has a bias, rmsnorm does not.
    position : {"learned", "rope"}
        Learned absolute position embeddings add ``max_seq_len * hidden_size``
        parameters; rotary embeddings add none.
    bias : bool
        Whether linear layers carry biases (GPT-2/3 and OPT do, LLaMA does not).
    tied_embeddings : bool
        Whether the LM head reuses the token-embedding matrix.
    dtype_bytes : int
        Bytes per weight / activation / KV element (2 for fp16).
    """

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    ffn_hidden_size: int
    vocab_size: int
    max_seq_len: int = 2048
    activation: str = "gelu"
    norm: str = "layernorm"
    position: str = "learned"
    bias: bool = True
    tied_embeddings: bool = True
    dtype_bytes: int = 2
    aliases: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ModelSpec.name must be a non-empty string, got {self.name!r}")
        for key in ("num_layers", "hidden_size", "num_heads", "num_kv_heads",
                    "ffn_hidden_size", "vocab_size", "max_seq_len", "dtype_bytes"):
            _positive(key, getattr(self, key))
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"ModelSpec.hidden_size={self.hidden_size} must be a multiple of "
                f"num_heads={self.num_heads}")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"ModelSpec.num_kv_heads={self.num_kv_heads} must divide "
                f"num_heads={self.num_heads}")
        for key, allowed in (("activation", ACTIVATIONS), ("norm", NORMS),
                             ("position", POSITIONS)):
            if getattr(self, key) not in allowed:
                raise ValueError(
                    f"ModelSpec.{key}={getattr(self, key)!r} is not one of {allowed}")

    @property
    def head_dim(self) -> int:
        """Width of one attention head."""
        return self.hidden_size // self.num_heads

    @property
    def kv_dim(self) -> int:
        """Width of the K (or V) projection output: ``num_kv_heads * head_dim``."""
        return self.num_kv_heads * self.head_dim

    def block_parameters(self) -> int:
        """Parameters of one transformer block (weights, biases, norm scales)."""
        d, f, kv = self.hidden_size, self.ffn_hidden_size, self.kv_dim
        attn = d * (d + 2 * kv) + d * d
        ffn = (3 if self.activation == "swiglu" else 2) * d * f
        params = attn + ffn
        if self.bias:
            params += (d + 2 * kv) + d + (2 * f if self.activation == "swiglu" else f) + d
        norm_params = 2 * d if self.norm == "layernorm" else d
        return params + 2 * norm_params

    def num_parameters(self) -> int:
        """Total parameters: blocks, embeddings, final norm and (untied) LM head."""
        d = self.hidden_size
        params = self.num_layers * self.block_parameters() + self.vocab_size * d
        if self.position == "learned":
            params += self.max_seq_len * d
        params += 2 * d if self.norm == "layernorm" else d
        if not self.tied_embeddings:
            params += self.vocab_size * d
        return params

    def weight_bytes(self) -> int:
        """Bytes of all weights at ``dtype_bytes`` per parameter."""
        return self.num_parameters() * self.dtype_bytes

    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token occupies across all layers (K and V)."""
        return 2 * self.num_layers * self.kv_dim * self.dtype_bytes
