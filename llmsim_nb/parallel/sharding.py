"""Tensor-parallel sharding of a block template (Megatron-style).

Within a tensor-parallel group of ``tp`` devices each device holds:

- column-parallel GEMMs (QKV projection, FFN up, LM head): ``1/tp`` of the
  output columns; the QKV projection holds its own heads' q, k and v;
- row-parallel GEMMs (attention output projection, FFN down): ``1/tp`` of the
  input rows; their partial sums are all-reduced afterwards;
- attention: ``num_heads / tp`` query heads and the key/value heads they
  read: ``num_kv_heads / tp`` when that divides, otherwise (grouped-query
  attention with ``tp > num_kv_heads``) the one KV head its query group shares,
  replicated across the devices of that group, as Megatron and vLLM do;
- norms, residual adds and the embedding gather: full width (replicated).

Roles are inferred from the block's order, so a template imported from ONNX
shards the same way: a GEMM that directly follows the attention context or
the FFN activation is row-parallel; every other GEMM is column-parallel. An
op's explicit ``tp_role`` overrides that: routers and MLA's latent
projections are replicated, MLA's per-head absorptions split their heads,
and shared experts are row-parallel without an all-reduce of their own (their
partial sums join the routed experts' one, as vLLM's fused MoE does). Routed
experts split each expert's width (vLLM without expert parallelism). A
dimension that ``tp`` does not divide is padded up (``ceil``), which is how
vocabularies such as GPT's 50,257 are split in practice.

:func:`allreduce_points` names the ops after which the group all-reduces.
:func:`shard_data_parallel` is the other split of a group: attention data
parallelism, where nothing but the routed experts is divided.
"""

from __future__ import annotations

import dataclasses

from ..models.ops import OpKind
from ..models.template import BlockTemplate, OpTemplate


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def attention_geometry(template: BlockTemplate) -> tuple[int, int, int]:
    """``(num_heads, num_kv_heads, head_dim)`` of the block's attention."""
    for t in template.block:
        if t.kind.is_attention and t.num_heads:
            return t.num_heads, t.num_kv_heads, t.head_dim
    raise ValueError(f"template {template.name!r} has no attention op with head counts")


def kv_heads_per_device(num_heads: int, num_kv_heads: int, tp: int) -> int:
    """KV heads one device of a ``tp`` group holds (see module docstring)."""
    if num_kv_heads % tp == 0:
        return num_kv_heads // tp
    if tp % num_kv_heads == 0:
        return 1
    raise ValueError(f"tensor parallelism {tp} neither divides nor is a multiple of "
                     f"num_kv_heads={num_kv_heads}")


def row_parallel_ops(template: BlockTemplate) -> frozenset[str]:
    """Names of the block's row-parallel GEMMs (those followed by an all-reduce):
    an op's explicit ``tp_role`` "row", else a GEMM directly after the
    attention context or an activation that has no explicit role."""
    rows = set()
    prev = None
    for t in template.block:
        if t.kind is OpKind.GEMM and (t.tp_role == "row" or not t.tp_role and prev is not None
                                      and prev.kind in (OpKind.ATTN_CONTEXT,
                                                        OpKind.ACTIVATION)):
            rows.add(t.name)
        prev = t
    return frozenset(rows)


def allreduce_points(template: BlockTemplate) -> tuple[str, ...]:
    """Ops of the block, in order, after which a TP group all-reduces."""
    rows = row_parallel_ops(template)
    return tuple(t.name for t in template.block if t.name in rows)


def check_tensor_parallel(template: BlockTemplate, tp: int) -> None:
    """Raise a clear ValueError if ``tp`` cannot shard this model's heads."""
    if tp < 1:
        raise ValueError(f"tensor parallelism must be >= 1, got {tp}")
    heads, kv_heads, _ = attention_geometry(template)
    if heads % tp:
        raise ValueError(f"tensor parallelism {tp} must divide the {heads} attention heads "
                         f"of {template.name!r}")
    kv_heads_per_device(heads, kv_heads, tp)


def shard_template(template: BlockTemplate, tp: int, by_heads: bool = True,
                   expert_parallel: bool = False) -> BlockTemplate:
    """The template one device of a ``tp``-way tensor-parallel group runs.

    ``by_heads=False`` is for selective batching (attention placed by request):
    attention ops keep all heads (each rank times them for its own requests)
    and the QKV columns are split evenly, so ``tp`` need not divide the heads.
    ``expert_parallel=True``: routed experts keep their whole width and each
    rank holds ``num_experts / tp`` of them (``num_local_experts``); which
    tokens a rank computes is the execution stack's business.
    """
    if tp == 1:
        return template
    heads, kv_heads, hd = attention_geometry(template)
    if by_heads:
        check_tensor_parallel(template, tp)
        h_dev = heads // tp
        kv_dev = kv_heads_per_device(heads, kv_heads, tp)
    else:
        h_dev, kv_dev = heads, kv_heads
    qkv_full, qkv_dev = (heads + 2 * kv_heads) * hd, (h_dev + 2 * kv_dev) * hd
    rope_full, rope_dev = (heads + kv_heads) * hd, (h_dev + kv_dev) * hd
    rows = row_parallel_ops(template)

    def shard(t: OpTemplate) -> OpTemplate:
        if expert_parallel and t.num_experts:
            return dataclasses.replace(t, num_local_experts=t.num_experts // tp)
        if t.kind.is_attention:
            return dataclasses.replace(t, num_heads=h_dev, num_kv_heads=kv_dev)
        if t.kind is OpKind.GEMM:
            if t.tp_role == "replicate":
                return t
            if t.tp_role == "heads":
                return dataclasses.replace(t, num_batches=_ceil_div(t.num_batches, tp))
            if t.name in rows or t.tp_role == "partial":
                return dataclasses.replace(t, weight_k=_ceil_div(t.weight_k, tp))
            n = qkv_dev if by_heads and t.weight_n == qkv_full else _ceil_div(t.weight_n, tp)
            bias = 0 if not t.param_elements else n
            return dataclasses.replace(t, weight_n=n, param_elements=bias)
        if t.kind is OpKind.ELEMENTWISE and t.width == rope_full and t.num_inputs == 1:
            return dataclasses.replace(t, width=rope_dev if by_heads else
                                       _ceil_div(rope_full, tp))
        if t.kind is OpKind.ACTIVATION or (t.tp_role == "heads" and not t.kind.is_attention):
            # Activations; per-head vector ops (q/k norms, MLA's query rope).
            return dataclasses.replace(t, width=_ceil_div(t.width, tp))
        return t  # norms, residual adds: replicated

    head = tuple(dataclasses.replace(t, weight_n=_ceil_div(t.weight_n, tp))
                 if t.kind is OpKind.GEMM else t for t in template.head)
    return dataclasses.replace(template, block=tuple(shard(t) for t in template.block),
                               head=head)


def shard_data_parallel(template: BlockTemplate, num_ranks: int) -> BlockTemplate:
    """The template one rank of an attention data-parallel group runs.

    Every op but the routed experts keeps its whole weights (the rank runs
    the embedding, attention, dense FFNs, router, shared experts and LM head
    on its own requests, as vLLM's and SGLang's data-parallel attention do);
    each rank holds ``num_experts / num_ranks`` routed experts (expert
    parallelism over the whole group), whose tokens arrive by all-to-all.
    """
    if num_ranks == 1:
        return template
    block = []
    for t in template.block:
        if t.num_experts:
            if t.num_experts % num_ranks:
                raise ValueError(f"attention data parallelism: the {t.num_experts} experts of "
                                 f"{template.name!r} do not split evenly over {num_ranks} ranks")
            t = dataclasses.replace(t, num_local_experts=t.num_experts // num_ranks)
        block.append(t)
    return dataclasses.replace(template, block=tuple(block))
