"""What a router may know of the instances: each one's state after its iterations.

A router deciding at time ``t`` with staleness ``s`` sees an instance as it
was at ``t - s``: after the last of its iterations that had *ended* by then
(an iteration's effects -- tokens emitted, requests finished, blocks freed --
land at its end). :class:`StateBoard` keeps every instance's per-iteration
snapshots and the times requests were routed to it, and answers with a
:class:`~.pool_view.PoolView` as of ``t - s``. Requests routed to an instance
count as outstanding from their arrival at it. Every figure is as of ``t -
s``, the router's count of outstanding requests too: a router that reads
lagging metrics forgets what it sent in the last ``s`` seconds and sends runs
of requests to the instance that looked least loaded (the herd effect of
stale load information, Mitzenmacher, "How useful is old information?", IEEE
TPDS 2000); tutorial 12 shows it.

How it stays cheap with many instances: a snapshot or a routed request not
yet visible is *pending*; each instance with something pending has one entry
(the time of its earliest pending item) in a heap, so :meth:`observe` touches
only the instances that changed since the last decision, and the columns of
the view are the board's own lists, updated in place.

Invariants: an instance's snapshot times never decrease (its clock never goes
back), and observations come at non-decreasing times (arrivals are routed in
order), so a snapshot once visible stays the current one until a later one
becomes visible, and older ones are dropped. ``num_outstanding[k]`` is
``max(routed requests visible - requests finished at the visible snapshot,
0)``.
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_right
from collections import deque

from .pool_view import PoolView

__all__ = ["StateBoard"]

_INF = math.inf


class StateBoard:
    """Per-iteration snapshots of every instance of a cluster (see the module docstring).

    Parameters
    ----------
    num_blocks : list of int
        Each instance's KV blocks, by instance index.
    """

    __slots__ = ("num_blocks", "num_waiting", "num_running", "num_outstanding",
                 "num_used_blocks", "observed_until", "_finished", "_snaps", "_routed", "_due",
                 "_due_at")

    def __init__(self, num_blocks: list[int]) -> None:
        n = len(num_blocks)
        self.num_blocks = list(num_blocks)
        # The visible state (the empty instance at time 0 until a snapshot shows).
        self.num_waiting = [0] * n
        self.num_running = [0] * n
        self.num_outstanding = [0] * n
        self.num_used_blocks = [0] * n
        self._finished = [0] * n
        # Pending snapshots (time, waiting, running, finished, used blocks), in time order.
        self._snaps: list[deque[tuple[float, int, int, int, int]]] = [deque() for _ in range(n)]
        self._routed: list[list[float]] = [[] for _ in range(n)]  # arrival times, every one
        self._due: list[tuple[float, int]] = []  # (earliest pending time, instance)
        self._due_at = [_INF] * n  # each instance's live heap entry (inf: none)
        #: The latest time observed (-inf before the first decision).
        self.observed_until = -_INF

    def record(self, k: int, at: float, num_waiting: int, num_running: int, num_finished: int,
               num_used_blocks: int) -> None:
        """Instance ``k``'s state after an iteration that ended at ``at``."""
        self._snaps[k].append((at, num_waiting, num_running, num_finished, num_used_blocks))
        if at < self._due_at[k]:
            self._due_at[k] = at
            heapq.heappush(self._due, (at, k))

    def routed(self, k: int, at: float) -> None:
        """A request was routed to instance ``k``, reaching it at ``at``."""
        self._routed[k].append(at)
        if at < self._due_at[k]:
            self._due_at[k] = at
            heapq.heappush(self._due, (at, k))

    def observe(self, at: float) -> None:
        """Bring the visible state of every instance to time ``at``.

        Raises
        ------
        ValueError
            If ``at`` is before an earlier observation (the board keeps only
            the state as of the latest one).
        """
        if at < self.observed_until:
            raise ValueError(f"the instances were observed as of {self.observed_until} s "
                             f"already; a router cannot see them as of the earlier {at} s")
        self.observed_until = at
        due, due_at = self._due, self._due_at
        while due and due[0][0] <= at:
            t, k = heapq.heappop(due)
            if t != due_at[k]:
                continue  # superseded by an earlier entry of the same instance
            due_at[k] = _INF
            snaps = self._snaps[k]
            last = None
            while snaps and snaps[0][0] <= at:
                last = snaps.popleft()
            if last is not None:
                _, self.num_waiting[k], self.num_running[k], self._finished[k], \
                    self.num_used_blocks[k] = last
            routed = self._routed[k]
            seen = bisect_right(routed, at)
            outstanding = seen - self._finished[k]
            self.num_outstanding[k] = 0 if 0 > outstanding else outstanding
            nxt = min(snaps[0][0] if snaps else _INF,
                      routed[seen] if seen < len(routed) else _INF)
            if nxt < _INF:
                due_at[k] = nxt
                heapq.heappush(due, (nxt, k))

    def view(self, pool: list[int], at: float) -> PoolView:
        """The instances of ``pool`` (ascending) as of ``at`` (observed first)."""
        self.observe(at)
        return PoolView(pool, 0.0 if 0.0 > at else at, self.num_waiting, self.num_running,
                        self.num_outstanding, self.num_used_blocks, self.num_blocks)
