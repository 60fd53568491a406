"""Block templates: one transformer block as shape-free operator recipes.

A :class:`BlockTemplate` is what the paper "compiles once": the operators of a
single decoder block with their weight shapes but without batch dimensions.
:meth:`BlockTemplate.instantiate` turns it into an :class:`~.ops.OpBlock` for a
given :class:`~.ops.BatchShape`. Templates come from a :class:`~.spec.ModelSpec`
(:func:`decoder_template`) or from an ONNX file (:mod:`llmsim_nb.models.onnx`),
so a user-exported block is simulated by exactly the same path.

Cost conventions (per token row unless noted; ``dt`` = bytes per element):

=============  ==========================  ==================================
kind           FLOPs                       minimum bytes (read + write)
=============  ==========================  ==================================
GEMM           2*T*K*N (+T*N with bias)    (T*K + K*N [+N]) + T*N
ATTN_SCORE     2*h*q*kv*hd  per request    (h*q*hd + kvh*kv*hd) + h*q*kv
SOFTMAX        5*h*q*kv     per request    h*q*kv + h*q*kv
ATTN_CONTEXT   2*h*q*kv*hd  per request    (h*q*kv + kvh*kv*hd) + h*q*hd
NORM/ACT/ELEM  flops_per_element * T * W   inputs*T*W (+params) + T*W
=============  ==========================  ==================================

``kv = context + q`` (the query attends to the cache and to itself; the dense
product is what a systolic array computes, so no causal discount is taken).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .ops import BatchShape, Op, OpBlock, OpKind

# FLOPs per output element of the vector operators (explainable op counts:
# layernorm = mean, subtract, square, mean, rsqrt-mul, scale, shift ~ 8;
# rmsnorm drops the mean and the shift ~ 5; tanh-GELU ~ 8; SiLU*gate ~ 5).
NORM_FLOPS = {"layernorm": 8, "rmsnorm": 5}
ACT_FLOPS = {"gelu": 8, "relu": 1, "swiglu": 5}
SOFTMAX_FLOPS = 5  # max, subtract, exp, sum, divide
#: How tensor parallelism may split an op (``OpTemplate.tp_role``; "" = inferred).
TP_ROLES = ("", "replicate", "column", "row", "partial", "heads")


@dataclass(frozen=True, slots=True)
class OpTemplate:
    """A shape-free recipe for one operator.

    Attributes
    ----------
    name : str
        Result label of the op.
    kind : OpKind
    weight_k, weight_n : int
        For ``GEMM``: the weight matrix is ``weight_k x weight_n``.
    width : int
        For vector ops: elements per token row written.
    num_inputs : int
        For vector ops: token-shaped tensors read (a residual add reads 2).
    flops_per_element : float
        For vector ops.
    param_elements : int
        Parameters read besides a GEMM weight (norm scales, biases).
    num_heads, num_kv_heads, head_dim : int
        For attention ops.
    window : int
        For attention ops of a sliding-window layer: each query row attends to
        at most ``window`` keys (0: the whole context).
    kv_bytes : float
        For attention ops: bytes of one cached K/V element (0: ``dtype_bytes``;
        an fp8 cache reads 1).
    num_experts : int
        For a GEMM of routed experts: the experts of one layer. Instantiated
        as one grouped GEMM over the routed rows of the experts that have
        tokens (``BatchShape.expert_tokens``; :meth:`expert_op`), each active
        expert's weights read once; an expert without tokens costs nothing.
    kv_read : float
        For attention ops: the share of the cached K/V the op itself reads
        from memory (1; MLA's context op 0: it multiplies the latent the
        score op of the same fused kernel already read).
    num_batches : int
        For a GEMM: independent products of the weight shape (MLA's per-head
        absorbed projections), each with its own weights.
    weight_bytes : float
        Bytes of one weight element of a GEMM (0: ``dtype_bytes``; an MXFP4
        expert reads 4.25 bits).
    tp_role : str
        How tensor parallelism splits the op (:mod:`llmsim_nb.parallel.sharding`):
        "" infers it from the op order; "replicate" (every rank runs it
        whole: a router, MLA's latent projections), "column", "row" (followed
        by an all-reduce), "partial" (row-parallel whose partial sums join
        the next all-reduce: shared experts), "heads" (the products of a
        batched GEMM are split: MLA's per-head absorptions).
    num_local_experts : int
        Under expert parallelism, the routed experts one rank holds (0: all
        ``num_experts``; their weights are what a device stores).
    """

    name: str
    kind: OpKind
    weight_k: int = 0
    weight_n: int = 0
    width: int = 0
    num_inputs: int = 1
    flops_per_element: float = 1.0
    param_elements: int = 0
    num_heads: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    window: int = 0
    kv_bytes: float = 0.0
    num_experts: int = 0
    num_batches: int = 1
    weight_bytes: float = 0.0
    tp_role: str = ""
    num_local_experts: int = 0
    kv_read: float = 1.0

    def __post_init__(self) -> None:
        if self.tp_role not in TP_ROLES:
            raise ValueError(f"OpTemplate {self.name!r}: tp_role={self.tp_role!r} is not one of "
                             f"{list(TP_ROLES)}")

    def instantiate(self, batch: BatchShape, dtype_bytes: int, num_rows: int | None = None) -> Op:
        """Build the :class:`Op` for ``batch`` (``num_rows`` overrides the token count)."""
        dt = float(dtype_bytes)
        if self.kind.is_attention:
            return self._attention(batch, dt)
        if self.num_experts:
            return self.expert_op(batch.expert_tokens, dt)
        rows = batch.num_tokens if num_rows is None else num_rows
        return _dense_op(self, rows, dt)

    def expert_op(self, expert_tokens, dt: float) -> Op:
        """The routed-expert op for ``expert_tokens`` (tokens per expert). A
        vector op (the experts' activation) runs over all routed rows. A GEMM is
        one grouped kernel (vLLM's fused MoE, SGLang's grouped GEMM): one
        instance whose rows are all routed rows and whose weights are those of
        every expert with at least one token, each read once; an expert
        without tokens costs nothing. Per-expert tile padding is not counted
        (it matters only where the kernel is compute bound)."""
        if expert_tokens is None or len(expert_tokens) != self.num_experts:
            got = None if expert_tokens is None else len(expert_tokens)
            raise ValueError(f"op {self.name!r} routes to {self.num_experts} experts; the "
                             f"batch must carry expert_tokens of that length (got {got})")
        counts = np.asarray(expert_tokens, dtype=np.int64)
        rows = np.array([counts.sum()], dtype=np.int64)
        if self.kind is not OpKind.GEMM:  # a vector op over the routed rows
            return self.dense_rows(rows, dt)
        active = int(np.count_nonzero(counts))
        K, N = self.weight_k, self.weight_n
        flops = 2.0 * rows * K * N + rows * min(self.param_elements, N)
        weights = active * (K * N * (self.weight_bytes or dt) + self.param_elements * dt)
        return Op(self.name, self.kind, rows, np.array([N]), np.array([K]), 1, flops,
                  rows * K * dt + weights, rows * N * dt, weight_bytes=weights,
                  weight_elements=float(active * K * N), weight_element_bytes=self.weight_bytes)

    def _dense(self, rows: int, dt: float) -> Op:
        """The op on ``rows`` token rows (everything but attention)."""
        return self.dense_rows(np.array([rows], dtype=np.int64), dt)

    def dense_rows(self, rows: np.ndarray, dt: float) -> Op:
        """A non-attention op with one instance per entry of ``rows`` (token rows).

        Instance ``i`` is exactly the single instance of the op on ``rows[i]``
        rows (same arithmetic), so an engine can time a range of token counts
        in one call (the reuse cache does).
        """
        rows = np.asarray(rows, dtype=np.int64)
        count = len(rows)
        if self.kind is OpKind.GEMM:
            K, N, B = self.weight_k, self.weight_n, self.num_batches
            flops = B * (2.0 * rows * K * N + rows * min(self.param_elements, N))
            weights = B * (K * N * (self.weight_bytes or dt) + self.param_elements * dt)
            special = B > 1 or self.weight_bytes  # else the engine's usual accounting
            return Op(self.name, self.kind, rows.copy(), np.full(count, N, dtype=np.int64),
                      np.full(count, K, dtype=np.int64), B, flops,
                      B * rows * K * dt + weights, B * rows * N * dt, weight_bytes=weights,
                      weight_elements=float(B * K * N) if special else 0.0,
                      weight_element_bytes=self.weight_bytes)
        W = self.width
        flops = self.flops_per_element * rows * W
        read = self.num_inputs * rows * W * dt + self.param_elements * dt
        return Op(self.name, self.kind, rows.copy(), np.full(count, W, dtype=np.int64),
                  np.ones(count, dtype=np.int64), 1, flops, read, rows * W * dt,
                  weight_bytes=self.param_elements * dt)

    def _attention(self, batch: BatchShape, dt: float) -> Op:
        q = batch.num_query_tokens
        kv = batch.num_context_tokens + q
        cached = kv  # keys and values read from the cache
        if self.window:
            # A sliding layer: every query row sees at most `window` keys, and
            # the rows together read the last window + q - 1 cached tokens.
            cached = np.minimum(kv, self.window + q - 1)
            kv = np.minimum(kv, self.window)
        h, kvh, hd = self.num_heads, self.num_kv_heads, self.head_dim
        kvdt = (self.kv_bytes or dt) * self.kv_read  # exact: a factor of 1.0 by default
        qf, kvf, cf = q.astype(np.float64), kv.astype(np.float64), cached.astype(np.float64)
        scores = h * qf * kvf  # elements of the score matrix
        if self.kind is OpKind.ATTN_SCORE:
            m, n, k = q, kv, np.full_like(q, hd)
            flops = 2.0 * scores * hd
            read = (h * qf * hd + kvh * cf * hd * (kvdt / dt)) * dt  # exact for kvdt == dt
            written = scores * dt
            heads = h
        elif self.kind is OpKind.ATTN_CONTEXT:
            m, n, k = q, np.full_like(q, hd), kv
            flops = 2.0 * scores * hd
            read = (scores + kvh * cf * hd * (kvdt / dt)) * dt
            written = h * qf * hd * dt
            heads = h
        else:  # SOFTMAX over each score row
            m, n, k = q * h, kv, np.ones_like(q)
            flops = SOFTMAX_FLOPS * scores
            read = scores * dt
            written = scores * dt
            heads = 1
        return Op(self.name, self.kind, m, n, k, heads, flops, read, written,
                  request_ids=batch.request_ids)


@functools.lru_cache(maxsize=16384)
def _dense_op(template: OpTemplate, rows: int, dt: float) -> Op:
    """Memoised :meth:`OpTemplate._dense`: a non-attention op depends only on
    its template and the number of rows, and batches repeat token counts all
    the time. The returned arrays are read-only, since the op is shared."""
    op = template._dense(rows, dt)
    for arr in (op.m, op.n, op.k, op.flops, op.bytes_read, op.bytes_written):
        arr.setflags(write=False)
    return op


@dataclass(frozen=True, slots=True)
class BlockTemplate:
    """Shape-free operators of an embedding, the decoder layers and an LM head.

    Layers need not be identical ("compile each distinct block once and
    replicate it"): ``block`` holds the operators of every kind of layer in
    execution order, ``layer_kinds`` says which of them a kind of layer runs
    (e.g. DeepSeek-V3's dense FFN or its experts; gpt-oss's sliding or full
    attention), and ``layer_pattern`` gives each layer's kind. A model of one
    kind of layer leaves both empty: every layer runs every op.

    Attributes
    ----------
    name : str
        Model name the template was built for.
    embedding, block, head : tuple of OpTemplate
        Operators run once before the layers, in the layers, once after.
        Head ops run only on the rows that produce a token (``num_logit_tokens``).
    num_layers : int
    dtype_bytes : int
    layer_kinds : tuple of tuple of bool
        Per kind of layer, which ops of ``block`` it runs (``()``: one kind,
        all ops).
    layer_pattern : tuple of int
        Per layer, its index into ``layer_kinds`` (``()``: all kind 0).
    """

    name: str
    embedding: tuple[OpTemplate, ...]
    block: tuple[OpTemplate, ...]
    head: tuple[OpTemplate, ...]
    num_layers: int
    dtype_bytes: int = 2
    layer_kinds: tuple[tuple[bool, ...], ...] = ()
    layer_pattern: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        kinds, pattern = self.layer_kinds, self.layer_pattern
        if any(len(k) != len(self.block) for k in kinds):
            raise ValueError(f"BlockTemplate {self.name!r}: every layer kind must say for each "
                             f"of the {len(self.block)} block ops whether it runs")
        if pattern and (len(pattern) != self.num_layers or not kinds
                        or not all(0 <= i < len(kinds) for i in pattern)):
            raise ValueError(f"BlockTemplate {self.name!r}: layer_pattern must give each of the "
                             f"{self.num_layers} layers a kind in 0..{len(kinds) - 1}")

    @property
    def num_kinds(self) -> int:
        """Distinct kinds of layer (1 for a model of identical layers)."""
        return max(1, len(self.layer_kinds))

    def kind_of(self, layer: int) -> int:
        """The kind of layer ``layer`` (from 0)."""
        return self.layer_pattern[layer] if self.layer_pattern else 0

    def kind_mask(self, kind: int) -> np.ndarray:
        """1.0 for the block ops kind ``kind`` runs, 0.0 for the others."""
        if not self.layer_kinds:
            return np.ones(len(self.block))
        return np.array(self.layer_kinds[kind], dtype=np.float64)

    def kind_latencies(self, layer_op_latency: np.ndarray) -> list[np.ndarray]:
        """Per kind of layer, the seconds of each block op in one such layer
        (``layer_op_latency`` with the ops it does not run at 0)."""
        if not self.layer_kinds:
            return [layer_op_latency]
        return [layer_op_latency * self.kind_mask(k) for k in range(self.num_kinds)]

    def op_layer_counts(self, first: int = 0, count: int | None = None) -> np.ndarray:
        """How many of layers ``first .. first + count - 1`` run each block op."""
        count = self.num_layers - first if count is None else count
        if not self.layer_kinds:
            return np.full(len(self.block), float(count))
        kinds = [self.kind_of(i) for i in range(first, first + count)]
        return sum((self.kind_mask(k) * kinds.count(k) for k in set(kinds)),
                   np.zeros(len(self.block)))

    def instantiate(self, batch: BatchShape) -> tuple[OpBlock, ...]:
        """The iteration's blocks for ``batch``: embedding, the decoder layers
        (one block of ``num_layers`` repeats, or one per kind of layer with
        its ops and layer count), head."""
        dt = self.dtype_bytes
        emb = tuple(t.instantiate(batch, dt) for t in self.embedding)
        logit_rows = int(batch.num_logit_tokens.sum())
        head = tuple(t.instantiate(batch, dt, num_rows=logit_rows) for t in self.head) \
            if logit_rows else ()
        if not self.layer_kinds:
            blk = tuple(t.instantiate(batch, dt) for t in self.block)
            layers = (OpBlock("decoder_block", blk, self.num_layers, batch),)
        else:
            pattern = [self.kind_of(i) for i in range(self.num_layers)]
            layers = tuple(
                OpBlock(f"decoder_block.{k}", tuple(t.instantiate(batch, dt) for t, on in
                                                    zip(self.block, runs) if on),
                        pattern.count(k), batch)
                for k, runs in enumerate(self.layer_kinds) if pattern.count(k))
        return (OpBlock("embedding", emb, 1, batch), *layers, OpBlock("lm_head", head, 1, batch))

    @property
    def op_names(self) -> tuple[str, ...]:
        """Every op label, embedding first; the ``op`` dimension of results."""
        return tuple(t.name for t in self.embedding + self.block + self.head)
