"""The heterogeneous execution-engine stack: NPU + PIM, mapping and sub-batches.

This is Algorithm 1 of the paper for a system with NPUs and PIMs. For each
micro-batch of an iteration:

1. ``Split_batch``: cut it into ``sub_batches`` sub-batches balanced on a
   criterion (:mod:`llmsim_nb.parallel.partition`); one sub-batch when
   interleaving is off, so the batch runs serially;
2. ``Profile_ops`` / ``Map_ops``: build one decoder layer's operators of each
   sub-batch on one device's shard and let the mapping policy
   (:mod:`llmsim_nb.engines.mapping`) send each op instance to the NPU or the
   PIM; an op split between them becomes two tasks that run concurrently;
3. ``Execution_engine``: time each task on its engine;
4. ``Batch_schedule``: order one layer's tasks of all sub-batches with the
   greedy scheduler (:mod:`llmsim_nb.engines.op_schedule`).

The result is a :class:`HeteroMicroBatchTiming` per micro-batch carrying that
:class:`~llmsim_nb.engines.op_schedule.OperatorSchedule`; the heterogeneous
graph converter (:mod:`llmsim_nb.graph.hetero`) lays it out layer by layer.
Embedding and LM head stay on the NPU, once per micro-batch.

Collectives become ``"net"`` tasks of each sub-batch: an all-reduce after each
row-parallel GEMM (``attention="heads"``), or all-to-alls around attention
(``attention="requests"``, Orca's selective batching). Under selective
batching each rank computes the attention of its own requests, and the
all-to-all after attention waits for the slowest rank; the layer program
holds that rank's attention (per sub-batch, the rank whose mapped attention
tasks take longest), so one representative program times the whole group.

Mixture-of-experts models: the routing model draws the tokens each expert
receives once per sub-batch (one draw per micro-batch without sub-batching,
exactly the plain stack's); the micro-batch's record is the sum, which is
distributed as one draw over its tokens since tokens route independently.
The routed-expert ops (``OpTemplate.num_experts``: the grouped GEMMs and the
activation between them) run on the NPU whatever the mapping policy: their
weights are in NPU memory (the PIM holds the KV cache), and the PIM's GEMV
model would time a grouped kernel as GEMVs of one expert's matrix. Under
expert parallelism each sub-batch's program holds the expert ops of the rank
whose experts take longest (the all-reduce after them waits for it), as the
plain stack does. Layers of several kinds (dense and MoE) get one program per
kind, each running its kind's ops of the block (``BlockTemplate.layer_kinds``)
from the same op timings; the converter chains them in the stage's layer order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..models.ops import BatchShape, Op, OpKind
from ..models.template import BlockTemplate
from ..parallel.layout import ParallelLayout, subset
from ..parallel.partition import split_batch
from ..parallel.sharding import row_parallel_ops
from .base import Engine, OpTiming
from .mapping import MappingPolicy, apply_policy, take
from .op_schedule import OperatorSchedule, Task, schedule_tasks
from .stack import ExecutionStack, MicroBatchTiming, bad_latency


@dataclass(frozen=True, slots=True)
class HeteroMicroBatchTiming(MicroBatchTiming):
    """A micro-batch timed on NPU + PIM.

    Attributes
    ----------
    schedule : OperatorSchedule or None
        One decoder layer's tasks of every sub-batch, greedily scheduled (with
        layers of several kinds: kind 0's).
    sub_batches : tuple of BatchShape
    kind_schedules : tuple of OperatorSchedule
        Layers of several kinds: per kind, one such layer's schedule (empty
        for a model of one kind: ``schedule`` serves every layer).
    """

    schedule: OperatorSchedule | None = None
    sub_batches: tuple[BatchShape, ...] = ()
    kind_schedules: tuple[OperatorSchedule, ...] = ()


def _total(timing: OpTiming) -> float:
    return float(timing.latency.sum())


class HeteroStack(ExecutionStack):
    """Times iterations on NPUs with PIMs (see the module docstring).

    Parameters
    ----------
    engine : Engine
        The NPU engine.
    template : BlockTemplate
        The whole model's template (sharded here).
    layout : ParallelLayout
    pim : Engine
        The PIM engine each NPU's attention is timed on (its share of a pooled
        PIM device, or its local PIM).
    policy : callable
        Mapping policy, ``policy(op) -> bool array`` (True = PIM).
    sub_batches : int
        Sub-batches per micro-batch (1 = serial, no interleaving).
    criterion : {"memory", "compute"}
        What the sub-batches balance.
    blocked : bool
        NPU and PIM cannot compute at once (single row buffer).
    routing : RoutingModel, optional
        Mixture-of-experts models: the tokens-per-expert draw
        (:mod:`llmsim_nb.models.expert_routing`).
    rng : numpy.random.Generator, optional
        The routing draws' generator (needed with ``routing``).
    expert_parallel : bool
        Each tensor-parallel rank holds whole experts (``expert_placement``:
        "contiguous" or "round_robin") rather than a slice of every one.
    expert_placement : str
    """

    def __init__(self, engine: Engine, template: BlockTemplate, layout: ParallelLayout, *,
                 pim: Engine, policy: MappingPolicy, sub_batches: int = 1,
                 criterion: str = "memory", blocked: bool = False, routing=None,
                 rng: np.random.Generator | None = None, expert_parallel: bool = False,
                 expert_placement: str = "contiguous") -> None:
        super().__init__(engine, template, layout, routing, rng,
                         expert_parallel=expert_parallel, expert_placement=expert_placement)
        if isinstance(sub_batches, bool) or not isinstance(sub_batches, int) or sub_batches < 1:
            raise ValueError(f"HeteroStack.sub_batches must be an integer >= 1, "
                             f"got {sub_batches!r}")
        self.pim = pim
        self.policy = policy
        self.sub_batches = sub_batches
        self.criterion = criterion
        self.blocked = blocked
        block = self.sharded.block
        self._rows = row_parallel_ops(self.sharded)
        self._hidden = next((t.weight_n for t in block if t.name in self._rows),
                            max(t.width for t in block))
        first = self._attention[0] if self._attention else None
        qkv = next((t for t in reversed(block[:first]) if t.kind is OpKind.GEMM), None) \
            if first is not None else None
        self._qkv_width = qkv.weight_n if qkv else self._hidden
        attn = block[first] if first is not None else None
        self._context_width = attn.num_heads * attn.head_dim if attn else self._hidden
        self._selective = layout.attention == "requests" and layout.tp > 1
        # Per kind of layer, the block ops it runs (None: one kind, every op).
        sharded = self.sharded
        self._kind_runs = ([tuple(bool(x) for x in sharded.kind_mask(k))
                            for k in range(sharded.num_kinds)] if sharded.layer_kinds else None)
        self._pinned = frozenset(self._experts)
        self._routed: tuple[BatchShape, tuple[BatchShape, ...]] | None = None

    # ------------------------------------------------------------ tasks
    def _op_tasks(self, op: Op, npu_only: bool = False) -> list[tuple[str, Op, float, float]]:
        """``(unit, part, seconds, token share)`` of the NPU and PIM parts of ``op``.

        The token share is the part's fraction of the op's rows (per-request
        ops: its requests' query rows), which sizes transfers to a pooled PIM.
        ``npu_only``: the op runs wholly on the NPU, the policy is not asked
        (routed experts, see the module docstring).
        """
        mask = (np.zeros(op.num_instances, dtype=bool) if npu_only
                else apply_policy(self.policy, op))
        rows = float(op.m.sum())
        parts: list[tuple[str, Op, float, float]] = []
        for unit, sel, engine in (("npu", ~mask, self.engine), ("pim", mask, self.pim)):
            if not sel.any():
                continue
            part = op if sel.all() else take(op, sel)
            share = float(part.m.sum()) / rows if rows > 0 else 1.0
            seconds = _total(engine.time_op(part))
            if not 0.0 <= seconds < math.inf:  # NaN fails too
                raise bad_latency(engine.name, op.name, f"decoder layer, on the {unit.upper()}",
                                  seconds, f"{part.num_instances} instance(s) of "
                                  f"{int(part.m.sum())} row(s) in all")
            parts.append((unit, part, seconds, share))
        return parts

    def _attention_ops(self, sb: BatchShape) -> list[Op] | None:
        """Selective batching: the attention ops of the rank whose attention is slowest."""
        if not self._selective:
            return None
        dt = self.template.dtype_bytes
        templates = [self.template.block[i] for i in self._attention]
        ranks = self.layout.attention_ranks(sb)
        best, best_time = None, -1.0
        for rank in np.unique(ranks).tolist():
            part = subset(sb, ranks == rank)
            ops = [t.instantiate(part, dt) for t in templates]
            seconds = sum(p[2] for op in ops for p in self._op_tasks(op))
            if seconds > best_time:
                best, best_time = ops, seconds
        return best

    def _expert_ops(self, sb: BatchShape) -> list[Op] | None:
        """Expert parallelism: the routed-expert ops of the rank whose experts'
        tokens take longest in sub-batch ``sb`` (ties: the lower rank)."""
        if not self.expert_parallel:
            return None
        dt = self.sharded.dtype_bytes
        best, best_time = None, -1.0
        for rank in range(self.layout.tp):
            mine = np.where(self.rank_of_expert == rank, sb.expert_tokens, 0)
            part = BatchShape(sb.request_ids, sb.num_query_tokens, sb.num_context_tokens,
                              sb.num_logit_tokens, expert_tokens=mine)
            ops = [t.instantiate(part, dt) for t in self._expert_templates]
            seconds = sum(_total(self.engine.time_op(op)) for op in ops)
            if seconds > best_time:
                best, best_time = ops, seconds
        return best

    def timed_ops(self, parts: list[BatchShape]) -> list[tuple[BatchShape, list]]:
        """Per sub-batch of ``parts``: it and, per block op, ``(op, its NPU / PIM
        parts)`` (:meth:`_op_tasks`): every op timed once, whichever kinds of
        layer run it."""
        dt = self.template.dtype_bytes
        out = []
        for sb in parts:
            ops = [t.instantiate(sb, dt) for t in self.sharded.block]
            for index, replace in ((self._attention, self._attention_ops(sb)),
                                   (self._experts, self._expert_ops(sb))):
                if replace is not None:
                    for i, op in zip(index, replace):
                        ops[i] = op
            out.append((sb, [(op, self._op_tasks(op, i in self._pinned))
                             for i, op in enumerate(ops)]))
        return out

    def layer_tasks(self, parts: list[BatchShape], kind: int | None = None) -> list[Task]:
        """One decoder layer's tasks for each sub-batch in ``parts`` (dependency order).

        ``kind``: a kind of layer of the block (only its ops and their
        collectives); None, or a model of one kind: every op.
        """
        return self.program(self.timed_ops(parts), kind)

    def program(self, timed: list[tuple[BatchShape, list]], kind: int | None = None
                ) -> list[Task]:
        """The tasks of one layer of kind ``kind`` from :meth:`timed_ops`' ``timed``."""
        dt = self.template.dtype_bytes
        runs = self._kind_runs[kind] if kind is not None and self._kind_runs else None
        on = [i for i in range(len(self.sharded.block)) if runs is None or runs[i]]
        attention = [i for i in self._attention if runs is None or runs[i]]
        first_attention = attention[0] if attention else -1
        last_attention = attention[-1] if attention else -1
        tasks: list[Task] = []
        for b, (sb, ops) in enumerate(timed):
            tokens = sb.num_tokens
            prev: list[int] = []
            for i in on:
                op, op_parts = ops[i]
                phase = 0 if i <= last_attention else 1
                if self._selective and i == first_attention:
                    prev = [self._net(tasks, "qkv.alltoall", "ALL_TO_ALL", b, prev,
                                      tokens * self._qkv_width * dt, phase)]
                here = []
                for unit, part, seconds, share in op_parts:
                    tasks.append(Task(op.name, i, b, unit, seconds, tuple(prev),
                                      float(part.bytes_written.sum()), share, phase=phase))
                    here.append(len(tasks) - 1)
                prev = here
                if self._selective and i == last_attention:
                    prev = [self._net(tasks, "context.alltoall", "ALL_TO_ALL", b, prev,
                                      tokens * self._context_width * dt, phase)]
                elif self.layout.tp > 1 and op.name in self._rows:
                    prev = [self._net(tasks, f"{op.name}.allreduce", "ALL_REDUCE", b, prev,
                                      tokens * self._hidden * dt, phase)]
        return tasks

    @staticmethod
    def _net(tasks: list[Task], name: str, kind: str, b: int, prev: list[int],
             size: float, phase: int) -> int:
        tasks.append(Task(name, -1, b, "net", 0.0, tuple(prev), float(size), 1.0, kind,
                          float(size), phase=phase))
        return len(tasks) - 1

    # ------------------------------------------------------------ iteration
    def _split(self, mb: BatchShape) -> list[BatchShape]:
        # Selective batching: split every rank's requests, so each sub-batch keeps
        # all ranks' PIMs busy (parallel.partition.partition_within_groups).
        groups = self.layout.attention_ranks(mb) if self._selective else None
        return (split_batch(mb, self.sharded, self.sub_batches, self.criterion, groups)
                if self.sub_batches > 1 else [mb])

    def _route(self, mb: BatchShape) -> BatchShape:
        """``mb`` with its tokens per expert: one draw per sub-batch (see the
        module docstring); the sub-batches are kept for :meth:`_time_layer`."""
        parts = self._split(mb)
        if len(parts) == 1:  # the plain stack's one draw per micro-batch
            routed = super()._route(mb)
            self._routed = (routed, (routed,))
            return routed
        draws = [self.routing.draw(p.num_tokens, 1, self.rng)[0] for p in parts]
        drawn = np.sum(draws, axis=0)
        self.last_expert_tokens = drawn
        self.iteration_expert_tokens = (drawn.copy() if self.iteration_expert_tokens is None
                                        else self.iteration_expert_tokens + drawn)
        routed = BatchShape(mb.request_ids, mb.num_query_tokens, mb.num_context_tokens,
                            mb.num_logit_tokens, expert_tokens=drawn)
        self._routed = (routed, tuple(
            BatchShape(p.request_ids, p.num_query_tokens, p.num_context_tokens,
                       p.num_logit_tokens, expert_tokens=d) for p, d in zip(parts, draws)))
        return routed

    def _record_rank_tokens(self, mb: BatchShape) -> None:
        """Expert parallelism: the routed rows each rank holds, as the plain stack records."""
        tokens = np.bincount(self.rank_of_expert, weights=mb.expert_tokens,
                             minlength=self.layout.tp).astype(np.int64)
        self.last_rank_tokens = tokens
        self.iteration_rank_tokens = (tokens.copy() if self.iteration_rank_tokens is None
                                      else self.iteration_rank_tokens + tokens)

    def _time_layer(self, mb: BatchShape, emb: np.ndarray,
                    head: np.ndarray) -> tuple[HeteroMicroBatchTiming, np.ndarray]:
        """One decoder layer on NPU + PIM: sub-batches scheduled across both units
        (per kind of layer, with its ops)."""
        routed, self._routed = self._routed, None
        parts = list(routed[1]) if routed is not None and routed[0] is mb else self._split(mb)
        if self.expert_parallel:
            self._record_rank_tokens(mb)
        timed = self.timed_ops(parts)
        # Each op's seconds in a layer that runs it (the same in every kind),
        # summed over sub-batches; the stack multiplies by the layers that run it.
        per_op = np.zeros(len(self.sharded.block))
        for _, ops in timed:
            for i, (_, op_parts) in enumerate(ops):
                for part in op_parts:
                    per_op[i] += part[2]
        kinds: tuple[OperatorSchedule, ...] = ()
        if self._kind_runs is None:
            schedule = schedule_tasks(self.program(timed), blocked=self.blocked)
        else:
            kinds = tuple(schedule_tasks(self.program(timed, k), blocked=self.blocked)
                          for k in range(len(self._kind_runs)))
            schedule = kinds[0]
        return (HeteroMicroBatchTiming(mb, emb, per_op, head, (), schedule, tuple(parts),
                                       kinds), per_op)


__all__ = ["HeteroMicroBatchTiming", "HeteroStack"]
