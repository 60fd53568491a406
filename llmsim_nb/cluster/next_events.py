"""NextEvents: when each instance of a cluster next has something to do.

The cluster handles the earliest event first (:meth:`Cluster.step`): the
instance whose next iteration starts earliest, ties to the lowest index. An
instance's next event is its :attr:`~llmsim_nb.instance.Instance.next_event_at`,
raised to its own next event while it is idle (it tried and could start
nothing: ``Cluster._idle_until``), or none. Asking every instance at every
event costs a chain of properties per instance; yet an instance's answer
changes only when the instance changes, and in a cluster that is when it runs
or is handed something (a request, the release time of KV it holds), both of
which the cluster sees (after an iteration, and :meth:`Cluster.wake`). So
NextEvents keeps every instance's answer, the cluster calls :meth:`refresh`
at those points, and the earliest is a ``min`` over a list.

Invariant: ``times[k]`` is what asking instance ``k`` would give now (inf
where it has no event; ``has_event[k]`` tells a real inf apart). The cluster
builds one for each call of ``step`` or ``advance`` and drops it after, so an
instance changed by hand between calls cannot leave a stale time behind.
"""

from __future__ import annotations

import math


class NextEvents:
    """Every instance's next event time (see the module docstring).

    Parameters
    ----------
    instances : list of Instance
    idle_until : dict of int to float or None
        The cluster's idle instances: their own next event (None: none until
        something is delivered to them). Read, never written.
    """

    __slots__ = ("instances", "idle_until", "times", "has_event")

    def __init__(self, instances: list, idle_until: dict[int, float | None]) -> None:
        self.instances = instances
        self.idle_until = idle_until
        self.times = [math.inf] * len(instances)
        self.has_event = [False] * len(instances)
        for k in range(len(instances)):
            self.refresh(k)

    def refresh(self, k: int) -> None:
        """Ask instance ``k`` again (it ran, or was handed something)."""
        at = self.instances[k].next_event_at
        if at is not None and k in self.idle_until:
            # It tried at `at` and could start nothing: its own next event.
            idle = self.idle_until[k]
            at = None if idle is None else max(at, idle)
        self.has_event[k] = at is not None
        self.times[k] = math.inf if at is None else at

    def earliest(self) -> tuple[int, float] | tuple[None, None]:
        """The instance whose next event is earliest (ties: the lowest index)
        and that time; ``(None, None)`` when no instance has one."""
        times = self.times
        at = min(times)  # the first smallest, as times.index finds it
        if at != math.inf:
            return times.index(at), at
        if True in self.has_event:  # events at inf itself (no finite one)
            k = self.has_event.index(True)
            return k, times[k]
        return None, None


__all__ = ["NextEvents"]
