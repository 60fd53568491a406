"""The work of one iteration: FLOPs and DRAM bytes per operator, PIM commands.

What the energy models need, in closed form from the templates (no op is
timed again, and almost none is built): a dense op's FLOPs and bytes are
affine in its token rows (``a * rows + b``: the weights are read once per
micro-batch), so two builds at set-up give ``a`` and ``b`` for every op; an
iteration then costs a few vector operations. Attention ops are per request:
their FLOPs and bytes are sums over the batch of ``q kv``, ``q`` and the cached
tokens (:func:`attention_work`, the template's own formulas on sums), on the
whole model's template divided by the tensor-parallel size, so that the total
over ranks is the model's attention whatever the placement. With a PIM, the
mapping policy says which attention instances run there: they are built,
leave the NPU's counts and become PIM commands (:mod:`.pim_energy`).
"""

from __future__ import annotations

import numpy as np

from ..engines.mapping import apply_policy
from ..models.ops import BatchShape, Op, OpKind
from ..models.template import SOFTMAX_FLOPS
from .pim_energy import PIMCommands, attention_commands, gemv_commands

_sum = np.add.reduce


def _pim_commands(op: Op, mask: np.ndarray, spec, template) -> PIMCommands:
    """Commands of the instances of ``op`` selected by ``mask`` on a PIM ``spec``."""
    if op.kind is OpKind.GEMM:
        rows = float(np.asarray(op.m)[mask].sum())
        return gemv_commands(spec, int(rows), int(template.weight_k), int(template.weight_n))
    q = np.asarray(op.m)[mask]
    kv = (np.asarray(op.n) if op.kind is OpKind.ATTN_SCORE else np.asarray(op.k))[mask]
    score, context = attention_commands(spec, q, kv, template.num_heads,
                                        template.num_kv_heads, template.head_dim)
    return score if op.kind is OpKind.ATTN_SCORE else context


def attention_work(t, batch: BatchShape, dt: float) -> tuple[float, float]:
    """FLOPs and bytes of attention template ``t`` on ``batch``, summed over requests:
    ``OpTemplate._attention``'s formulas, on sums instead of per-request arrays."""
    q = batch.num_query_tokens.astype(np.float64)
    kv = batch.num_context_tokens + q
    cached = kv
    if t.window:
        cached = np.minimum(kv, t.window + q - 1)
        kv = np.minimum(kv, t.window)
    h, kvh, hd = t.num_heads, t.num_kv_heads, t.head_dim
    kv_ratio = (t.kv_bytes or dt) * t.kv_read / dt
    scores = h * float(q @ kv)
    sum_q, sum_cached = float(q.sum()), float(cached.sum())
    if t.kind is OpKind.ATTN_SCORE:
        return 2.0 * scores * hd, (h * sum_q * hd + kvh * sum_cached * hd * kv_ratio
                                   + scores) * dt
    if t.kind is OpKind.ATTN_CONTEXT:
        return 2.0 * scores * hd, (scores + kvh * sum_cached * hd * kv_ratio
                                   + h * sum_q * hd) * dt
    return SOFTMAX_FLOPS * scores, 2.0 * scores * dt


def _affine(t, dt) -> tuple[float, float, float, float]:
    """(a, b) of FLOPs and of bytes of a dense template: value = a * rows + b."""
    one = BatchShape.from_lists([1], [0])
    op1, op2 = t.instantiate(one, dt, 1), t.instantiate(one, dt, 2)
    fa, ba = op2.total_flops - op1.total_flops, op2.total_bytes - op1.total_bytes
    return fa, op1.total_flops - fa, ba, op1.total_bytes - ba


class WorkCounter:
    """Counts the work of an execution stack's iterations.

    Per iteration, :meth:`stats` keeps a few numbers of the batch (tokens,
    logit rows, micro-batches, and per attention window ``sum q kv``, ``sum q``,
    ``sum cached``); every op's FLOPs and bytes are linear in them, so
    :meth:`work` gives all iterations' at once (one matrix product). What is
    not linear in them (routed experts, PIM-mapped attention) is counted per
    iteration into ``extra`` arrays.
    """

    def __init__(self, stack) -> None:
        self.stack = stack
        sharded = stack.sharded
        self.dt = dt = sharded.dtype_bytes
        layers = sum(stack.layout.stage_layers)
        counts = (sharded.op_layer_counts(0, layers) if sharded.layer_kinds
                  else np.full(len(sharded.block), float(layers)))
        block = sharded.block
        self.n_emb, n_blk = len(sharded.embedding), len(block)
        self.n_ops = self.n_emb + n_blk + len(sharded.head)
        self.tp = stack.layout.tp
        self.micro_batches = stack.layout.num_micro_batches
        self.counts = np.asarray(counts, dtype=np.float64)
        self.policy = getattr(stack, "policy", None)
        pim = getattr(stack, "pim", None)
        self.pim_spec = None if pim is None else pim.spec
        self.attention = [i for i, t in enumerate(block) if t.kind.is_attention]
        self.experts = [i for i, t in enumerate(block) if t.num_experts
                        and not t.kind.is_attention]
        self.full_block = stack.template.block
        self.windows = sorted({self.full_block[i].window for i in self.attention})
        self.has_extra = bool(self.experts) or self.policy is not None
        # Linear maps from the stats [rows, logits, n_mb, head_mb, (S, sum q, sum cached)
        # per window] to FLOPs and bytes of every op.
        k = 4 + 3 * len(self.windows)
        mf, mb = np.zeros((k, self.n_ops)), np.zeros((k, self.n_ops))
        templates = (*sharded.embedding, *block, *sharded.head)
        for j, t in enumerate(templates):
            if t.kind.is_attention or t.num_experts:
                continue
            fa, fb, ba, bb = _affine(t, dt)
            head = j >= self.n_emb + n_blk
            scale = self.counts[j - self.n_emb] if self.n_emb <= j < self.n_emb + n_blk else 1.0
            mf[1 if head else 0, j], mf[3 if head else 2, j] = fa * scale, fb * scale
            mb[1 if head else 0, j], mb[3 if head else 2, j] = ba * scale, bb * scale
        self.mapped = [i for i in self.attention if self.policy is not None
                       and self.full_block[i].kind is not OpKind.SOFTMAX]
        for i in self.attention:
            if i not in self.mapped:  # softmax stays on the NPU whatever the mapping
                t, j = self.full_block[i], self.n_emb + i
                g = 4 + 3 * self.windows.index(t.window)
                scale = self.counts[i] / self.tp
                mf[g:g + 3, j], mb[g:g + 3, j] = (c * scale for c in _attention_coef(t, dt))
        self.to_flops, self.to_bytes = mf, mb

    def stats(self, batch: BatchShape) -> list[float]:
        """The numbers of ``batch`` every op's work is linear in (see the class)."""
        logits = int(_sum(batch.num_logit_tokens))
        q = batch.num_query_tokens
        n_mb = min(self.micro_batches, len(q)) or 1
        head_mb = (float(logits > 0) if n_mb == 1 else float(sum(
            int(mb.num_logit_tokens.sum()) > 0 for mb in self.stack.layout.split(batch))))
        sum_q = batch.num_tokens
        out = [float(sum_q), float(logits), float(n_mb), head_mb]
        kv = batch.num_context_tokens + q
        for w in self.windows:
            cached, seen = (np.minimum(kv, w + q - 1), np.minimum(kv, w)) if w else (kv, kv)
            out += [float(q @ seen), float(sum_q), float(_sum(cached))]
        return out

    def bulk_stats(self, batches: list[BatchShape]) -> np.ndarray:
        """:meth:`stats` of every batch of ``batches`` (rows), in whole-array
        operations over the batches' concatenated requests: the same integers,
        so the same floats, at a fraction of a per-iteration call's cost."""
        k = 4 + 3 * len(self.windows)
        sizes = np.array([len(b.num_query_tokens) for b in batches], dtype=np.int64)
        if not len(batches) or self.micro_batches > 1 or not sizes.all():
            return np.array([self.stats(b) for b in batches], dtype=np.float64).reshape(-1, k)
        starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
        q = np.concatenate([b.num_query_tokens for b in batches])
        kv = np.concatenate([b.num_context_tokens for b in batches]) + q
        logits = np.add.reduceat(np.concatenate([b.num_logit_tokens for b in batches])
                                 .astype(np.int64), starts)
        sum_q = np.add.reduceat(q, starts).astype(np.float64)
        columns = [sum_q, logits.astype(np.float64), np.ones(len(batches)),
                   (logits > 0).astype(np.float64)]
        for w in self.windows:
            cached, seen = (np.minimum(kv, w + q - 1), np.minimum(kv, w)) if w else (kv, kv)
            columns += [np.add.reduceat(q * seen, starts).astype(np.float64), sum_q,
                        np.add.reduceat(cached, starts).astype(np.float64)]
        return np.column_stack(columns)

    def extra(self, batch: BatchShape, expert_tokens) -> tuple[np.ndarray, np.ndarray,
                                                               PIMCommands]:
        """FLOPs and bytes per op not in the linear maps, and the PIM's commands."""
        flops, nbytes = np.zeros(self.n_ops), np.zeros(self.n_ops)
        pim = PIMCommands()
        base = self.n_emb
        if expert_tokens is not None:  # the iteration's routing, summed over micro-batches
            for i in self.experts:
                op = self.stack.sharded.block[i].expert_op(expert_tokens, float(self.dt))
                flops[base + i] = op.total_flops * self.counts[i]
                nbytes[base + i] = op.total_bytes * self.counts[i]
        if self.mapped:
            for i in self.mapped:
                f, b, more = self._mapped_attention(self.full_block[i], batch, self.counts[i])
                pim = pim + more
                flops[base + i] = f * self.counts[i] / self.tp
                nbytes[base + i] = b * self.counts[i] / self.tp
        return flops, nbytes, pim

    def work(self, stats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FLOPs and bytes (iterations x ops) of iterations with these ``stats`` rows."""
        return stats @ self.to_flops, stats @ self.to_bytes

    def _mapped_attention(self, t, batch, layers) -> tuple[float, float, PIMCommands]:
        """NPU FLOPs and bytes of attention op ``t`` and the PIM's commands (all layers)."""
        op = t.instantiate(batch, self.dt)
        f, b = op.flops, op.bytes_read + op.bytes_written
        pim = PIMCommands()
        mask = apply_policy(self.policy, op)
        if mask.any():
            pim = _scaled(_pim_commands(op, mask, self.pim_spec, t), layers)
            f, b = f[~mask], b[~mask]
        return float(f.sum()), float(b.sum()), pim


def _attention_coef(t, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """FLOPs and bytes of attention template ``t`` per unit of (sum q kv, sum q, sum
    cached): :func:`attention_work`'s formulas as coefficients."""
    h, kvh, hd = t.num_heads, t.num_kv_heads, t.head_dim
    kv_ratio = (t.kv_bytes or dt) * t.kv_read / dt
    if t.kind is OpKind.SOFTMAX:
        return np.array([SOFTMAX_FLOPS * h, 0.0, 0.0]), np.array([2.0 * h * dt, 0.0, 0.0])
    return (np.array([2.0 * h * hd, 0.0, 0.0]),
            np.array([h * dt, h * hd * dt, kvh * hd * kv_ratio * dt]))


def _scaled(c: PIMCommands, factor: float) -> PIMCommands:
    return PIMCommands(c.act * factor, c.pre * factor, c.comp * factor, c.readres * factor,
                       c.gwrite * factor, c.gwrite_bytes * factor)


__all__ = ["WorkCounter", "attention_work"]
