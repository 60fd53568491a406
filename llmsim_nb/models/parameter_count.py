"""ParameterCount: a model's parameters by tensor class, and what they weigh.

Counted per layer, so that models whose layers differ (dense and MoE, MLA)
add up exactly. The classes, and the data type each is stored in
(``ModelSpec.dtypes``; the rest at ``dtype_bytes``):

- ``attention``: Q/K/V/O projections (or MLA's seven matrices) -- weight type;
- ``dense_ffn``: the FFN of the dense layers -- weight type;
- ``routed_experts``, ``shared_experts``: expert FFN matrices -- expert weight type;
- ``routed_expert_biases``: their biases (gpt-oss) -- ``dtype_bytes``;
- ``router``: gate GEMMs (and their bias) -- ``dtype_bytes``;
- ``small``: norms, biases, q/k norms, sinks -- ``dtype_bytes``;
- ``embedding``, ``head``: token embedding (plus learned positions) and an
  untied LM head -- ``dtype_bytes``.

Per layer (``d`` hidden, ``h`` heads, ``kvh`` KV heads, ``hd`` head size,
``f`` FFN width; gated FFNs have 3 matrices, others 2):

    attention = d*(h*hd + 2*kvh*hd) + h*hd*d       (MLA: MLASpec.attention_parameters)
    dense FFN = 3*d*f
    MoE       = E * 3*d*f_e  +  S * 3*d*f_s  +  d*E (router)

Active parameters are those one token runs: its ``top_k`` routed experts
instead of all ``E``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .dtypes import DTYPE_BITS


@dataclass(frozen=True, slots=True)
class ParameterCount:
    """Parameters of a model by tensor class (see the module docstring)."""

    attention: int
    dense_ffn: int
    routed_experts: int
    active_routed_experts: int
    routed_expert_biases: int
    shared_experts: int
    router: int
    small: int
    embedding: int
    head: int
    dense_block: int
    weight_bytes: int

    @property
    def total(self) -> int:
        return (self.attention + self.dense_ffn + self.routed_experts + self.shared_experts
                + self.router + self.routed_expert_biases + self.small + self.embedding
                + self.head)

    def active(self, include_embedding: bool = True) -> int:
        """Parameters one token runs through (see ``ModelSpec.num_active_parameters``)."""
        return (self.total - self.routed_experts - self.routed_expert_biases
                + self.active_routed_experts - (0 if include_embedding else self.embedding))


def _ffn(d: int, f: int, gated: bool, bias: bool) -> tuple[int, int]:
    """(weights, biases) of one FFN of width ``f``."""
    up = 2 * f if gated else f
    return d * up + f * d, (up + d) if bias else 0


def count_parameters(spec) -> ParameterCount:
    """Count ``spec``'s parameters per layer and class (a :class:`ModelSpec`)."""
    d, h, hd = spec.hidden_size, spec.num_heads, spec.head_dim
    kv = spec.kv_dim
    gated = spec.activation == "swiglu"
    norm = 2 * d if spec.norm == "layernorm" else d
    moe, mla = spec.moe, spec.mla
    if mla is not None:  # its two latent norms are small tensors, kept at dtype_bytes
        attn_small = mla.q_lora_rank + mla.kv_lora_rank
        attention = mla.attention_parameters(d, h) - attn_small
    else:
        attention = d * (h * hd + 2 * kv) + h * hd * d
        attn_small = (h * hd + 2 * kv + d) if spec.bias else 0
    attn_small += (2 * hd if spec.qk_norm else 0) + (h if spec.attention_sinks else 0)
    dense_w, dense_b = _ffn(d, spec.ffn_hidden_size, gated, spec.bias)
    if moe is not None:
        expert_w, expert_b = _ffn(d, moe.expert_ffn_size, gated, moe.expert_bias)
        shared_w, shared_b = _ffn(d, moe.shared_expert_ffn_size, gated, False)
    totals = dict(attention=0, dense_ffn=0, routed_experts=0, active_routed_experts=0,
                  routed_expert_biases=0, shared_experts=0, router=0, small=0)
    for _, is_moe in spec.layer_kinds():
        totals["attention"] += attention
        totals["small"] += attn_small + 2 * norm
        if not is_moe:
            totals["dense_ffn"] += dense_w
            totals["small"] += dense_b
            continue
        E, k = moe.num_experts, moe.num_experts_per_token
        totals["routed_experts"] += E * expert_w
        totals["routed_expert_biases"] += E * expert_b
        totals["active_routed_experts"] += k * (expert_w + expert_b)
        totals["shared_experts"] += moe.num_shared_experts * shared_w
        totals["router"] += d * E + (E if moe.router_bias else 0)
    embedding = spec.vocab_size * d + (spec.max_seq_len * d if spec.position == "learned" else 0)
    head = 0 if spec.tied_embeddings else spec.vocab_size * d
    totals["small"] += norm  # final norm
    weight, expert, _ = spec.dtypes
    act_bits = spec.dtype_bytes * 8.0
    bits = ((totals["attention"] + totals["dense_ffn"]) * DTYPE_BITS[weight]
            + (totals["routed_experts"] + totals["shared_experts"]) * DTYPE_BITS[expert]
            + (totals["router"] + totals["small"] + totals["routed_expert_biases"] + embedding
               + head) * act_bits)
    return ParameterCount(**totals, embedding=embedding, head=head,
                          dense_block=attention + attn_small + 2 * norm + dense_w + dense_b,
                          weight_bytes=int(round(bits / 8.0)))
