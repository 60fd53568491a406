"""Device memory: weights per device and how many KV blocks fit.

Each device of pipeline stage ``s`` holds its tensor-parallel shard of the
stage's layers, plus the vocabulary-parallel embedding (first stage) and LM
head (last stage; a tied head shares the embedding only when both live on the
same device). Every token's K and V are spread the same way: a device keeps
``2 * layers_s * kv_heads_per_device * head_dim * dtype`` bytes per token
(DeepSeek's latent attention: ``layers_s * (kv_lora_rank + qk_rope_head_dim)``
elements, the KV type's bytes each). Models whose layers differ count each
layer's own ops: all routed experts' matrices, each tensor at its stored size
(an MXFP4 expert at 4.25 bits). Sliding-window layers are given KV for the
whole context (a pool that keeps every layer's blocks, see
``ModelSpec.kv_bytes_per_token``).

The KV cache is one logical pool of blocks (one block table for the whole
system, as in vLLM): block ``b`` occupies a slice on every device. Its size is
set by the tightest device::

    num_blocks = min over stages of
                 floor((memory - weights_s - reserve) / (block_size * kv_bytes_s))

The reserve, in order of precedence (first given wins):

1. ``num_kv_blocks`` (vLLM's ``num_gpu_blocks_override``): exactly that many
   blocks; a ValueError if they do not fit beside the weights of some device.
2. ``gpu_memory_utilization = u`` (vLLM's): weights, activations and KV may use
   ``u * memory``; the activations kept out are the peak of vLLM's profiling
   forward pass, estimated by :meth:`MemoryPlan.activation_peak_bytes`, so
   ``reserve = (1 - u) * memory + activation_peak``.
3. otherwise ``reserve = activation_reserve * memory`` (5% by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import GIB
from ..models.ops import OpKind
from ..models.spec import ModelSpec
from ..models.template import BlockTemplate, OpTemplate
from ..parallel.layout import ParallelLayout
from ..parallel.sharding import attention_geometry


def _template_weights(t: OpTemplate) -> int:
    """Parameters an op template reads (weights and biases / norm scales)."""
    if t.kind is OpKind.GEMM:
        return t.weight_k * t.weight_n + t.param_elements
    return t.param_elements


def _template_weight_bytes(t: OpTemplate, dt: int) -> float:
    """Bytes of the parameters an op template holds: every routed expert's and
    every batched product's matrix, each stored at its own size."""
    if t.kind is not OpKind.GEMM:
        return t.param_elements * dt
    matrices = max(t.num_local_experts or t.num_experts, 1) * t.num_batches
    if t.weight_bytes:
        return matrices * (t.weight_k * t.weight_n * t.weight_bytes + t.param_elements * dt)
    return matrices * (t.weight_k * t.weight_n + t.param_elements) * dt


@dataclass(frozen=True, slots=True)
class MemoryPlan:
    """Weight and KV bytes per device of each pipeline stage.

    Attributes
    ----------
    weight_bytes : tuple of int
        Per stage, the weights one device of that stage holds.
    kv_bytes_per_token : tuple of int
        Per stage, the KV bytes one device holds per cached token.
    memory_bytes : int
        Device memory.
    reserve_bytes : int
        Kept for activations (and, with ``gpu_memory_utilization``, left unused).
    explicit_blocks : int or None
        An explicit block count that overrides the capacity computation.
    """

    weight_bytes: tuple[int, ...]
    kv_bytes_per_token: tuple[float, ...]
    memory_bytes: int
    reserve_bytes: int
    explicit_blocks: int | None = None

    @staticmethod
    def activation_peak_bytes(sharded: BlockTemplate, num_tokens: int, dtype_bytes: int,
                              num_logit_rows: int | None = None) -> int:
        """Peak activation bytes of one device in a forward over ``num_tokens`` tokens.

        What vLLM's profiling run measures beyond the weights: the widest
        operator's input and output live at once (``num_tokens`` rows of each,
        e.g. the FFN up projection's ``d`` in and ``2 f / tp`` out), plus the
        fp32 logits of ``num_logit_rows`` sampled rows (default: ``num_tokens``).
        """
        widest = 0
        for t in sharded.block + sharded.head:
            if t.kind is OpKind.GEMM:
                width = t.weight_k + t.weight_n
            elif t.kind.is_attention:
                width = 0  # fused attention keeps no score matrix in DRAM
            else:
                width = (t.num_inputs + 1) * t.width
            if t.name != "lm_head":
                widest = max(widest, width)
        vocab = sum(t.weight_n for t in sharded.head if t.kind is OpKind.GEMM)
        rows = num_tokens if num_logit_rows is None else num_logit_rows
        return int(num_tokens * widest * dtype_bytes + rows * vocab * 4)

    @classmethod
    def build(cls, model: ModelSpec, sharded: BlockTemplate, layout: ParallelLayout,
              memory_bytes: int, reserve_fraction: float, *,
              gpu_memory_utilization: float | None = None, activation_bytes: int = 0,
              num_kv_blocks: int | None = None) -> "MemoryPlan":
        """The plan for ``model`` split by ``layout``; the reserve follows the
        precedence of the module docstring (``num_kv_blocks`` >
        ``gpu_memory_utilization`` with ``activation_bytes`` > ``reserve_fraction``)."""
        dt = model.dtype_bytes
        tp = layout.tp
        # Attention data parallelism: every rank holds the whole embedding and
        # head (only the routed experts are split, in the sharded template).
        data = layout.attention == "data" and tp > 1
        vocab_rows = model.vocab_size if data else -(-model.vocab_size // tp)
        embedding = vocab_rows * model.hidden_size
        if model.position == "learned":
            embedding += model.max_seq_len * model.hidden_size
        head_norm = sum(_template_weights(t) for t in sharded.head if t.kind is not OpKind.GEMM)
        head_matrix = sum(_template_weights(t) for t in sharded.head if t.kind is OpKind.GEMM)
        _, kv_heads, hd = attention_geometry(sharded)
        # Heads placement: the sharded template holds each device's KV heads.
        # Requests placement: a request's KV lives on its rank, so on average a
        # device holds 1/tp of every token's KV (the pool is the group's sum).
        # Data placement likewise: a request's KV (all heads) lives on its rank.
        by_request = layout.attention in ("requests", "data") and tp > 1
        kv_dev = kv_heads / tp if by_request else kv_heads
        # Layers of several kinds, experts, batched products or weights stored
        # in another type: weights counted per op and layer (below). Otherwise
        # the original's per-layer sum, bit for bit.
        # KV bytes per element: the int dtype_bytes unless the KV type differs.
        kv_element = model.kv_element_bytes
        kvb = dt if kv_element == dt else kv_element
        weights, kv = [], []
        for s, layers in enumerate(layout.stage_layers):
            w = 0
            if s == 0:
                w += embedding
            if s == layout.pp - 1:
                shares_embedding = model.tied_embeddings and layout.pp == 1
                w += head_norm + (0 if shares_embedding else head_matrix)
            # Each op's weights times the stage's layers that run it (ints stay
            # ints, so a model of one kind of layer in its own dtype counts exactly).
            counts = np.rint(sharded.op_layer_counts(layout.first_layer(s), layers))
            weights.append(w * dt + sum(_template_weight_bytes(t, dt) * int(c) for t, c in
                                        zip(sharded.block, counts.tolist())))
            if model.mla is not None:  # the latent and rotary key, on every rank
                # (under data placement only on the request's rank: 1/tp on average)
                kv.append(layers * model.mla.kv_elements_per_token * kvb / (tp if data else 1))
            else:
                kv.append(2 * layers * kv_dev * hd * kvb)  # float under requests placement
        if gpu_memory_utilization is not None:
            reserve = int((1.0 - gpu_memory_utilization) * memory_bytes) + int(activation_bytes)
        else:
            reserve = int(reserve_fraction * memory_bytes)
        return cls(tuple(weights), tuple(kv), int(memory_bytes), reserve, num_kv_blocks)

    def num_kv_blocks(self, block_size: int, model_name: str = "") -> int:
        """Blocks of ``block_size`` tokens the tightest device can hold (or the
        explicit count, after checking that it fits beside every device's weights)."""
        if self.explicit_blocks is not None:
            for s, (w, kv) in enumerate(zip(self.weight_bytes, self.kv_bytes_per_token)):
                need = w + self.explicit_blocks * block_size * kv
                if need > self.memory_bytes:
                    raise ValueError(
                        f"num_kv_blocks={self.explicit_blocks} does not fit model "
                        f"{model_name!r}: a device of pipeline stage {s} would hold "
                        f"{w / GIB:.2f} GiB of weights and {(need - w) / GIB:.2f} GiB of KV "
                        f"blocks, more than its {self.memory_bytes / GIB:.2f} GiB; at most "
                        f"{int((self.memory_bytes - w) // (block_size * kv))} blocks fit")
            return self.explicit_blocks
        counts = []
        for s, (w, kv) in enumerate(zip(self.weight_bytes, self.kv_bytes_per_token)):
            free = self.memory_bytes - w - self.reserve_bytes
            block = block_size * kv
            if free < block:
                # memory m fits when m - w - f*m >= one block, f the reserve fraction.
                fraction = self.reserve_bytes / self.memory_bytes if self.memory_bytes else 0.0
                needed = math.ceil((w + block) / (1.0 - fraction) / GIB * 100) / 100
                raise ValueError(
                    f"model {model_name!r} does not fit: a device of pipeline stage {s} holds "
                    f"{w / GIB:.2f} GiB of weights and reserves {self.reserve_bytes / GIB:.2f} "
                    f"GiB for activations, leaving {max(free, 0) / GIB:.2f} GiB of its "
                    f"{self.memory_bytes / GIB:.2f} GiB for the KV cache, less than one block "
                    f"({block / 2**20:.2f} MiB); it needs npu_mem >= {needed:.2f} GiB "
                    f"per device: raise npu_mem, add NPUs or pick a smaller model")
            counts.append(int(free // block))
        return min(counts)

