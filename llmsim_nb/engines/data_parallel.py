"""The execution stack under attention data parallelism (MoE models).

vLLM's data-parallel attention (``--data-parallel-size`` with
``--enable-expert-parallel``) and SGLang's DP attention run a
mixture-of-experts model on a group of ``n`` ranks as ``n`` data-parallel
replicas of everything but the routed experts: each rank holds the whole
embedding, attention, dense FFNs, router, shared experts and LM head, and
runs them on its own requests (request ``r`` on rank ``r % n``); the routed
experts are spread over the group (rank ``rank_of_expert[e]`` holds expert
``e``). At every MoE layer a rank sends each of its tokens' routed copies to
the rank holding that expert (the *dispatch* all-to-all), the ranks run their
experts' grouped GEMMs on what they received, and the outputs go back the
same way (the *combine*), so the ranks synchronise there and the slowest
one sets the pace; between MoE layers (and through dense layers) each rank
goes at its own speed.

Per micro-batch the routing model draws each rank's tokens per expert (all
ranks' tokens in one draw, :meth:`RoutingModel.draw_groups`), which gives the
dispatch matrix ``dispatch_tokens[i, j]``: routed (token, expert) pairs
rank ``i`` sends to rank ``j``; its diagonal stays on the rank. One copy is
counted per pair (a token with two experts on one rank is sent twice, as
pplx-kernels and DeepEP's low-latency kernels do; DeepEP's normal kernels
send it once). One draw serves every MoE layer of the iteration, as on
:class:`~llmsim_nb.engines.stack.ExecutionStack`.

A rank without requests in a micro-batch runs nothing of its own but still
computes its experts' share of the others' tokens. (vLLM makes an idle DP
rank run a one-token dummy batch to join the collectives; that is not
counted.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..models.ops import BatchShape
from ..models.template import BlockTemplate
from ..parallel.layout import ParallelLayout, subset
from ..parallel.sharding import shard_data_parallel
from .stack import _NO_OPS, ExecutionStack, IterationTrace, MicroBatchTiming


_NONE = np.zeros(0, dtype=np.int64)
_EMPTY = BatchShape(_NONE, _NONE, _NONE, _NONE)  # a rank without requests


@dataclass(frozen=True, slots=True)
class DataParallelTiming(MicroBatchTiming):
    """A micro-batch under attention data parallelism.

    The inherited per-op arrays are the average over the group's ranks (what
    one rank's share of the work is, for the iteration's per-op totals).

    Attributes
    ----------
    ranks : tuple of (MicroBatchTiming or None)
        Per rank of the group, its own requests' timing: embedding and LM head
        on its tokens, one layer's ops with the routed experts' entries being
        the grouped GEMMs of the tokens *it received*. None for a rank that
        holds no request of the micro-batch and receives no routed token;
        a rank that only receives routed tokens has an empty ``batch``.
    dispatch_tokens : ndarray of int64, shape (ranks, ranks)
        Routed (token, expert) pairs rank ``i`` sends to rank ``j`` at each
        MoE layer (the combine sends the same back).
    """

    ranks: tuple[MicroBatchTiming | None, ...] = ()
    dispatch_tokens: np.ndarray | None = None


class DataParallelStack(ExecutionStack):
    """Times iterations of an MoE model under attention data parallelism.

    Parameters
    ----------
    engine : Engine
    template : BlockTemplate
        The whole model's template (each rank keeps it but for the experts).
    layout : ParallelLayout
        ``attention="data"``; its ``tp`` is the data-parallel group size.
    routing : RoutingModel
    rng : numpy.random.Generator
    expert_placement : {"contiguous", "round_robin"}
    """

    def __init__(self, engine, template: BlockTemplate, layout: ParallelLayout, routing=None,
                 rng: np.random.Generator | None = None,
                 expert_placement: str = "contiguous") -> None:
        if layout.attention != "data":
            raise ValueError(f"DataParallelStack needs a layout with attention='data', got "
                             f"{layout.attention!r}")
        super().__init__(engine, template, layout, routing, rng, expert_parallel=True,
                         expert_placement=expert_placement)
        if not self._has_experts:
            raise ValueError(f"attention data parallelism needs a mixture-of-experts model; "
                             f"{template.name!r} has no routed experts")
        n_blk = len(self.sharded.block)
        self._dense = tuple(i for i in range(n_blk) if i not in self._experts)
        self._experts_at, self._dense_at = list(self._experts), list(self._dense)
        # One engine call per rank for the ops on its own rows (the reuse
        # cache's memo is keyed by this tuple, so it is built once).
        self._own_templates = self.sharded.embedding + tuple(self.sharded.block[i]
                                                             for i in self._dense)
        # An activation row (what a routed copy of a token is): the block's width.
        self._row_bytes = self._expert_templates[-1].weight_n * self.sharded.dtype_bytes
        self._num_moe_layers = int(round(float(self._layer_counts[self._experts[0]])))
        self.last_dispatch_tokens: np.ndarray | None = None
        self.iteration_dispatch_tokens: np.ndarray | None = None

    def _shard(self, template: BlockTemplate, layout: ParallelLayout,
               expert_parallel: bool) -> BlockTemplate:
        return shard_data_parallel(template, layout.tp)

    @property
    def iteration_dispatch_bytes(self) -> float:
        """Bytes the iteration's dispatch all-to-alls sent between ranks: the
        routed rows that leave their rank, ``hidden`` activations each, at
        every MoE layer (the combines send as many back)."""
        pairs = self.iteration_dispatch_tokens
        if pairs is None:
            return 0.0
        moved = int(pairs.sum() - np.trace(pairs))
        return float(moved * self._row_bytes * self._num_moe_layers)

    # ------------------------------------------------------------ iteration
    def simulate(self, batch: BatchShape) -> IterationTrace:
        """Time every micro-batch of ``batch``, rank by rank."""
        layout, sharded = self.layout, self.sharded
        counts = self._layer_counts if sharded.layer_kinds else sum(layout.stage_layers)
        n_emb, n_blk = len(sharded.embedding), len(sharded.block)
        op_latency = np.zeros(n_emb + n_blk + len(sharded.head))
        self.iteration_expert_tokens = None
        self.iteration_rank_tokens = None
        self.iteration_dispatch_tokens = None
        timings = []
        for mb in layout.split(batch):
            timing = self._time_micro_batch(mb)
            op_latency[:n_emb] += timing.embedding_op_latency
            op_latency[n_emb:n_emb + n_blk] += timing.layer_op_latency * counts
            if timing.has_head:
                op_latency[n_emb + n_blk:] += timing.head_op_latency
            timings.append(timing)
        for timing in timings:  # every rank's own numbers, not only their mean
            present = [rank for rank in timing.ranks if rank is not None]
            values = np.concatenate([a for rank in present for a in
                                     (rank.embedding_op_latency, rank.layer_op_latency,
                                      rank.head_op_latency)])
            # NaN fails >=; inf fails <; only then look for the op to name.
            if not (float(values.min()) >= 0.0 and float(values.max()) < math.inf):
                for rank in present:
                    self._check_timing(rank)
        trace = IterationTrace(tuple(timings), layout, sharded, op_latency,
                               float(op_latency.sum()))
        if not (trace.compute_latency < math.inf and float(op_latency.min()) >= 0.0):
            self.check(trace)
        return trace

    def _time_micro_batch(self, mb: BatchShape) -> DataParallelTiming:
        engine, sharded, tp = self.engine, self.sharded, self.layout.tp
        dt = sharded.dtype_bytes
        owner = self.layout.attention_ranks(mb)
        parts: list[BatchShape | None] = []
        for rank in range(tp):
            mask = owner == rank
            parts.append(subset(mb, mask) if mask.any() else None)
        # Source rank x expert: every rank's tokens, routed in one draw (a
        # notebook's routing object with only ``draw`` is drawn rank by rank).
        sizes = [0 if p is None else p.num_tokens for p in parts]
        groups = getattr(self.routing, "draw_groups", None)
        drawn = (groups(sizes, self.rng) if groups is not None else
                 np.array([self.routing.draw(n, 1, self.rng)[0] for n in sizes]))
        received = drawn.sum(axis=0)  # tokens per expert, from every rank
        # holds[e, j]: rank j holds expert e (read each time: a notebook may
        # reassign rank_of_expert).
        holds = self.rank_of_expert[:, None] == np.arange(tp)[None, :]
        dispatch = drawn @ holds.astype(np.int64)
        rank_tokens = dispatch.sum(axis=0)
        self._record(received, rank_tokens, dispatch)
        n_blk, n_emb = len(sharded.block), len(sharded.embedding)
        ranks: list[MicroBatchTiming | None] = []
        for rank, part in enumerate(parts):
            mine = np.where(holds[:, rank], received, 0)
            if part is None and not mine.any():
                ranks.append(None)
                continue
            layer = np.zeros(n_blk)
            # The routed experts' grouped GEMMs on the rows this rank received
            # (only expert_tokens matters to them: an empty batch carries it).
            layer[self._experts_at] = engine.op_totals(
                self._expert_templates, BatchShape(_NONE, _NONE, _NONE, _NONE,
                                                   expert_tokens=mine), dt)
            if part is None:  # no requests of its own: only its experts' work
                ranks.append(MicroBatchTiming(_EMPTY, np.zeros(n_emb), layer, _NO_OPS))
                continue
            # The embedding and the layer's other ops, on the rank's own rows.
            own = engine.op_totals(self._own_templates, part, dt)
            emb = own[:n_emb]
            layer[self._dense_at] = own[n_emb:]
            logit_rows = int(part.num_logit_tokens.sum())
            head = (engine.op_totals(sharded.head, part, dt, logit_rows)
                    if logit_rows and sharded.head else _NO_OPS)
            ranks.append(MicroBatchTiming(part, emb, layer, head))
        emb, layer, head = self._mean_timing(ranks)
        return DataParallelTiming(BatchShape(mb.request_ids, mb.num_query_tokens,
                                             mb.num_context_tokens, mb.num_logit_tokens,
                                             expert_tokens=received),
                                  emb, layer, head, (), tuple(ranks), dispatch)

    def _mean_timing(self, ranks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-op seconds of an average rank: each rank's, summed, over the group size."""
        sharded, tp = self.sharded, self.layout.tp
        emb = np.zeros(len(sharded.embedding))
        layer = np.zeros(len(sharded.block))
        head = np.zeros(len(sharded.head))
        has_head = False
        for rank in ranks:
            if rank is None:
                continue
            emb += rank.embedding_op_latency
            layer += rank.layer_op_latency
            if rank.has_head:
                head += rank.head_op_latency
                has_head = True
        return emb / tp, layer / tp, (head / tp if has_head else _NO_OPS)

    def _record(self, received: np.ndarray, rank_tokens: np.ndarray,
                dispatch: np.ndarray) -> None:
        """Add a micro-batch's routing to the iteration's (results record it)."""
        self.last_expert_tokens = received
        self.last_rank_tokens = rank_tokens
        self.last_dispatch_tokens = dispatch
        for name, value in (("iteration_expert_tokens", received),
                            ("iteration_rank_tokens", rank_tokens),
                            ("iteration_dispatch_tokens", dispatch)):
            old = getattr(self, name)
            setattr(self, name, value.copy() if old is None else old + value)


__all__ = ["DataParallelStack", "DataParallelTiming"]
