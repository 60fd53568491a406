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


class TokenTimes:
    """Records every inter-token gap of a run (seconds).

    Every emitted token gets a slot, ``emitted_at - last_token_at`` of its
    request: NaN for a request's first token (its ``last_token_at`` is NaN)
    and only then, as emission times are finite. :meth:`gaps` leaves the NaN
    slots out, so recording a token takes no mask of first tokens.
    """

    def __init__(self) -> None:
        self._slots = np.zeros(1024)
        self._size = 0

    def record(self, table: RequestTable, plan: IterationPlan, emitted_at: float) -> None:
        """Note the tokens ``plan`` emitted at ``emitted_at``; sets
        ``table.last_token_at`` of the requests that emitted one."""
        batch = plan.batch
        ids = batch.request_ids[batch.num_logit_tokens > 0]
        n = len(ids)
        if not n:
            return
        start, end = self._size, self._size + n
        if end > len(self._slots):
            grown = np.zeros(max(2 * len(self._slots), end))
            grown[:start] = self._slots[:start]
            self._slots = grown
        last = table.last_token_at
        np.subtract(emitted_at, last[ids], out=self._slots[start:end])
        last[ids] = emitted_at
        self._size = end

    def gaps(self) -> np.ndarray:
        """The gaps recorded so far (a new array), in emission order."""
        slots = self._slots[: self._size]
        return slots[~np.isnan(slots)]
