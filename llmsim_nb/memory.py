"""Device memory: weights per device and how many KV blocks fit.

Each device of pipeline stage ``s`` holds its tensor-parallel shard of the
stage's layers, plus the vocabulary-parallel embedding (first stage) and LM
head (last stage; a tied head shares the embedding only when both live on the
same device). Every token's K and V are spread the same way: a device keeps
``2 * layers_s * kv_heads_per_device * head_dim * dtype`` bytes per token.

The KV cache is one logical pool of blocks (one block table for the whole
system, as in vLLM): block ``b`` occupies a slice on every device. Its size is
set by the tightest device::

    num_blocks = min over stages of
                 floor((memory - weights_s - reserve) / (block_size * kv_bytes_s))
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import GIB
from .models.ops import OpKind
from .models.sharding import attention_geometry
from .models.spec import ModelSpec
from .models.template import BlockTemplate, OpTemplate
from .parallel import ParallelLayout


def _template_weights(t: OpTemplate) -> int:
    """Parameters an op template reads (weights and biases / norm scales)."""
    if t.kind is OpKind.GEMM:
        return t.weight_k * t.weight_n + t.param_elements
    return t.param_elements


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
        Kept for activations.
    """

    weight_bytes: tuple[int, ...]
    kv_bytes_per_token: tuple[float, ...]
    memory_bytes: int
    reserve_bytes: int

    @classmethod
    def build(cls, model: ModelSpec, sharded: BlockTemplate, layout: ParallelLayout,
              memory_bytes: int, reserve_fraction: float) -> "MemoryPlan":
        dt = model.dtype_bytes
        tp = layout.tp
        per_layer = sum(_template_weights(t) for t in sharded.block)
        vocab_rows = -(-model.vocab_size // tp)
        embedding = vocab_rows * model.hidden_size
        if model.position == "learned":
            embedding += model.max_seq_len * model.hidden_size
        head_norm = sum(_template_weights(t) for t in sharded.head if t.kind is not OpKind.GEMM)
        head_matrix = sum(_template_weights(t) for t in sharded.head if t.kind is OpKind.GEMM)
        _, kv_heads, hd = attention_geometry(sharded)
        # Heads placement: the sharded template holds each device's KV heads.
        # Requests placement: a request's KV lives on its rank, so on average a
        # device holds 1/tp of every token's KV (the pool is the group's sum).
        kv_dev = kv_heads / tp if layout.attention == "requests" and tp > 1 else kv_heads
        weights, kv = [], []
        for s, layers in enumerate(layout.stage_layers):
            w = per_layer * layers
            if s == 0:
                w += embedding
            if s == layout.pp - 1:
                shares_embedding = model.tied_embeddings and layout.pp == 1
                w += head_norm + (0 if shares_embedding else head_matrix)
            weights.append(w * dt)
            kv.append(2 * layers * kv_dev * hd * dt)  # float under requests placement
        return cls(tuple(weights), tuple(kv), int(memory_bytes),
                   int(reserve_fraction * memory_bytes))

    def num_kv_blocks(self, block_size: int, model_name: str = "") -> int:
        """Blocks of ``block_size`` tokens the tightest device can hold."""
        counts = []
        for s, (w, kv) in enumerate(zip(self.weight_bytes, self.kv_bytes_per_token)):
            free = self.memory_bytes - w - self.reserve_bytes
            block = block_size * kv
            if free < block:
                raise ValueError(
                    f"model {model_name!r} does not fit: a device of pipeline stage {s} holds "
                    f"{w / GIB:.2f} GiB of weights and reserves {self.reserve_bytes / GIB:.2f} "
                    f"GiB for activations, leaving {max(free, 0) / GIB:.2f} GiB of its "
                    f"{self.memory_bytes / GIB:.2f} GiB for the KV cache, less than one block "
                    f"({block / 2**20:.2f} MiB); raise npu_mem, add NPUs or pick a smaller "
                    f"model")
            counts.append(int(free // block))
        return min(counts)

    @property
    def total_weight_bytes(self) -> int:
        """Weights of one device per stage summed over stages (one TP rank's path)."""
        return sum(self.weight_bytes)

