"""Operator scheduling across heterogeneous units (Algorithm 1, ``Batch_schedule``).

After mapping, one decoder layer of every sub-batch is a small DAG of
:class:`Task` s, each on a unit: ``"npu"``, ``"pim"`` or ``"net"`` (a
collective, timed later by the network). :func:`schedule_tasks` orders them
with a greedy list scheduler: whenever a unit is free it starts, among the
tasks whose dependencies have finished, the one with the smallest priority
key ``(2 * layer + phase + sub_batch, sub_batch, index)``, where ``phase`` is 0
up to a layer's attention and 1 after it. Every unit runs one task at a time; ``"net"`` tasks take no unit here (their cost is the
network's). The key offsets sub-batch ``b`` by ``b`` half layers: sub-batch
0's attention pairs with sub-batch 1's FFN and next QKV projection, so while
the NPU runs one sub-batch's GEMMs the PIM runs the other's attention
(NeuPIMs' sub-batch interleaving; the original hard-codes the same phase
shift when it merges two sub-batch traces), and neither sub-batch runs away
from the other (which would leave the last layers of one alone).

:func:`repeat_layers` tiles one layer's tasks over a pipeline stage's layers
(each sub-batch's next layer after its previous one; :func:`chain_layers`
does so for layers of several kinds, each with its kind's tasks); the graph
converter schedules a whole stage that way and lays the nodes out in schedule
order, and the network executes them with the same rule (lowest id among ready
nodes per unit).

Invariants (tested): a task starts no earlier than each dependency ends, and
two tasks on one unit never overlap.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

UNITS = ("npu", "pim", "net")


@dataclass(frozen=True, slots=True)
class Task:
    """One operator (or the part of it mapped to one unit) of one sub-batch.

    Attributes
    ----------
    name : str
        Op label (``"attn_score"``) or collective label.
    op : int
        Index of the op in the decoder block; -1 for a collective.
    sub_batch : int
    unit : {"npu", "pim", "net"}
    duration : float
        Seconds on its unit (0 for ``"net"``: the network times collectives).
    deps : tuple of int
        Indices (into the task list) of tasks that must finish first; all
        smaller than the task's own index.
    out_bytes : float
        Bytes the task produces (what a transfer to another device carries).
    token_share : float
        Fraction of the sub-batch's tokens the task covers (a decode-only part
        of an attention op covers fewer than the whole sub-batch).
    collective : str
        For ``"net"`` tasks, the collective (``"ALL_REDUCE"``, ``"ALL_TO_ALL"``).
    size : float
        For ``"net"`` tasks, the collective's bytes per device.
    layer : int
        Layer of the task relative to the first one scheduled together.
    phase : int
        0 up to and including the layer's attention, 1 after it.
    """

    name: str
    op: int
    sub_batch: int
    unit: str
    duration: float
    deps: tuple[int, ...] = ()
    out_bytes: float = 0.0
    token_share: float = 1.0
    collective: str = ""
    size: float = 0.0
    layer: int = 0
    phase: int = 0


@dataclass(frozen=True, eq=False)
class OperatorSchedule:
    """When each task of one layer runs under the greedy scheduler.

    Attributes
    ----------
    tasks : tuple of Task
    start, end : ndarray of float64
        Seconds from the layer's start, per task.
    order : tuple of int
        Task indices by start time (ties: index): the trace order.
    blocked : bool
        NPU and PIM shared one unit (a single-row-buffer PIM, "blocked mode").
    """

    tasks: tuple[Task, ...]
    start: np.ndarray
    end: np.ndarray
    order: tuple[int, ...]
    blocked: bool = False

    @property
    def makespan(self) -> float:
        return float(self.end.max()) if len(self.end) else 0.0

    def busy(self, unit: str) -> float:
        """Seconds of work on ``unit``."""
        return float(sum(t.duration for t in self.tasks if t.unit == unit))

    @property
    def num_sub_batches(self) -> int:
        return 1 + max((t.sub_batch for t in self.tasks), default=0)


def resource(unit: str, blocked: bool) -> str | None:
    """The unit a task occupies: PIM work occupies the NPU's in blocked mode; net none."""
    if unit == "net":
        return None
    return "npu" if blocked and unit == "pim" else unit


def schedule_tasks(tasks, *, blocked: bool = False) -> OperatorSchedule:
    """Greedy list schedule of ``tasks`` (see the module docstring).

    Raises
    ------
    ValueError
        A task on an unknown unit, a negative duration, or a dependency that
        does not point to an earlier task.
    """
    tasks = tuple(tasks)
    n = len(tasks)
    succ: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for i, t in enumerate(tasks):
        if t.unit not in UNITS:
            raise ValueError(f"task {i} ({t.name!r}) is on unit {t.unit!r}, not one of "
                             f"{list(UNITS)}")
        if not t.duration >= 0:
            raise ValueError(f"task {i} ({t.name!r}) has duration {t.duration!r} < 0")
        for d in t.deps:
            if not 0 <= d < i:
                raise ValueError(f"task {i} ({t.name!r}) depends on {d}, not an earlier task")
            succ[d].append(i)
        indeg[i] = len(t.deps)
    start = np.zeros(n)
    end = np.zeros(n)
    queues: dict[str, list] = {}
    busy_until: dict[str, float] = {}
    events: list = []  # (time, task) completions
    for i in range(n):
        if indeg[i] == 0:
            _make_ready(i, 0.0, tasks, blocked, queues, events, start, end)
    t = 0.0
    while True:
        for unit, q in queues.items():
            if q and busy_until.get(unit, 0.0) <= t:
                i = heapq.heappop(q)[-1]
                start[i] = t
                end[i] = t + tasks[i].duration
                busy_until[unit] = end[i]
                heapq.heappush(events, (end[i], i))
        if not events:
            break
        t = events[0][0]
        while events and events[0][0] == t:
            _, i = heapq.heappop(events)
            for j in succ[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    _make_ready(j, t, tasks, blocked, queues, events, start, end)
    order = tuple(sorted(range(n), key=lambda i: (start[i], i)))
    start.setflags(write=False)
    end.setflags(write=False)
    return OperatorSchedule(tasks, start, end, order, blocked)


def _make_ready(i, t, tasks, blocked, queues, events, start, end) -> None:
    unit = resource(tasks[i].unit, blocked)
    if unit is None:  # a collective: no unit, zero time here
        start[i] = end[i] = t
        heapq.heappush(events, (t, i))
        return
    t = tasks[i]
    heapq.heappush(queues.setdefault(unit, []),
                   (2 * t.layer + t.phase + t.sub_batch, t.sub_batch, i))


def repeat_layers(tasks, layers: int) -> tuple[Task, ...]:
    """One layer's ``tasks`` repeated ``layers`` times, layer-major.

    A task with no dependencies (the first op of a sub-batch) depends, from the
    second layer on, on the previous layer's tasks of its sub-batch that no
    other task of that layer depends on (the sub-batch's last op).
    """
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers!r}")
    tasks = tuple(tasks)
    return chain_layers([tasks] * layers)


def chain_layers(programs) -> tuple[Task, ...]:
    """Layer programs run one after another: ``programs[l]`` is layer ``l``'s tasks.

    Layers of several kinds (a dense FFN or routed experts) each bring their
    kind's program; the chaining is :func:`repeat_layers`': a sub-batch's first
    task of layer ``l > 0`` depends on its last tasks of layer ``l - 1`` (those
    no other task of that layer depends on). Every program must hold the same
    sub-batches.
    """
    programs = [tuple(p) for p in programs]
    if not programs:
        raise ValueError("chain_layers needs at least one layer program")
    lasts: dict[int, dict[int, list[int]]] = {}  # by id(program): sub-batch -> last tasks
    out: list[Task] = []
    base = 0
    previous: dict[int, tuple[int, ...]] = {}
    for layer, tasks in enumerate(programs):
        last = lasts.get(id(tasks))
        if last is None:
            has_successor = {d for t in tasks for d in t.deps}
            last = {}
            for i, t in enumerate(tasks):
                if i not in has_successor:
                    last.setdefault(t.sub_batch, []).append(i)
            lasts[id(tasks)] = last
        for t in tasks:
            if t.deps:
                deps = tuple(base + d for d in t.deps)
            else:
                deps = previous.get(t.sub_batch, ())
            # Positional construction: ~5x faster than dataclasses.replace here.
            out.append(Task(t.name, t.op, t.sub_batch, t.unit, t.duration, deps, t.out_bytes,
                            t.token_share, t.collective, t.size, layer, t.phase))
        previous = {b: tuple(base + i for i in idx) for b, idx in last.items()}
        base += len(tasks)
    return tuple(out)


__all__ = ["OperatorSchedule", "Task", "UNITS", "chain_layers", "repeat_layers", "resource",
           "schedule_tasks"]
