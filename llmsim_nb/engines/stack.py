"""The execution-engine stack: time one iteration's operators for every micro-batch.

This is the paper's "execution engine stack" (Algorithm 1, lines 4-11): the
batch is partitioned into micro-batches and the engine gives each
micro-batch's per-operator seconds on one device's shard of the model
(:meth:`~llmsim_nb.engines.base.Engine.op_totals`). The
resulting :class:`IterationTrace` is what the graph converter turns into an
execution graph. Nothing here knows about links or schedules.

With ``attention="requests"`` (Orca's selective batching) each tensor-parallel
rank computes all heads of its own requests, so attention is also timed per
rank on the unsharded attention operators.

Layers of several kinds (dense and MoE, full and sliding attention): the
engine times every op of the block once per micro-batch and each layer runs
its kind's ops (``BlockTemplate.layer_kinds``), so the iteration's per-op
totals are each op's latency times the number of layers that run it. For a
mixture-of-experts model the routing model draws, per micro-batch, how many
tokens each expert receives (``BatchShape.expert_tokens``), with the stack's
own ``numpy.random.Generator``. One draw serves every MoE layer of the
iteration: each layer's expected time is the same as with a draw per layer
(the layers are alike), the iteration's variance is larger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..models.ops import BatchShape
from ..models.template import BlockTemplate
from ..parallel.layout import ParallelLayout, subset
from ..parallel.sharding import shard_template
from .base import Engine

#: ``np.add.reduce``: what ``ndarray.sum()`` computes for a 1-d array, without
#: the method's Python-level wrapper (this runs every iteration).
_reduce = np.add.reduce


@dataclass(frozen=True, slots=True)
class MicroBatchTiming:
    """Engine timings of one micro-batch on one device's shard.

    Attributes
    ----------
    batch : BatchShape
    embedding_op_latency, layer_op_latency, head_op_latency : ndarray of float64
        Seconds per operator of the embedding, of one decoder layer and of the
        LM head (empty when no request emits a token), instances summed.
    attention_by_rank : tuple of (float or None)
        ``requests`` placement only: per TP rank, the seconds its requests'
        attention takes with all heads (None for a rank without requests).
        Empty otherwise.
    """

    batch: BatchShape
    embedding_op_latency: np.ndarray
    layer_op_latency: np.ndarray
    head_op_latency: np.ndarray
    attention_by_rank: tuple[float | None, ...] = ()

    @property
    def embedding_latency(self) -> float:
        """Seconds of the embedding (its ops one after another)."""
        return float(sum(self.embedding_op_latency.tolist()))

    @property
    def has_head(self) -> bool:
        return len(self.head_op_latency) > 0

    @property
    def head_latency(self) -> float:
        """Seconds of the LM head (0 without one)."""
        return float(sum(self.head_op_latency.tolist()))


@dataclass(frozen=True, slots=True)
class IterationTrace:
    """Everything the graph converter needs about one iteration's compute."""

    micro_batches: tuple[MicroBatchTiming, ...]
    layout: ParallelLayout
    template: BlockTemplate        # the per-device (sharded) template
    op_latency: np.ndarray         # per op of template.op_names, seconds
    #: Operator time of one TP rank over all stages, layers and micro-batches
    #: (``float(op_latency.sum())``).
    compute_latency: float


_NO_OPS = np.zeros(0)
_min = np.minimum.reduce


class LatencyError(ValueError):
    """An engine, profiled table or cache timed an operator at NaN, inf or a
    negative number of seconds (the message names the op and the engine)."""


def latency_problem(seconds: float) -> str | None:
    """Why ``seconds`` cannot be an operator's latency (None when it can:
    finite and >= 0; an op with no work may take 0 s)."""
    if math.isnan(seconds):
        return "NaN"
    if math.isinf(seconds):
        return "infinite"
    if seconds < 0:
        return "negative"
    return None


def describe_batch(batch: BatchShape) -> str:
    return f"a batch of {batch.num_requests} request(s), {batch.num_tokens} token(s)"


def bad_latency(engine_name: str, op: str, part: str, seconds: float,
                where: str) -> LatencyError:
    """The one-line error for op ``op`` timed at ``seconds`` by ``engine_name``
    (``part``: which part of the model; ``where``: for what, e.g. a batch)."""
    return LatencyError(
        f"engine {engine_name!r} timed op {op!r} ({part}) at {seconds!r} s "
        f"({latency_problem(seconds)}) for {where}; an op's latency must be finite "
        f"and >= 0 s")


def check_op_latency(values: np.ndarray, names, engine_name: str, part: str,
                     batch: BatchShape) -> None:
    """Raise :class:`LatencyError` naming the first op of ``values`` (seconds per
    op, labelled by ``names``) that is NaN, infinite or negative."""
    for name, seconds in zip(names, values.tolist()):
        if latency_problem(seconds) is not None:
            raise bad_latency(engine_name, name, part, seconds, describe_batch(batch))


class ExecutionStack:
    """Times iterations on ``engine`` for a model split by ``layout``.

    Parameters
    ----------
    engine : Engine
    template : BlockTemplate
        The whole model's template; sharded here for tensor parallelism.
    layout : ParallelLayout
    """

    def __init__(self, engine: Engine, template: BlockTemplate, layout: ParallelLayout,
                 routing=None, rng: np.random.Generator | None = None,
                 expert_parallel: bool = False, expert_placement: str = "contiguous") -> None:
        self.engine = engine
        self.template = template
        self.layout = layout
        self.sharded = self._shard(template, layout, expert_parallel)
        self.expert_parallel = expert_parallel and layout.tp > 1
        self._experts = tuple(i for i, t in enumerate(self.sharded.block) if t.num_experts)
        self._expert_templates = tuple(self.sharded.block[i] for i in self._experts)
        if self.expert_parallel:
            num_experts = self.sharded.block[self._experts[0]].num_experts
            if num_experts % layout.tp:
                raise ValueError(f"expert parallelism: {num_experts} experts do not split "
                                 f"evenly over {layout.tp} ranks")
            # Contiguous: rank r holds experts r*E/tp .. (r+1)*E/tp - 1; round robin:
            # expert e on rank e mod tp. A notebook may set any table of ranks.
            experts = np.arange(num_experts)
            self.rank_of_expert = (experts % layout.tp if expert_placement == "round_robin"
                                   else experts // (num_experts // layout.tp))
        self.last_rank_tokens: np.ndarray | None = None  # EP: routed rows per rank
        self._layer_counts = self.sharded.op_layer_counts(0, sum(layout.stage_layers))
        self._has_experts = bool(self._experts)
        if self._has_experts and (routing is None or rng is None):
            raise ValueError(f"model {template.name!r} has routed experts; ExecutionStack needs "
                             f"a routing model and a numpy.random.Generator")
        self.routing = routing
        self.rng = rng
        self.last_expert_tokens: np.ndarray | None = None  # the last micro-batch's draw
        self.iteration_expert_tokens: np.ndarray | None = None
        self.iteration_rank_tokens: np.ndarray | None = None
        self._attention = tuple(i for i, t in enumerate(template.block) if t.kind.is_attention)
        # The whole model's attention ops (all heads), for ``requests`` placement.
        self._attention_templates = tuple(template.block[i] for i in self._attention)
        self._per_rank = layout.attention == "requests" and layout.tp > 1

    #: Bytes the iteration's MoE dispatch sent between ranks (only attention
    #: data parallelism dispatches by all-to-all).
    iteration_dispatch_bytes = 0.0

    def _shard(self, template: BlockTemplate, layout: ParallelLayout,
               expert_parallel: bool) -> BlockTemplate:
        """The template one device runs (subclasses split the group otherwise)."""
        return shard_template(template, layout.tp, by_heads=layout.attention == "heads",
                              expert_parallel=expert_parallel)

    def simulate(self, batch: BatchShape) -> IterationTrace:
        """Time every micro-batch of ``batch``."""
        layout, sharded = self.layout, self.sharded
        counts = self._layer_counts
        if not sharded.layer_kinds:  # one kind of layer: an int factor, as ever
            counts = sum(layout.stage_layers)
        n_emb, n_blk, n_head = len(sharded.embedding), len(sharded.block), len(sharded.head)
        timings = []
        # The iteration's routing, summed over micro-batches (results record it).
        self.iteration_expert_tokens = None
        self.iteration_rank_tokens = None
        micro_batches = layout.split(batch)
        if len(micro_batches) == 1:
            # One micro-batch (most iterations): the per-op totals in one
            # concatenation. ``+= 0.0`` is the accumulation into zeros below
            # (0.0 + x is x for every x but -0.0), so the floats are the same.
            timing, emb, blk_latency, head = self._time_micro_batch(micro_batches[0])
            op_latency = np.concatenate((emb, blk_latency * counts,
                                         head if len(head) else np.zeros(n_head)))
            op_latency += 0.0
            timings.append(timing)
        else:
            op_latency = np.zeros(n_emb + n_blk + n_head)
            for mb in micro_batches:
                timing, emb, blk_latency, head = self._time_micro_batch(mb)
                op_latency[:n_emb] += emb
                op_latency[n_emb:n_emb + n_blk] += blk_latency * counts
                if len(head):
                    op_latency[n_emb + n_blk:] += head
                timings.append(timing)
        # No op may take NaN, infinite or negative seconds: NaN fails ``>=``,
        # and an infinite one makes the total infinite, so the common case
        # costs one reduction. With one micro-batch op_latency holds the
        # engine's numbers themselves (times a layer count >= 1); with more,
        # or per-rank attention, each is checked on its own so that a
        # negative one cannot hide in a sum.
        if len(timings) > 1 or self._per_rank:
            for timing in timings:
                self._check_timing(timing)
        trace = IterationTrace(tuple(timings), layout, sharded, op_latency,
                               float(_reduce(op_latency)))
        if not (trace.compute_latency < math.inf and _min(op_latency) >= 0.0):
            self.check(trace)
        return trace

    def _time_micro_batch(self, mb: BatchShape
                          ) -> tuple[MicroBatchTiming, np.ndarray, np.ndarray, np.ndarray]:
        """One micro-batch's timing and its per-op seconds of the embedding,
        of one layer (for the per-op accounting) and of the head."""
        engine, sharded = self.engine, self.sharded
        dt = sharded.dtype_bytes
        if self._has_experts:
            mb = self._route(mb)
        emb = engine.op_totals(sharded.embedding, mb, dt)
        logit_rows = int(_reduce(mb.num_logit_tokens))
        head = (engine.op_totals(sharded.head, mb, dt, logit_rows)
                if logit_rows and sharded.head else _NO_OPS)
        timing, blk_latency = self._time_layer(mb, emb, head)
        return timing, emb, blk_latency, head

    def _route(self, mb: BatchShape) -> BatchShape:
        """``mb`` with the routing model's tokens per expert (one draw)."""
        drawn = self.routing.draw(mb.num_tokens, 1, self.rng)[0]
        self.last_expert_tokens = drawn
        self.iteration_expert_tokens = (drawn.copy() if self.iteration_expert_tokens is None
                                        else self.iteration_expert_tokens + drawn)
        return BatchShape(mb.request_ids, mb.num_query_tokens, mb.num_context_tokens,
                          mb.num_logit_tokens, expert_tokens=drawn)

    def check(self, trace: IterationTrace) -> None:
        """Raise :class:`LatencyError` for the first op of ``trace`` whose
        latency is NaN, infinite or negative, naming the op, its part of the
        model and the engine; and if the per-op totals add up to infinity."""
        for timing in trace.micro_batches:
            self._check_timing(timing)
        batch = trace.micro_batches[0].batch if trace.micro_batches else None
        where = describe_batch(batch) if batch is not None else "an iteration"
        for name, seconds in zip(trace.template.op_names, trace.op_latency.tolist()):
            if latency_problem(seconds) is not None:
                raise bad_latency(self.engine.name, name, "iteration total", seconds, where)
        total = trace.compute_latency
        if latency_problem(total) is not None:
            raise LatencyError(f"engine {self.engine.name!r} timed the ops of {where} at "
                               f"{total!r} s in all; an iteration's op latencies must add "
                               f"up to a finite time")

    def _check_timing(self, timing: MicroBatchTiming) -> None:
        """Raise :class:`LatencyError` for a micro-batch's first bad op latency."""
        sharded, name, mb = self.sharded, self.engine.name, timing.batch
        for part, templates, values in (("embedding", sharded.embedding,
                                         timing.embedding_op_latency),
                                        ("decoder layer", sharded.block,
                                         timing.layer_op_latency),
                                        ("LM head", sharded.head, timing.head_op_latency)):
            check_op_latency(values, [t.name for t in templates], name, part, mb)
        for rank, seconds in enumerate(timing.attention_by_rank):
            if seconds is not None and latency_problem(seconds) is not None:
                raise bad_latency(name, "attention", f"tensor-parallel rank {rank}",
                                  seconds, describe_batch(mb))

    def _time_layer(self, mb: BatchShape, emb: np.ndarray,
                    head: np.ndarray) -> tuple[MicroBatchTiming, np.ndarray]:
        """One decoder layer of a micro-batch: its timing and per-op seconds.

        Subclasses (the NPU + PIM stack) replace how a layer is timed; the
        iteration loop and the per-op accounting stay here.
        """
        layer = self.engine.op_totals(self.sharded.block, mb, self.sharded.dtype_bytes)
        if self.expert_parallel:
            layer = self._slowest_expert_rank(mb, layer)
        by_rank: tuple[float | None, ...] = ()
        blk_latency = layer
        if self._per_rank:  # requests placement over several ranks
            by_rank, per_rank = self._attention_by_rank(mb)
            # An average rank's share of attention, for the per-op accounting.
            blk_latency = layer.copy()
            blk_latency[list(self._attention)] = per_rank / self.layout.tp
        return MicroBatchTiming(mb, emb, layer, head, by_rank), blk_latency

    def _slowest_expert_rank(self, mb: BatchShape, layer: np.ndarray) -> np.ndarray:
        """Expert parallelism: each rank runs the grouped GEMMs of its own
        experts' tokens; the MoE layer ends at the all-reduce after them, so
        the rank with the most expert work sets the layer's expert time (the
        others wait, counted as busy)."""
        templates = self._expert_templates  # one object: the reuse memo's key holds
        counts = mb.expert_tokens
        best, slowest = -1.0, None
        tokens = np.zeros(self.layout.tp, dtype=np.int64)
        for rank in range(self.layout.tp):
            mine = np.where(self.rank_of_expert == rank, counts, 0)
            tokens[rank] = mine.sum()
            part = BatchShape(mb.request_ids, mb.num_query_tokens, mb.num_context_tokens,
                              mb.num_logit_tokens, expert_tokens=mine)
            totals = self.engine.op_totals(templates, part, self.sharded.dtype_bytes)
            if float(totals.sum()) > best:
                best, slowest = float(totals.sum()), totals
        self.last_rank_tokens = tokens
        self.iteration_rank_tokens = (tokens.copy() if self.iteration_rank_tokens is None
                                      else self.iteration_rank_tokens + tokens)
        layer = layer.copy()
        layer[list(self._experts)] = slowest
        return layer

    def _attention_by_rank(self, mb: BatchShape) -> tuple[tuple[float | None, ...], np.ndarray]:
        """Per TP rank, its requests' attention seconds (all heads; None: no
        requests), and the per-op seconds summed over ranks."""
        templates = self._attention_templates
        out: list[float | None] = [None] * self.layout.tp
        per_op = np.zeros(len(templates))
        ranks = self.layout.attention_ranks(mb)
        for rank in np.unique(ranks).tolist():  # only ranks that hold requests
            totals = self.engine.op_totals(templates, subset(mb, ranks == rank),
                                           self.template.dtype_bytes)
            out[rank] = float(sum(totals.tolist()))
            per_op += totals
        return tuple(out), per_op
