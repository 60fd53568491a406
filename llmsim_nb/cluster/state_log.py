"""What a router may know of one instance: its state after each iteration.

A router deciding at time ``t`` with staleness ``s`` sees an instance as it
was at ``t - s``: after the last of its iterations that had *ended* by then
(an iteration's effects -- tokens emitted, requests finished, blocks freed --
land at its end). :class:`StateLog` keeps those per-iteration snapshots, and
the times requests were routed to the instance, and answers
:meth:`StateLog.state_at`. Requests routed to the instance count as
outstanding from their arrival at it. Every figure is as of ``t - s``, the
router's count of outstanding requests too: a router that reads lagging
metrics forgets what it sent in the last ``s`` seconds and sends runs of
requests to the instance that looked least loaded (the herd effect of stale
load information, Mitzenmacher, "How useful is old information?", IEEE TPDS
2000); tutorial 12 shows it.

Invariant: snapshot times never decrease (an instance's clock never goes
back), and queries come at non-decreasing times (arrivals are routed in
order), so older snapshots than the one last answered are dropped.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque

from .instance_state import InstanceState

# Bound once: state_at runs once per instance for every request routed.
_trusted = InstanceState.trusted


class StateLog:
    """Per-iteration snapshots of one instance (see the module docstring).

    Parameters
    ----------
    index : int
        The instance's position in the cluster.
    num_blocks : int
        Its KV blocks.
    """

    __slots__ = ("index", "num_blocks", "_snaps", "_routed")

    def __init__(self, index: int, num_blocks: int) -> None:
        self.index = index
        self.num_blocks = num_blocks
        # (time, num_waiting, num_running, num_finished, num_used_blocks); the
        # first is the empty instance at time 0.
        self._snaps: deque[tuple[float, int, int, int, int]] = deque([(0.0, 0, 0, 0, 0)])
        self._routed: list[float] = []  # arrival times of the requests routed here

    def record(self, at: float, num_waiting: int, num_running: int, num_finished: int,
               num_used_blocks: int) -> None:
        """Add the state after an iteration that ended at ``at``."""
        self._snaps.append((at, num_waiting, num_running, num_finished, num_used_blocks))

    def routed(self, at: float) -> None:
        """A request was routed here, reaching the instance at ``at``."""
        self._routed.append(at)

    def state_at(self, at: float, cached_prefix_tokens: int = 0) -> InstanceState:
        """The instance as of time ``at`` (the last snapshot at or before it)."""
        snaps = self._snaps
        while len(snaps) > 1 and snaps[1][0] <= at:
            snaps.popleft()
        _, waiting, running, finished, used = snaps[0]
        outstanding = bisect_right(self._routed, at) - finished
        # The conditionals are max(at, 0.0) and max(outstanding, 0), operand
        # for operand (-0.0 and NaN included), without two calls per state.
        return _trusted(self.index, 0.0 if 0.0 > at else at, waiting, running,
                        0 if 0 > outstanding else outstanding, used, self.num_blocks,
                        cached_prefix_tokens)


__all__ = ["StateLog"]
