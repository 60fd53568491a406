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
from .spec import ModelSpec

# FLOPs per output element of the vector operators (explainable op counts:
# layernorm = mean, subtract, square, mean, rsqrt-mul, scale, shift ~ 8;
# rmsnorm drops the mean and the shift ~ 5; tanh-GELU ~ 8; SiLU*gate ~ 5).
NORM_FLOPS = {"layernorm": 8, "rmsnorm": 5}
ACT_FLOPS = {"gelu": 8, "relu": 1, "swiglu": 5}
SOFTMAX_FLOPS = 5  # max, subtract, exp, sum, divide


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

    def instantiate(self, batch: BatchShape, dtype_bytes: int, num_rows: int | None = None) -> Op:
        """Build the :class:`Op` for ``batch`` (``num_rows`` overrides the token count)."""
        dt = float(dtype_bytes)
        if self.kind.is_attention:
            return self._attention(batch, dt)
        rows = batch.num_tokens if num_rows is None else num_rows
        return _dense_op(self, rows, dt)

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
            K, N = self.weight_k, self.weight_n
            flops = 2.0 * rows * K * N + rows * min(self.param_elements, N)
            weights = (K * N + self.param_elements) * dt
            return Op(self.name, self.kind, rows.copy(), np.full(count, N, dtype=np.int64),
                      np.full(count, K, dtype=np.int64), 1, flops, rows * K * dt + weights,
                      rows * N * dt, weight_bytes=weights)
        W = self.width
        flops = self.flops_per_element * rows * W
        read = self.num_inputs * rows * W * dt + self.param_elements * dt
        return Op(self.name, self.kind, rows.copy(), np.full(count, W, dtype=np.int64),
                  np.ones(count, dtype=np.int64), 1, flops, read, rows * W * dt,
                  weight_bytes=self.param_elements * dt)

    def _attention(self, batch: BatchShape, dt: float) -> Op:
        q = batch.num_query_tokens
        kv = batch.num_context_tokens + q
        h, kvh, hd = self.num_heads, self.num_kv_heads, self.head_dim
        qf, kvf = q.astype(np.float64), kv.astype(np.float64)
        scores = h * qf * kvf  # elements of the score matrix
        if self.kind is OpKind.ATTN_SCORE:
            m, n, k = q, kv, np.full_like(q, hd)
            flops = 2.0 * scores * hd
            read = (h * qf * hd + kvh * kvf * hd) * dt
            written = scores * dt
            heads = h
        elif self.kind is OpKind.ATTN_CONTEXT:
            m, n, k = q, np.full_like(q, hd), kv
            flops = 2.0 * scores * hd
            read = (scores + kvh * kvf * hd) * dt
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
    """Shape-free operators of an embedding, a decoder block and an LM head.

    Attributes
    ----------
    name : str
        Model name the template was built for.
    embedding, block, head : tuple of OpTemplate
        Operators run once before the blocks, ``num_layers`` times, once after.
        Head ops run only on the rows that produce a token (``num_logit_tokens``).
    num_layers : int
    dtype_bytes : int
    """

    name: str
    embedding: tuple[OpTemplate, ...]
    block: tuple[OpTemplate, ...]
    head: tuple[OpTemplate, ...]
    num_layers: int
    dtype_bytes: int = 2

    def instantiate(self, batch: BatchShape) -> tuple[OpBlock, OpBlock, OpBlock]:
        """The iteration's three blocks for ``batch``: embedding, decoder, head."""
        dt = self.dtype_bytes
        emb = tuple(t.instantiate(batch, dt) for t in self.embedding)
        blk = tuple(t.instantiate(batch, dt) for t in self.block)
        logit_rows = int(batch.num_logit_tokens.sum())
        head = tuple(t.instantiate(batch, dt, num_rows=logit_rows) for t in self.head) \
            if logit_rows else ()
        return (OpBlock("embedding", emb, 1, batch),
                OpBlock("decoder_block", blk, self.num_layers, batch),
                OpBlock("lm_head", head, 1, batch))

    @property
    def op_names(self) -> tuple[str, ...]:
        """Every op label, embedding first; the ``op`` dimension of results."""
        return tuple(t.name for t in self.embedding + self.block + self.head)


def decoder_template(spec: ModelSpec) -> BlockTemplate:
    """The operator recipe of ``spec``'s blocks (pre-norm decoder, as GPT/LLaMA)."""
    d, f, kv, hd = spec.hidden_size, spec.ffn_hidden_size, spec.kv_dim, spec.head_dim
    bias = spec.bias
    norm_params = 2 * d if spec.norm == "layernorm" else d
    nf = NORM_FLOPS[spec.norm]
    gated = spec.activation == "swiglu"
    up_n = 2 * f if gated else f
    attn = dict(num_heads=spec.num_heads, num_kv_heads=spec.num_kv_heads, head_dim=hd)

    embedding = (OpTemplate("embed", OpKind.EMBEDDING, width=d,
                            num_inputs=2 if spec.position == "learned" else 1,
                            flops_per_element=1.0 if spec.position == "learned" else 0.0),)
    block: list[OpTemplate] = [
        OpTemplate("input_norm", OpKind.NORM, width=d, flops_per_element=nf,
                   param_elements=norm_params),
        OpTemplate("qkv_proj", OpKind.GEMM, weight_k=d, weight_n=d + 2 * kv,
                   param_elements=(d + 2 * kv) if bias else 0),
    ]
    if spec.position == "rope":
        # Rotary embedding on q and k: 3 FLOPs (2 mul + 1 add) per element.
        block.append(OpTemplate("rope", OpKind.ELEMENTWISE, width=d + kv,
                                flops_per_element=3.0))
    block += [
        OpTemplate("attn_score", OpKind.ATTN_SCORE, **attn),
        OpTemplate("attn_softmax", OpKind.SOFTMAX, **attn),
        OpTemplate("attn_context", OpKind.ATTN_CONTEXT, **attn),
        OpTemplate("out_proj", OpKind.GEMM, weight_k=d, weight_n=d,
                   param_elements=d if bias else 0),
        OpTemplate("attn_residual", OpKind.ELEMENTWISE, width=d, num_inputs=2),
        OpTemplate("post_attn_norm", OpKind.NORM, width=d, flops_per_element=nf,
                   param_elements=norm_params),
        OpTemplate("ffn_up", OpKind.GEMM, weight_k=d, weight_n=up_n,
                   param_elements=up_n if bias else 0),
        OpTemplate("ffn_act", OpKind.ACTIVATION, width=f, num_inputs=2 if gated else 1,
                   flops_per_element=ACT_FLOPS[spec.activation]),
        OpTemplate("ffn_down", OpKind.GEMM, weight_k=f, weight_n=d,
                   param_elements=d if bias else 0),
        OpTemplate("ffn_residual", OpKind.ELEMENTWISE, width=d, num_inputs=2),
    ]
    head = (
        OpTemplate("final_norm", OpKind.NORM, width=d, flops_per_element=nf,
                   param_elements=norm_params),
        OpTemplate("lm_head", OpKind.GEMM, weight_k=d, weight_n=spec.vocab_size),
    )
    return BlockTemplate(spec.name, embedding, tuple(block), head, spec.num_layers,
                         spec.dtype_bytes)
