"""The execution-engine stack: time one iteration's operators for every micro-batch.

This is the paper's "execution engine stack" (Algorithm 1, lines 4-11): the
batch is partitioned into micro-batches, each micro-batch's operators are
built for one device's shard of the model and timed by the engine. The
resulting :class:`IterationTrace` is what the graph converter turns into an
execution graph. Nothing here knows about links or schedules.

With ``attention="requests"`` (Orca's selective batching) each tensor-parallel
rank computes all heads of its own requests, so attention is also timed per
rank on the unsharded attention operators.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.ops import BatchShape, OpBlock
from ..models.sharding import shard_template
from ..models.template import BlockTemplate
from ..parallel import ParallelLayout, subset
from .base import BlockTiming, Engine


@dataclass(frozen=True, slots=True)
class MicroBatchTiming:
    """Engine timings of one micro-batch on one device's shard.

    Attributes
    ----------
    batch : BatchShape
    embedding, block, head : BlockTiming
        ``block`` is one decoder layer; ``head`` may have no ops (no logits).
    attention_by_rank : tuple of (BlockTiming or None)
        ``requests`` placement only: per TP rank, its requests' attention with
        all heads (None for a rank without requests). Empty otherwise.
    """

    batch: BatchShape
    embedding: BlockTiming
    block: BlockTiming
    head: BlockTiming
    attention_by_rank: tuple[BlockTiming | None, ...] = ()


@dataclass(frozen=True, slots=True)
class IterationTrace:
    """Everything the graph converter needs about one iteration's compute."""

    micro_batches: tuple[MicroBatchTiming, ...]
    layout: ParallelLayout
    template: BlockTemplate        # the per-device (sharded) template
    op_latency: np.ndarray         # per op of template.op_names, seconds

    @property
    def compute_latency(self) -> float:
        """Operator time of one TP rank over all stages, layers and micro-batches."""
        return float(self.op_latency.sum())


def _empty_timing(block: OpBlock, engine: Engine) -> BlockTiming:
    return BlockTiming(block, engine.name, ())


class ExecutionStack:
    """Times iterations on ``engine`` for a model split by ``layout``.

    Parameters
    ----------
    engine : Engine
    template : BlockTemplate
        The whole model's template; sharded here for tensor parallelism.
    layout : ParallelLayout
    """

    def __init__(self, engine: Engine, template: BlockTemplate, layout: ParallelLayout) -> None:
        self.engine = engine
        self.template = template
        self.layout = layout
        self.sharded = shard_template(template, layout.tp,
                                      by_heads=layout.attention == "heads")
        self._attention = tuple(i for i, t in enumerate(template.block) if t.kind.is_attention)

    def simulate(self, batch: BatchShape) -> IterationTrace:
        """Time every micro-batch of ``batch``."""
        layout, engine = self.layout, self.engine
        num_layers = sum(layout.stage_layers)
        n_emb, n_blk = len(self.sharded.embedding), len(self.sharded.block)
        op_latency = np.zeros(len(self.sharded.op_names))
        timings = []
        for mb in layout.split(batch):
            emb, blk, head = self.sharded.instantiate(mb)
            t_emb = engine.simulate(emb)
            t_head = engine.simulate(head) if head.ops else _empty_timing(head, engine)
            timing, blk_latency = self._time_layer(mb, blk, t_emb, t_head)
            op_latency[:n_emb] += t_emb.op_latency
            op_latency[n_emb:n_emb + n_blk] += blk_latency * num_layers
            if head.ops:
                op_latency[n_emb + n_blk:] += t_head.op_latency
            timings.append(timing)
        return IterationTrace(tuple(timings), layout, self.sharded, op_latency)

    def _time_layer(self, mb: BatchShape, blk: OpBlock, t_emb: BlockTiming,
                    t_head: BlockTiming) -> tuple[MicroBatchTiming, np.ndarray]:
        """One decoder layer of a micro-batch: its timing and per-op seconds.

        Subclasses (the NPU + PIM stack) replace how a layer is timed; the
        iteration loop and the per-op accounting stay here.
        """
        t_blk = self.engine.simulate(blk)
        by_rank: tuple[BlockTiming | None, ...] = ()
        blk_latency = t_blk.op_latency
        if self.layout.attention == "requests" and self.layout.tp > 1:
            by_rank = self._attention_by_rank(mb)
            # An average rank's share of attention, for the per-op accounting.
            per_rank = np.zeros(len(self._attention))
            for t in by_rank:
                if t is not None:
                    per_rank += t.op_latency
            blk_latency = blk_latency.copy()
            blk_latency[list(self._attention)] = per_rank / self.layout.tp
        return MicroBatchTiming(mb, t_emb, t_blk, t_head, by_rank), blk_latency

    def _attention_by_rank(self, mb: BatchShape) -> tuple[BlockTiming | None, ...]:
        ops = [self.template.block[i] for i in self._attention]
        dt = self.template.dtype_bytes
        out: list[BlockTiming | None] = [None] * self.layout.tp
        ranks = mb.request_ids % self.layout.tp
        for rank in np.unique(ranks).tolist():  # only ranks that hold requests
            part = subset(mb, ranks == rank)
            block = OpBlock("attention", tuple(t.instantiate(part, dt) for t in ops), 1, part)
            out[rank] = self.engine.simulate(block)
        return tuple(out)
