"""The graph converter for NPU + PIM systems (the paper's mapping step 3).

It lays out each micro-batch's embedding, pipeline transfers and LM head as
:class:`~llmsim_nb.graph.builder.GraphConverter` does, but a decoder layer
comes from the micro-batch's :class:`~llmsim_nb.engines.op_schedule.OperatorSchedule`:
its tasks are repeated over the stage's layers, scheduled greedily as a whole
(so sub-batches overlap across layer boundaries too) and laid out one node
per task in schedule order (so the network's "lowest id first" rule follows
the greedy schedule). With layers of several kinds (dense and MoE layers) each
layer of the stage brings its kind's program
(``HeteroMicroBatchTiming.kind_schedules``), chained in layer order.

Where a PIM task runs:

- ``local``: on its NPU's device as compute unit 1, concurrent with the NPU
  (unit 0); with a single row buffer (blocked mode) on unit 0, serialised
  with the NPU.
- ``pool``: on the PIM device serving the NPU (``pim_of[npu] = (device,
  unit)``; the unit is the NPU's channel share when several NPUs share one
  PIM device). Every dependency between an NPU-side and a PIM-side task
  becomes a SEND on the producer's device and a RECV on the consumer's, of the
  producer's output bytes scaled to the consumer's share of tokens (the
  queries, keys and values of decode requests go to the PIM with the new
  K/V appended there; scores / contexts come back).

Ranks are symmetric here (one representative per stage): under heads
placement they are; under selective batching the program already holds the
slowest rank's attention (see :mod:`llmsim_nb.engines.hetero`).
"""

from __future__ import annotations

from ..engines.op_schedule import Task, chain_layers, repeat_layers, schedule_tasks
from ..engines.stack import IterationTrace
from ..models.template import BlockTemplate
from ..parallel.layout import ParallelLayout
from .builder import GraphConverter
from .nodes import CollectiveType, ExecutionGraph, NodeType

PLACEMENTS = ("local", "pool")


class HeteroGraphConverter(GraphConverter):
    """Builds execution graphs from :class:`~llmsim_nb.engines.hetero.HeteroStack` traces.

    Parameters
    ----------
    layout : ParallelLayout
    template : BlockTemplate
        The per-device (sharded) template.
    placement : {"local", "pool"}
    pim_of : dict of int to (int, int), optional
        ``pool``: NPU device -> (PIM device, unit).
    num_devices : int, optional
        Devices of the system (NPUs and, for a pool, PIM devices).
    """

    def __init__(self, layout: ParallelLayout, template: BlockTemplate, *,
                 placement: str = "local", pim_of: dict[int, tuple[int, int]] | None = None,
                 num_devices: int | None = None, full_graph: bool = False) -> None:
        super().__init__(layout, template, full_graph=full_graph)
        if placement not in PLACEMENTS:
            raise ValueError(f"placement={placement!r} is not one of {list(PLACEMENTS)}")
        if placement == "pool":
            missing = [d for d in range(layout.num_devices) if d not in (pim_of or {})]
            if missing:
                raise ValueError(f"pool placement needs a PIM device for every NPU; "
                                 f"none for NPUs {missing[:8]}")
        self.placement = placement
        self.pim_of = dict(pim_of or {})
        self.num_devices = layout.num_devices if num_devices is None else num_devices
        self._blocked = False  # set per micro-batch from its schedule

    def _rank_classes(self, trace: IterationTrace) -> list[list[int]]:
        if self.full_graph:
            return [[i] for i in range(self.layout.tp)]
        return [list(range(self.layout.tp))]

    def build(self, trace: IterationTrace, evicted_bytes: float = 0.0,
              reloaded_bytes: float = 0.0) -> ExecutionGraph:
        g = super().build(trace, evicted_bytes, reloaded_bytes)
        g.num_devices = self.num_devices
        if self.placement == "pool":
            for rep, members in list(g.classes.items()):
                if rep in self.pim_of:
                    pim = self.pim_of[rep][0]
                    devices = tuple(sorted({self.pim_of[m][0] for m in members}))
                    g.classes.setdefault(pim, devices)
                    g.multiplicity.setdefault(pim, len(devices))
        return g

    # ------------------------------------------------------------ layer
    def _where(self, task: Task, r: int) -> tuple[int, int]:
        """(device, unit) that runs ``task`` for NPU ``r``."""
        if task.unit != "pim":
            return r, 0
        if self.placement == "pool":
            return self.pim_of[r]
        return (r, 0) if self._blocked else (r, 1)

    def _layer(self, g, mb, j, s, layer, ranks, prev, cum, runs=None) -> None:
        """On a stage's first layer, lay out all its layers from one stage schedule."""
        schedule = getattr(mb, "schedule", None)
        if schedule is None:
            return super()._layer(g, mb, j, s, layer, ranks, prev, cum)
        first = self.layout.first_layer(s)
        if layer != first:
            return None  # laid out with the stage's first layer
        count = self.layout.stage_layers[s]
        kinds = getattr(mb, "kind_schedules", ())
        if kinds:  # layers of several kinds: each layer runs its kind's program
            tasks = chain_layers([kinds[self.template.kind_of(first + i)].tasks
                                  for i in range(count)])
        else:
            tasks = repeat_layers(schedule.tasks, count)
        plan = schedule_tasks(tasks, blocked=schedule.blocked)
        self._blocked = schedule.blocked
        group = tuple(self.layout.stage_devices(s))
        last_of = _last_tasks(tasks)
        for r in ranks:
            ids: dict[int, int] = {}
            where: dict[int, tuple[int, int]] = {}
            for i in plan.order:
                t = tasks[i]
                dev, unit = self._where(t, r)
                deps: list[int] = [] if t.deps else list(prev[r])
                for d in t.deps:
                    src = where[d][0]
                    deps.append(self._transfer(g, tasks[d], t, ids[d], src, dev, first + t.layer,
                                               s, j) if src != dev else ids[d])
                at = first + t.layer
                tag = dict(layer=at, stage=s, micro_batch=j, op=t.name)
                name = f"L{at}.{t.name}.sb{t.sub_batch}.mb{j}"
                if t.unit == "net":
                    ids[i] = g.add(NodeType.COMM_COLL, name, r, deps,
                                   collective=CollectiveType(t.collective), group=group,
                                   size=t.size, **tag)
                else:
                    ids[i] = g.add(NodeType.COMP, name + (".pim" if t.unit == "pim" else ""),
                                   dev, deps, duration=t.duration, unit=unit, **tag)
                where[i] = (dev, unit)
            # Every sub-batch's last op; a chain ending on a pooled PIM returns first.
            ends = [self._transfer(g, tasks[i], None, ids[i], where[i][0], r,
                                   first + tasks[i].layer, s, j)
                    if where[i][0] != r else ids[i] for b in last_of for i in b]
            prev[r] = sorted(ends) if ends else prev[r]
        return None

    def _transfer(self, g, src_task: Task, dst_task: Task | None, dep: int, src: int,
                  dst: int, layer: int, s: int, j: int) -> int:
        """SEND ``src -> dst`` of ``src_task``'s output for ``dst_task``; the RECV's id."""
        size = src_task.out_bytes
        if dst_task is not None and src_task.token_share > 0:
            size *= min(1.0, dst_task.token_share / src_task.token_share)
        label = f"L{layer}.{src_task.name}.sb{src_task.sub_batch}.mb{j}"
        tag = dict(layer=layer, stage=s, micro_batch=j, op=src_task.name)
        send = g.add(NodeType.COMM_SEND, f"{label}.send.d{src}", src, [dep], size=size,
                     peer=dst, **tag)
        return g.add(NodeType.COMM_RECV, f"{label}.recv.d{dst}", dst, [send], size=size,
                     peer=src, **tag)


def _last_tasks(tasks) -> list[list[int]]:
    """Per sub-batch, the tasks nothing depends on (its last op of the last layer)."""
    count = 1 + max((t.sub_batch for t in tasks), default=0)
    has_successor = set()
    for t in tasks:
        has_successor.update(t.deps)
    out: list[list[int]] = [[] for _ in range(count)]
    for i, t in enumerate(tasks):
        if i not in has_successor:
            out[t.sub_batch].append(i)
    return out


__all__ = ["HeteroGraphConverter", "PLACEMENTS"]
