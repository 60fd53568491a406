"""MoESpec: the mixture-of-experts part of a model's hyperparameters.

A mixture-of-experts (MoE) layer replaces the dense FFN by a router (a gate
GEMM ``hidden_size x num_experts`` and a top-k over its scores) and
``num_experts`` gated FFNs of width ``expert_ffn_size``, of which each token
runs ``num_experts_per_token``; ``num_shared_experts`` further FFNs (DeepSeek)
run on every token. Which layers are MoE is ``moe_layers`` (HuggingFace's
``first_k_dense_replace``, ``decoder_sparse_step`` and ``mlp_only_layers``
are all read into this one list); the other layers keep the model's dense
FFN of ``ModelSpec.ffn_hidden_size``.

The spec is data: parameter counts are in :mod:`.parameter_count`, the
operators in :mod:`.template`, and which expert each token picks is the
routing model's business (:mod:`.expert_routing`).
"""

from __future__ import annotations

from dataclasses import dataclass

ROUTER_SCORINGS = ("softmax", "sigmoid")


def _count(name: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"MoESpec.{name}={value!r} must be an integer >= {minimum}")


@dataclass(frozen=True, slots=True)
class MoESpec:
    """Mixture-of-experts hyperparameters.

    Parameters
    ----------
    num_experts : int
        Routed experts per MoE layer (``num_local_experts``, ``num_experts``,
        ``n_routed_experts``).
    num_experts_per_token : int
        Experts each token is routed to (top-k), ``1 .. num_experts``.
    expert_ffn_size : int
        Inner width of one routed expert (``moe_intermediate_size``; Mixtral's
        and gpt-oss's ``intermediate_size``).
    num_shared_experts : int, default 0
        Experts every token runs besides its routed ones (DeepSeek).
    shared_expert_ffn_size : int, default 0
        Inner width of one shared expert (0 when there are none).
    moe_layers : tuple of int, default ()
        Indices (from 0) of the layers that are MoE; empty means every layer.
        Checked against the model's layer count by ``ModelSpec``.
    router_scoring : {"softmax", "sigmoid"}
        How router logits become weights (DeepSeek-V3: sigmoid). It changes
        no cost beyond the vector op's FLOPs; recorded for the reader.
    router_bias : bool, default False
        The gate GEMM has a bias (gpt-oss), or a per-expert score correction
        (DeepSeek-V3's ``e_score_correction_bias``): ``num_experts`` parameters.
    expert_bias : bool, default False
        Expert GEMMs carry biases (gpt-oss).
    """

    num_experts: int
    num_experts_per_token: int
    expert_ffn_size: int
    num_shared_experts: int = 0
    shared_expert_ffn_size: int = 0
    moe_layers: tuple[int, ...] = ()
    router_scoring: str = "softmax"
    router_bias: bool = False
    expert_bias: bool = False

    def __post_init__(self) -> None:
        _count("num_experts", self.num_experts, 1)
        _count("num_experts_per_token", self.num_experts_per_token, 1)
        if self.num_experts_per_token > self.num_experts:
            raise ValueError(f"MoESpec.num_experts_per_token={self.num_experts_per_token} "
                             f"exceeds num_experts={self.num_experts} (a token picks "
                             f"distinct experts)")
        _count("expert_ffn_size", self.expert_ffn_size, 1)
        _count("num_shared_experts", self.num_shared_experts, 0)
        _count("shared_expert_ffn_size", self.shared_expert_ffn_size, 0)
        if (self.num_shared_experts > 0) != (self.shared_expert_ffn_size > 0):
            raise ValueError(f"MoESpec.shared_expert_ffn_size={self.shared_expert_ffn_size} "
                             f"with num_shared_experts={self.num_shared_experts}: both are "
                             f"0 (no shared experts) or both > 0")
        layers = tuple(self.moe_layers)
        object.__setattr__(self, "moe_layers", layers)
        for i in layers:
            _count("moe_layers entry", i, 0)
        if list(layers) != sorted(set(layers)):
            raise ValueError(f"MoESpec.moe_layers={layers} must be strictly increasing "
                             f"layer indices")
        if self.router_scoring not in ROUTER_SCORINGS:
            raise ValueError(f"MoESpec.router_scoring={self.router_scoring!r} is not one of "
                             f"{ROUTER_SCORINGS}")
        for key in ("router_bias", "expert_bias"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"MoESpec.{key}={getattr(self, key)!r} must be True or False")

    def is_moe_layer(self, layer: int) -> bool:
        """Whether layer ``layer`` (from 0) is a mixture-of-experts layer."""
        return not self.moe_layers or layer in self.moe_layers
