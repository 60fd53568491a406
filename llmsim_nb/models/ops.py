"""Operators with shapes, FLOPs and bytes: what an engine times.

An :class:`Op` is *struct-of-arrays*: it holds one or more *instances* of the
same operator. A weight GEMM or a norm over the whole batch is one instance; an
attention operator has one instance per request in the batch (selective
batching: attention cannot be batched across requests with different context
lengths, so each request's attention is its own matrix product). Engines time
all instances of an op in one vectorised call and the simulator sums them.

Shapes follow the GEMM convention ``C[m, n] = A[m, k] @ B[k, n]``, repeated
``batch`` times (attention heads). Vector ops use ``m`` rows of ``n`` elements
and ``k == 1``.

Invariants:

- every per-instance array has the same length ``num_instances >= 1``
  (checked in ``Op.__post_init__``);
- counts are non-negative and ``flops``/bytes are consistent with the shape the
  builder derived them from: ``template.py`` is the only place that builds ops
  (``BatchShape`` rejects negative token counts before they get there).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class OpKind(str, enum.Enum):
    """What kind of hardware work an operator is."""

    GEMM = "gemm"                  # activations x weights (QKV, out-proj, FFN, LM head)
    ATTN_SCORE = "attn_score"      # Q K^T per request and head
    ATTN_CONTEXT = "attn_context"  # softmax(S) V per request and head
    SOFTMAX = "softmax"            # row softmax of the score matrix
    NORM = "norm"                  # layernorm / rmsnorm
    ACTIVATION = "activation"      # GELU / ReLU / SiLU*gate
    ELEMENTWISE = "elementwise"    # residual add, rotary embedding
    EMBEDDING = "embedding"        # token/position gather

    @property
    def is_matmul(self) -> bool:
        return self in (OpKind.GEMM, OpKind.ATTN_SCORE, OpKind.ATTN_CONTEXT)

    @property
    def is_attention(self) -> bool:
        """Ops whose cost depends on each request's context (swapped per iteration)."""
        return self in (OpKind.ATTN_SCORE, OpKind.ATTN_CONTEXT, OpKind.SOFTMAX)


@dataclass(frozen=True, slots=True)
class BatchShape:
    """The token composition of one iteration, as the operator builder needs it.

    Attributes
    ----------
    request_ids : ndarray of int64
        Requests in the batch, in batch order.
    num_query_tokens : ndarray of int64
        Tokens each request computes this iteration (a whole prompt, a prefill
        chunk, or 1 for a decode step). All ``>= 1``.
    num_context_tokens : ndarray of int64
        Tokens already in each request's KV cache before this iteration.
    num_logit_tokens : ndarray of int64
        Tokens for which the LM head runs (1 where the request emits a token
        this iteration, else 0).
    expert_tokens : ndarray of int64 or None
        For a mixture-of-experts model: tokens each routed expert of an MoE
        layer receives this iteration (the routing model's draw, set by the
        execution stack; it sums to ``num_tokens * top_k``). None otherwise.
    num_tokens : int
        Tokens computed by the non-attention ops (rows of every weight GEMM):
        ``num_query_tokens.sum()``, computed once on construction (the arrays
        are not to be changed in place: make a new BatchShape).
    """

    request_ids: np.ndarray
    num_query_tokens: np.ndarray
    num_context_tokens: np.ndarray
    num_logit_tokens: np.ndarray
    expert_tokens: np.ndarray | None = field(default=None, repr=False, compare=False)
    num_tokens: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.request_ids)
        query, context = self.num_query_tokens, self.num_context_tokens
        for name, arr in (("num_query_tokens", query), ("num_context_tokens", context),
                          ("num_logit_tokens", self.num_logit_tokens)):
            if len(arr) != n:
                raise ValueError(f"BatchShape.{name} has {len(arr)} entries, expected {n}")
        # The ufuncs' reduce with axis=None is what ndarray.min() / .sum() call,
        # without the methods' Python-level wrappers (a batch is built several
        # times per iteration).
        if n and _min_of(query, axis=None) < 1:
            raise ValueError("BatchShape.num_query_tokens must all be >= 1")
        if n and _min_of(context, axis=None) < 0:
            raise ValueError("BatchShape.num_context_tokens must all be >= 0")
        _set_num_tokens(self, int(_sum_of(query, axis=None)))

    @classmethod
    def trusted(cls, request_ids: np.ndarray, num_query_tokens: np.ndarray,
                num_context_tokens: np.ndarray, num_logit_tokens: np.ndarray,
                num_tokens: int) -> "BatchShape":
        """A BatchShape of arrays a scheduler built itself, without
        ``__post_init__``'s checks: equal lengths, query tokens ``>= 1`` and
        context tokens ``>= 0`` hold by construction there, and ``num_tokens``
        is the sum it already has. One is built every iteration; a caller with
        arrays from anywhere else uses the constructor, which checks."""
        shape = _new(cls)
        _set_request_ids(shape, request_ids)
        _set_num_query_tokens(shape, num_query_tokens)
        _set_num_context_tokens(shape, num_context_tokens)
        _set_num_logit_tokens(shape, num_logit_tokens)
        _set_expert_tokens(shape, None)
        _set_num_tokens(shape, num_tokens)
        return shape

    @classmethod
    def from_lists(cls, num_query_tokens, num_context_tokens, request_ids=None,
                   num_logit_tokens=None) -> "BatchShape":
        """Convenience constructor for notebooks and tests."""
        q = np.asarray(num_query_tokens, dtype=np.int64)
        c = np.asarray(num_context_tokens, dtype=np.int64)
        ids = np.arange(len(q), dtype=np.int64) if request_ids is None else np.asarray(
            request_ids, dtype=np.int64)
        logits = np.ones(len(q), dtype=np.int64) if num_logit_tokens is None else np.asarray(
            num_logit_tokens, dtype=np.int64)
        return cls(ids, q, c, logits)

    @property
    def num_requests(self) -> int:
        return len(self.request_ids)


#: Setters of BatchShape's slots, one per field (a frozen dataclass refuses
#: plain assignment): for __post_init__'s num_tokens and :meth:`BatchShape.trusted`.
(_set_request_ids, _set_num_query_tokens, _set_num_context_tokens, _set_num_logit_tokens,
 _set_expert_tokens, _set_num_tokens) = (getattr(BatchShape, name).__set__ for name in (
    "request_ids", "num_query_tokens", "num_context_tokens", "num_logit_tokens",
    "expert_tokens", "num_tokens"))
_new = object.__new__
_min_of, _sum_of = np.minimum.reduce, np.add.reduce


@dataclass(frozen=True, slots=True)
class Op:
    """One operator of a block, with per-instance shapes and costs.

    Attributes
    ----------
    name : str
        Label used as the ``op`` coordinate in results (``"qkv_proj"``...).
    kind : OpKind
    m, n, k : ndarray of int64
        GEMM shape of each instance (vector ops: ``m`` rows x ``n`` elements,
        ``k = 1``).
    batch : int
        Independent products per instance (attention heads); 1 otherwise.
    flops : ndarray of float64
        Floating-point operations per instance (a multiply-add counts 2).
    bytes_read, bytes_written : ndarray of float64
        Minimum DRAM traffic per instance: each operand read once, the result
        written once. Engines add the re-reads their tiling forces.
    weight_bytes : float
        Bytes of parameters the op reads (shared by all instances).
    request_ids : ndarray of int64 or None
        For per-request (attention) ops, the request of each instance.
    weight_elements : float
        Weight-matrix elements the op reads, per instance; 0 means
        ``batch * k * n`` at the op's own dtype (the usual GEMM). Set for a
        grouped expert GEMM (every active expert's matrix) and for weights
        stored in another data type.
    weight_element_bytes : float
        Bytes of one such element (0: the op's dtype; MXFP4: 0.53125).
    """

    name: str
    kind: OpKind
    m: np.ndarray
    n: np.ndarray
    k: np.ndarray
    batch: int
    flops: np.ndarray
    bytes_read: np.ndarray
    bytes_written: np.ndarray
    weight_bytes: float = 0.0
    request_ids: np.ndarray | None = None
    weight_elements: float = 0.0
    weight_element_bytes: float = 0.0

    def __post_init__(self) -> None:
        count = len(self.m)
        if count < 1:
            raise ValueError(f"Op {self.name!r} has no instances")
        for attr in ("n", "k", "flops", "bytes_read", "bytes_written"):
            if len(getattr(self, attr)) != count:
                raise ValueError(f"Op {self.name!r}: {attr} has {len(getattr(self, attr))} "
                                 f"instances, expected {count}")
        if self.request_ids is not None and len(self.request_ids) != count:
            raise ValueError(f"Op {self.name!r}: request_ids length differs from instances")

    @property
    def num_instances(self) -> int:
        return len(self.m)

    @property
    def total_flops(self) -> float:
        return float(self.flops.sum())

    @property
    def total_bytes(self) -> float:
        return float(self.bytes_read.sum() + self.bytes_written.sum())

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte of minimum DRAM traffic (the roofline x-axis)."""
        total = self.total_bytes
        return self.total_flops / total if total else float("inf")


@dataclass(frozen=True, slots=True)
class OpBlock:
    """The operators of one block for one batch, run ``repeat`` times.

    "Compile one block and replicate it": a transformer's ``num_layers``
    identical blocks are one ``OpBlock`` with ``repeat = num_layers``. The
    model's embedding and head are blocks with ``repeat = 1``.

    Attributes
    ----------
    name : str
        ``"embedding"``, ``"decoder_block"`` or ``"lm_head"``.
    ops : tuple of Op
        In execution order (each op depends on the previous one).
    repeat : int
        How many times the block runs in one iteration.
    batch : BatchShape
        The batch the shapes were derived from.
    """

    name: str
    ops: tuple[Op, ...]
    repeat: int
    batch: BatchShape

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.ops)
