"""ModelSpec: the hyperparameters of one decoder-only transformer.

A spec is pure data. It knows how to count its own parameters and the bytes its
weights and KV cache take, because the scheduler needs those figures to size the
paged KV cache (the counting itself is in :mod:`.parameter_count`). How a block
turns into operators lives in ``template.py``.

Layers need not be identical: ``layer_types`` says which layers attend over
a sliding window, ``moe`` which are mixture-of-experts
(:class:`~.moe_spec.MoESpec`), and ``mla`` replaces grouped-query attention by
DeepSeek's latent attention (:class:`~.mla_spec.MLASpec`).
:meth:`ModelSpec.layer_kinds` lists each layer's kind.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .dtypes import DTYPE_BITS, DTYPE_OF_BYTES, KV_DTYPES, check_dtype, element_bytes
from .mla_spec import MLASpec
from .moe_spec import MoESpec

#: Attention kinds of a layer (``ModelSpec.layer_types``).
ATTENTION_KINDS = ("full", "sliding")

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
        Query heads.
    num_kv_heads : int
        Key/value heads (``num_heads`` for multi-head attention, fewer for
        grouped-query attention). Must divide ``num_heads``.
    ffn_hidden_size : int
        Inner width of the dense feed-forward network (of the layers that are
        not mixture-of-experts).
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
        Whether the attention and dense FFN linear layers carry biases (GPT-2/3
        and OPT do, LLaMA does not; experts: ``MoESpec.expert_bias``).
    tied_embeddings : bool
        Whether the LM head reuses the token-embedding matrix.
    dtype_bytes : int
        Bytes per activation element (2 for fp16/bf16), and of every weight
        and KV element whose data type below is not given.
    head_dim : int, default 0
        Width of one attention head; 0 means ``hidden_size / num_heads``
        (which must then divide). Qwen3 and gpt-oss give it explicitly
        (``num_heads * head_dim`` need not be ``hidden_size``).
    qk_norm : bool, default False
        Per-head RMSNorm of queries and keys before attention (Qwen3).
    layer_types : tuple of {"full", "sliding"}, default ()
        Attention kind of each layer; empty means every layer is full.
    sliding_window : int, default 0
        Tokens a ``"sliding"`` layer attends to (its own included); > 0 exactly
        when some layer slides.
    attention_sinks : bool, default False
        A learned sink logit per head (gpt-oss): ``num_heads`` parameters a
        layer (read by the softmax; the extra score column it adds is not
        timed: one of ``window`` or more).
    mla : MLASpec, optional
        Multi-head latent attention in place of grouped-query attention.
    moe : MoESpec, optional
        Mixture-of-experts FFNs (in ``moe.moe_layers``).
    weight_dtype : str, default ""
        Data type of the attention and dense FFN weights (:mod:`.dtypes`);
        "" means the type of ``dtype_bytes``.
    expert_weight_dtype : str, default ""
        Data type of the (routed and shared) expert weights; "" means
        ``weight_dtype``. Embeddings, LM head, norms, router and biases stay
        at ``dtype_bytes`` (as the fp8 and MXFP4 checkpoints keep them).
    kv_dtype : str, default ""
        Data type of the KV cache; "" means the type of ``dtype_bytes``.
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
    head_dim: int = 0
    qk_norm: bool = False
    layer_types: tuple[str, ...] = ()
    sliding_window: int = 0
    attention_sinks: bool = False
    mla: MLASpec | None = None
    moe: MoESpec | None = None
    weight_dtype: str = ""
    expert_weight_dtype: str = ""
    kv_dtype: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"ModelSpec.name must be a non-empty string, got {self.name!r}")
        for key in ("num_layers", "hidden_size", "num_heads", "num_kv_heads",
                    "ffn_hidden_size", "vocab_size", "max_seq_len", "dtype_bytes"):
            _positive(key, getattr(self, key))
        if self.head_dim == 0:
            if self.hidden_size % self.num_heads:
                raise ValueError(
                    f"ModelSpec.hidden_size={self.hidden_size} must be a multiple of "
                    f"num_heads={self.num_heads} (or give head_dim)")
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        _positive("head_dim", self.head_dim)
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"ModelSpec.num_kv_heads={self.num_kv_heads} must divide "
                f"num_heads={self.num_heads}")
        for key, allowed in (("activation", ACTIVATIONS), ("norm", NORMS),
                             ("position", POSITIONS)):
            if getattr(self, key) not in allowed:
                raise ValueError(
                    f"ModelSpec.{key}={getattr(self, key)!r} is not one of {allowed}")
        self._check_layers()
        self._check_parts()

    def _check_layers(self) -> None:
        types = tuple(self.layer_types)
        object.__setattr__(self, "layer_types", types)
        if types and len(types) != self.num_layers:
            raise ValueError(f"ModelSpec.layer_types has {len(types)} entries; expected one "
                             f"per layer ({self.num_layers}) or none")
        bad = sorted(set(types) - set(ATTENTION_KINDS))
        if bad:
            raise ValueError(f"ModelSpec.layer_types has {bad}; allowed kinds are "
                             f"{ATTENTION_KINDS}")
        sliding = "sliding" in types
        window = self.sliding_window
        if not isinstance(window, int) or isinstance(window, bool) or window < 0:
            raise ValueError(f"ModelSpec.sliding_window={window!r} must be an integer >= 0")
        if sliding != (window > 0):
            raise ValueError(f"ModelSpec.sliding_window={window} with layer_types "
                             f"{'listing' if sliding else 'without'} 'sliding' layers: a "
                             f"window (> 0) is given exactly when some layer slides")
        for key in ("qk_norm", "attention_sinks"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"ModelSpec.{key}={getattr(self, key)!r} must be True or "
                                 f"False")

    def _check_parts(self) -> None:
        if self.mla is not None and not isinstance(self.mla, MLASpec):
            raise ValueError(f"ModelSpec.mla must be an MLASpec or None, got {self.mla!r}")
        if self.mla is not None:
            for key in ("qk_norm", "bias", "attention_sinks"):
                if getattr(self, key):
                    raise ValueError(f"ModelSpec.{key}=True with mla: latent attention has "
                                     f"its own norms and no biases or sinks (allowed: False)")
        if self.moe is not None:
            if not isinstance(self.moe, MoESpec):
                raise ValueError(f"ModelSpec.moe must be a MoESpec or None, got {self.moe!r}")
            late = [i for i in self.moe.moe_layers if i >= self.num_layers]
            if late:
                raise ValueError(f"MoESpec.moe_layers lists {late}, beyond the model's "
                                 f"{self.num_layers} layers (0 .. {self.num_layers - 1})")
        if self.dtype_bytes not in DTYPE_OF_BYTES:
            raise ValueError(f"ModelSpec.dtype_bytes={self.dtype_bytes} is not one of "
                             f"{sorted(DTYPE_OF_BYTES)} (bytes of fp8, bf16, fp32)")
        for key, allowed in (("weight_dtype", tuple(DTYPE_BITS)),
                             ("expert_weight_dtype", tuple(DTYPE_BITS)),
                             ("kv_dtype", KV_DTYPES)):
            if getattr(self, key) != "":
                check_dtype("ModelSpec", key, getattr(self, key), allowed)

    @property
    def kv_dim(self) -> int:
        """Width of the K (or V) projection output: ``num_kv_heads * head_dim``."""
        return self.num_kv_heads * self.head_dim

    @property
    def q_dim(self) -> int:
        """Width of the query projection output: ``num_heads * head_dim``."""
        return self.num_heads * self.head_dim

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    def layer_kinds(self) -> tuple[tuple[str, bool], ...]:
        """Per layer ``(attention kind, is MoE)``: ``("full" | "sliding", bool)``."""
        types = self.layer_types or ("full",) * self.num_layers
        moe = self.moe
        return tuple((t, moe is not None and moe.is_moe_layer(i)) for i, t in enumerate(types))

    @property
    def dtypes(self) -> tuple[str, str, str]:
        """``(weight, expert weight, KV)`` data types with the defaults filled in."""
        base = DTYPE_OF_BYTES[self.dtype_bytes]
        weight = self.weight_dtype or base
        return weight, self.expert_weight_dtype or weight, self.kv_dtype or base

    def parameters(self):
        """The parameter count by tensor class (:class:`~.parameter_count.ParameterCount`)."""
        from .parameter_count import count_parameters
        return count_parameters(self)

    def block_parameters(self) -> int:
        """Parameters of one dense, full-attention block (the first layer's kind
        for a dense model; see :meth:`parameters` for models with MoE layers)."""
        return self.parameters().dense_block

    def num_parameters(self) -> int:
        """Total parameters: blocks, embeddings, final norm and (untied) LM head."""
        return self.parameters().total

    def num_active_parameters(self, include_embedding: bool = True) -> int:
        """Parameters one token runs through (routed experts: only its top-k).

        ``include_embedding=False`` leaves out the input embedding table (a
        lookup, no FLOPs), the convention of OpenAI's gpt-oss figures; Mistral
        and Qwen count it.
        """
        return self.parameters().active(include_embedding)

    def weight_bytes(self) -> int:
        """Bytes of all weights, each tensor class at its data type."""
        return self.parameters().weight_bytes

    @property
    def kv_elements_per_token_per_layer(self) -> int:
        """KV-cache elements one token holds in one layer: K and V of every KV
        head, or MLA's latent plus rotary key."""
        if self.mla is not None:
            return self.mla.kv_elements_per_token
        return 2 * self.kv_dim

    @property
    def kv_element_bytes(self) -> float:
        return element_bytes(self.dtypes[2])

    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token occupies across all layers.

        Sliding-window layers are counted in full, as a paged pool that keeps
        every layer's blocks for the request's whole life does (vLLM without
        its hybrid allocator); :meth:`kv_bytes` gives the windowed figure.
        """
        return int(round(self.num_layers * self.kv_elements_per_token_per_layer
                         * self.kv_element_bytes))

    def kv_bytes(self, num_tokens: int) -> float:
        """KV bytes of one request of ``num_tokens`` tokens when sliding layers
        keep only their last ``sliding_window`` tokens."""
        per_layer = self.kv_elements_per_token_per_layer * self.kv_element_bytes
        kinds = [kind for kind, _ in self.layer_kinds()]
        window = min(num_tokens, self.sliding_window)
        return per_layer * (kinds.count("full") * num_tokens + kinds.count("sliding") * window)
