"""The discrete-event loop that runs one execution graph.

:func:`execute` is the single loop behind :meth:`Network.run
<llmsim_nb.network.Network.run>` in every network mode; the mode only picks
the :class:`~llmsim_nb.network.link_model.LinkModel` it is given.

Rules
-----
- A node becomes *ready* when all of its dependencies have finished (roots
  are ready at time 0).
- COMP nodes queue on their compute unit (one per device and unit) and run
  one at a time for their duration; when a unit frees up it takes the ready
  node with the lowest id. Ids are program order, so a pipeline stage
  finishes micro-batch ``j`` before it starts ``j + 1``.
- Every other node starts as soon as it is ready. If the link model claims
  it (``node in links.claims``) the model times it
  (:meth:`~llmsim_nb.network.link_model.LinkModel.begin`); otherwise it ends
  after its fixed duration.

Within an instant every event is handled (in ``(tag, node id)`` order, see
:mod:`.link_model`) before idle compute units pick their next node, so a
node made ready at ``t`` competes for its unit with the nodes already queued
and ties go to the lowest id.

Invariant: the clock ``t`` only moves forward: events are taken from a heap,
and nobody pushes an event earlier than the current ``t`` (durations are
``>= 0``; the link model promises the same). Hence ``start <= end`` for every
node and no node starts before its dependencies end.
"""

from __future__ import annotations

import heapq
from typing import Any

from .link_model import FIXED_END, LinkModel


def execute(succ: list[list[int]], indeg: list[int], dur: list[float], device: list[Any],
            is_comp: list[bool], links: LinkModel) -> tuple[list[float], list[float]]:
    """Run a graph given as flat per-node lists.

    Parameters
    ----------
    succ : list of list of int
        Successors of each node (the nodes that list it as a dependency).
    indeg : list of int
        Unfinished dependencies of each node; consumed (counted down).
    dur : list of float
        Fixed duration of each node, seconds (used unless ``links`` claims it).
    device : list
        Compute unit of each COMP node (a device id, or ``(device, unit)``);
        the device of the others.
    is_comp : list of bool
        Whether each node is a COMP node.
    links : LinkModel
        Times the transfers it claims.

    Returns
    -------
    start, end : list of float
        Seconds from the start of the graph, indexed by node id.
    """
    n = len(dur)
    start = [0.0] * n
    end = [0.0] * n
    heap: list = []                  # (time, tag, node, version)
    push, pop = heapq.heappush, heapq.heappop
    queues: dict[Any, list] = {}     # compute unit -> heap of (id, id) of its ready COMP nodes
    running: dict[Any, bool] = {}    # compute unit -> busy
    touched: set = set()             # units that may have to pick a node at the end of the instant
    claims, begin, on_event = links.claims, links.begin, links.on_event

    def make_ready(j: int, t: float) -> None:
        if is_comp[j]:
            unit = device[j]
            push(queues.setdefault(unit, []), (j, j))
            touched.add(unit)
            return
        start[j] = t
        if j in claims:
            begin(j, t, heap)
        else:
            push(heap, (t + dur[j], FIXED_END, j, 0))

    # Roots are ready at 0.0, so a root with a fixed duration ends at
    # 0.0 + dur, which is dur bit for bit (only a duration of -0.0 would differ).
    for j in range(n):
        if indeg[j] == 0:
            make_ready(j, 0.0)
    t = 0.0
    while True:
        # Idle units take their lowest-id ready node; a unit's start time is
        # the instant it became free (or its node became ready).
        for unit in touched:
            if not running.get(unit):
                q = queues.get(unit)
                if q:
                    _, j = pop(q)
                    start[j] = t
                    running[unit] = True
                    push(heap, (t + dur[j], FIXED_END, j, 0))
        touched.clear()
        if not heap:
            break
        t = heap[0][0]
        while heap and heap[0][0] == t:
            _, tag, i, version = pop(heap)
            if tag != FIXED_END and not on_event(tag, i, version, t, heap):
                continue            # the link model's own bookkeeping; i goes on
            # node i is done at t
            end[i] = t
            if is_comp[i]:
                running[device[i]] = False
                touched.add(device[i])
            for j in succ[i]:
                indeg[j] -= 1
                if indeg[j] == 0:
                    # make_ready(j, t), inlined and kept identical: a call per
                    # node costs about a tenth of an unloaded run.
                    if is_comp[j]:
                        unit = device[j]
                        push(queues.setdefault(unit, []), (j, j))
                        touched.add(unit)
                    else:
                        start[j] = t
                        if j in claims:
                            begin(j, t, heap)
                        else:
                            push(heap, (t + dur[j], FIXED_END, j, 0))
    return start, end


__all__ = ["execute"]
