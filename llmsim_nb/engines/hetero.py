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
        One decoder layer's tasks of every sub-batch, greedily scheduled.
    sub_batches : tuple of BatchShape
    """

    schedule: OperatorSchedule | None = None
    sub_batches: tuple[BatchShape, ...] = ()


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
    """

    def __init__(self, engine: Engine, template: BlockTemplate, layout: ParallelLayout, *,
                 pim: Engine, policy: MappingPolicy, sub_batches: int = 1,
                 criterion: str = "memory", blocked: bool = False) -> None:
        super().__init__(engine, template, layout)
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

    # ------------------------------------------------------------ tasks
    def _op_tasks(self, op: Op) -> list[tuple[str, Op, float, float]]:
        """``(unit, part, seconds, token share)`` of the NPU and PIM parts of ``op``.

        The token share is the part's fraction of the op's rows (per-request
        ops: its requests' query rows), which sizes transfers to a pooled PIM.
        """
        mask = apply_policy(self.policy, op)
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

    def layer_tasks(self, parts: list[BatchShape]) -> list[Task]:
        """One decoder layer's tasks for each sub-batch in ``parts`` (dependency order)."""
        dt = self.template.dtype_bytes
        tasks: list[Task] = []
        for b, sb in enumerate(parts):
            ops = [t.instantiate(sb, dt) for t in self.sharded.block]
            rank_attention = self._attention_ops(sb)
            if rank_attention is not None:
                for i, op in zip(self._attention, rank_attention):
                    ops[i] = op
            tokens = sb.num_tokens
            prev: list[int] = []
            last_attention = self._attention[-1] if self._attention else -1
            for i, op in enumerate(ops):
                phase = 0 if i <= last_attention else 1
                if self._selective and self._attention and i == self._attention[0]:
                    prev = [self._net(tasks, "qkv.alltoall", "ALL_TO_ALL", b, prev,
                                      tokens * self._qkv_width * dt, phase)]
                here = []
                for unit, part, seconds, share in self._op_tasks(op):
                    tasks.append(Task(op.name, i, b, unit, seconds, tuple(prev),
                                      float(part.bytes_written.sum()), share, phase=phase))
                    here.append(len(tasks) - 1)
                prev = here
                if self._selective and self._attention and i == self._attention[-1]:
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
    def _time_layer(self, mb: BatchShape, emb: np.ndarray,
                    head: np.ndarray) -> tuple[HeteroMicroBatchTiming, np.ndarray]:
        """One decoder layer on NPU + PIM: sub-batches scheduled across both units."""
        parts = split_batch(mb, self.sharded, self.sub_batches, self.criterion) \
            if self.sub_batches > 1 else [mb]
        schedule = schedule_tasks(self.layer_tasks(parts), blocked=self.blocked)
        per_op = np.zeros(len(self.sharded.block))
        for t in schedule.tasks:
            if t.op >= 0:
                per_op[t.op] += t.duration
        return (HeteroMicroBatchTiming(mb, emb, per_op, head, (), schedule, tuple(parts)),
                per_op)


__all__ = ["HeteroMicroBatchTiming", "HeteroStack"]
