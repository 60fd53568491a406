"""When each output token was emitted: the inter-token latencies of a run.

A request's tokens are emitted at the end of the iterations whose plan gives it
a logit (``BatchShape.num_logit_tokens``); the gap between two consecutive
ones is an inter-token latency (ITL), as ``benchmark_serving`` measures it.
The gaps are kept in emission order, 8 bytes per output token.
"""

from __future__ import annotations

import numpy as np

from ..scheduler.plan import IterationPlan
from ..scheduler.request_state import RequestTable


#: Slots of the first chunk (and of the first after :meth:`TokenTimes.move_gaps`).
FIRST_SLOTS = 1024
#: Slots of every chunk of :class:`TokenTimes` once it has grown that far.
CHUNK_SLOTS = 1 << 16


class TokenTimes:
    """Records every inter-token gap of a run (seconds).

    Every emitted token gets a slot, ``emitted_at - last_token_at`` of its
    request: NaN for a request's first token (its ``last_token_at`` is NaN)
    and only then, as emission times are finite. :meth:`gaps` leaves the NaN
    slots out, so recording a token takes no mask of first tokens. The slots
    live in chunks that double up to :data:`CHUNK_SLOTS` (at most one partly
    used; nothing is copied as a run grows).
    """

    def __init__(self, capacity: int = FIRST_SLOTS) -> None:
        self._full: list[np.ndarray] = []
        self._slots = np.zeros(capacity)
        self._size = 0  # slots used in the current chunk

    def record(self, table: RequestTable, plan: IterationPlan, emitted_at: float) -> None:
        """Note the tokens ``plan`` emitted at ``emitted_at``; sets
        ``table.last_token_at`` of the requests that emitted one."""
        batch = plan.batch
        ids = batch.request_ids[batch.num_logit_tokens > 0]
        n = len(ids)
        if not n:
            return
        start, end = self._size, self._size + n
        if end > len(self._slots):  # the iteration's tokens go into a new chunk
            self._full.append(self._slots[:start])
            self._slots = np.zeros(max(min(2 * len(self._slots), CHUNK_SLOTS), n))
            start, end = 0, n
        last = table.last_token_at
        np.subtract(emitted_at, last[ids], out=self._slots[start:end])
        last[ids] = emitted_at
        self._size = end

    def _parts(self) -> list[np.ndarray]:
        return [*self._full, self._slots[:self._size]]

    @property
    def num_gaps(self) -> int:
        """Gaps recorded so far (slots that are not a request's first token)."""
        return sum(int(np.count_nonzero(c == c)) for c in self._parts())  # NaN != NaN

    def copy_gaps(self, out: np.ndarray) -> int:
        """Write the :attr:`num_gaps` gaps, in emission order, to the start of
        ``out`` (one chunk at a time: no second copy of them all); return how
        many."""
        at = 0
        for c in self._parts():
            g = c[c == c]
            out[at:at + len(g)] = g
            at += len(g)
        return at

    def gaps(self) -> np.ndarray:
        """The gaps recorded so far (a new array), in emission order."""
        out = np.empty(self.num_gaps)
        self.copy_gaps(out)
        return out

    def move_gaps(self, out: np.ndarray) -> None:
        """:meth:`copy_gaps` into ``out``, then keep that part of ``out`` as the
        gaps so far in place of the chunks (which are freed).

        A run's results and its recorder then hold the gaps once, not twice
        (a Dataset of a million requests' gaps is half a gigabyte). The kept
        part is made read-only, and the caller should make ``out`` read-only
        too: a write into the results would otherwise change what a later
        results call reports. Gaps recorded afterwards go to new chunks.
        """
        kept = out[:self.copy_gaps(out)]
        kept.setflags(write=False)
        self._full, self._slots, self._size = [kept], np.zeros(FIRST_SLOTS), 0

    def shared_gaps(self) -> np.ndarray:
        """The gaps recorded so far as one read-only array that this recorder
        keeps too (:meth:`move_gaps`): no copy when nothing was recorded since
        the last call."""
        parts = [c for c in self._parts() if len(c)]
        if len(parts) == 1 and not parts[0].flags.writeable:
            return parts[0]
        out = np.empty(self.num_gaps)
        self.move_gaps(out)
        out.setflags(write=False)
        return self._full[0]  # the kept, read-only part: all of it
