"""Batch partitioning into sub-batches (Algorithm 1, ``Split_batch(Batch, Criteria)``).

NeuPIMs' sub-batch interleaving needs independent sub-batches of similar
weight, so that while the NPU runs one sub-batch's GEMMs the PIM runs the
other's attention and neither waits long. A criterion gives each request a
cost; requests are dealt longest-first to the lightest sub-batch (greedy LPT),
which guarantees that the heaviest and lightest sub-batches differ by at most
one request's cost. Each sub-batch keeps the batch order of its requests.

Criteria
--------
``compute``
    FLOPs of the request in one decoder layer: ``q * W + q * (c + q) * A``
    with ``W = 2 * sum(K * N)`` over the weight GEMMs (per token row) and
    ``A = 4 * heads * head_dim`` (score and context per query row and cached
    token), ``q`` query tokens, ``c`` cached tokens.
``memory``
    Bytes of KV cache the request's attention reads in one layer:
    ``(c + q) * 2 * kv_heads * head_dim * dtype``. This balances the PIM's
    GEMV work (NeuPIMs' choice).
"""

from __future__ import annotations

import heapq

import numpy as np

from ..models.ops import BatchShape, OpKind
from ..models.template import BlockTemplate
from .layout import subset

CRITERIA = ("compute", "memory")


def request_costs(batch: BatchShape, template: BlockTemplate, criterion: str) -> np.ndarray:
    """Per-request cost of ``batch`` under ``criterion`` (see the module docstring)."""
    if criterion not in CRITERIA:
        raise ValueError(f"sub-batch criterion={criterion!r} is not one of {list(CRITERIA)}")
    q = batch.num_query_tokens.astype(np.float64)
    kv = batch.num_context_tokens.astype(np.float64) + q
    attn = next((t for t in template.block if t.kind is OpKind.ATTN_SCORE), None)
    heads = attn.num_heads if attn else 0
    kv_heads = attn.num_kv_heads if attn else 0
    head_dim = attn.head_dim if attn else 0
    if criterion == "memory":
        return kv * 2.0 * kv_heads * head_dim * template.dtype_bytes
    weights = 2.0 * sum(t.weight_k * t.weight_n for t in template.block
                        if t.kind is OpKind.GEMM)
    return q * weights + q * kv * 4.0 * heads * head_dim


def partition_indices(cost: np.ndarray, count: int) -> list[np.ndarray]:
    """Positions of each of ``min(count, len(cost))`` non-empty, LPT-balanced parts.

    Ties go to the earlier request and the lower part, so the result is
    deterministic; each part's positions are ascending.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"sub-batch count must be an integer >= 1, got {count!r}")
    cost = np.asarray(cost, dtype=np.float64)
    n = len(cost)
    count = min(count, n)
    if count <= 1:
        return [np.arange(n)]
    parts: list[list[int]] = [[] for _ in range(count)]
    # (load, size, part): the lightest part takes the next request; among
    # equal loads the one with fewer requests, so zero-cost requests spread.
    heap = [(0.0, 0, p) for p in range(count)]
    for i in np.argsort(-cost, kind="stable").tolist():
        load, size, p = heapq.heappop(heap)
        parts[p].append(i)
        heapq.heappush(heap, (load + float(cost[i]), size + 1, p))
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


def partition_within_groups(cost: np.ndarray, groups: np.ndarray, count: int
                            ) -> list[np.ndarray]:
    """Positions of each of at most ``count`` non-empty parts, balanced within every group.

    With attention placed by request (``groups`` = each request's rank), every
    rank's PIM must get half its requests in each sub-batch, or one sub-batch
    would leave half the ranks' PIMs idle (a global split that alternates
    requests lines up with ``id % tp`` placement). So each group is LPT-split
    (:func:`partition_indices`) and its heaviest part joins the sub-batch that
    is lightest so far (ties: fewer requests, then the lower part), which also
    keeps the sub-batches' totals close. Deterministic; positions ascending.
    """
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"sub-batch count must be an integer >= 1, got {count!r}")
    cost = np.asarray(cost, dtype=np.float64)
    groups = np.asarray(groups)
    count = min(count, len(cost))
    if count <= 1:
        return [np.arange(len(cost))]
    parts: list[list[int]] = [[] for _ in range(count)]
    load = [0.0] * count
    for g in np.unique(groups).tolist():
        members = np.flatnonzero(groups == g)
        local = partition_indices(cost[members], count)
        local.sort(key=lambda p: -float(cost[members[p]].sum()))  # stable: ties keep order
        order = sorted(range(count), key=lambda k: (load[k], len(parts[k]), k))
        for k, p in zip(order, local):
            parts[k].extend(members[p].tolist())
            load[k] += float(cost[members[p]].sum())
    return [np.array(sorted(p), dtype=np.int64) for p in parts if p]


def split_batch(batch: BatchShape, template: BlockTemplate, count: int,
                criterion: str = "memory", groups: np.ndarray | None = None
                ) -> list[BatchShape]:
    """``batch`` cut into ``count`` sub-batches balanced on ``criterion`` (within each
    of ``groups``, each request's attention rank, when given:
    :func:`partition_within_groups`)."""
    cost = request_costs(batch, template, criterion)
    parts = (partition_indices(cost, count) if groups is None
             else partition_within_groups(cost, groups, count))
    return [subset(batch, idx) for idx in parts]


__all__ = ["CRITERIA", "partition_indices", "partition_within_groups", "request_costs",
           "split_batch"]
