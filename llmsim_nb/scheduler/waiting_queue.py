"""The waiting queue of the vLLM V1 scheduler: FCFS or by priority.

``fcfs``: arrival order, and a preempted request goes back to the front (vLLM's
``prepend_request``). ``priority``: the lowest ``(priority, arrival_at)`` first
(vLLM's ``PriorityRequestQueue``, a heap), a preempted request by its key.
"""

from __future__ import annotations

import heapq
from collections import deque


class WaitingQueue:
    """Request ids waiting for admission.

    Parameters
    ----------
    by_priority : bool
        Order by ``(priority, arrival_at, id)`` instead of FCFS.
    """

    def __init__(self, by_priority: bool) -> None:
        self.by_priority = by_priority
        self._fifo: deque[int] = deque()
        self._heap: list[tuple[int, float, int]] = []

    def __len__(self) -> int:
        return len(self._heap) if self.by_priority else len(self._fifo)

    def push(self, i: int, priority: int, arrival_at: float, front: bool = False) -> None:
        """Queue request ``i`` (at the front with ``front``, FCFS only)."""
        if self.by_priority:
            heapq.heappush(self._heap, (priority, arrival_at, i))
        elif front:
            self._fifo.appendleft(i)
        else:
            self._fifo.append(i)

    def peek(self) -> int | None:
        """The next request to admit, or None."""
        if self.by_priority:
            return self._heap[0][2] if self._heap else None
        return self._fifo[0] if self._fifo else None

    def pop(self) -> int:
        return heapq.heappop(self._heap)[2] if self.by_priority else self._fifo.popleft()

    def ids(self) -> list[int]:
        """Every waiting id in admission order."""
        return [i for _, _, i in sorted(self._heap)] if self.by_priority else list(self._fifo)
