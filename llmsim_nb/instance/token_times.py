"""When each output token was emitted: the inter-token latencies of a run.

A request's tokens are emitted at the end of the iterations whose plan gives it
a logit (``BatchShape.num_logit_tokens``); the gap between two consecutive
ones is an inter-token latency (ITL), as ``benchmark_serving`` measures it.
The gaps are kept in emission order, 8 bytes per output token after the first.
"""

from __future__ import annotations

import numpy as np

from ..scheduler.plan import IterationPlan
from ..scheduler.request_state import RequestTable


class TokenTimes:
    """Records every inter-token gap of a run (seconds)."""

    def __init__(self) -> None:
        self._gaps = np.zeros(1024)
        self._size = 0

    def record(self, table: RequestTable, plan: IterationPlan, emitted_at: float) -> None:
        """Note the tokens ``plan`` emitted at ``emitted_at``; sets
        ``table.last_token_at`` of the requests that emitted one."""
        logits = plan.batch.num_logit_tokens
        ids = plan.batch.request_ids[logits > 0]
        if not len(ids):
            return
        last = table.last_token_at[ids]
        gaps = emitted_at - last[~np.isnan(last)]
        table.last_token_at[ids] = emitted_at
        n = len(gaps)
        if self._size + n > len(self._gaps):
            grown = np.zeros(max(2 * len(self._gaps), self._size + n))
            grown[: self._size] = self._gaps[: self._size]
            self._gaps = grown
        self._gaps[self._size: self._size + n] = gaps
        self._size += n

    def gaps(self) -> np.ndarray:
        """A copy of the gaps recorded so far, in emission order."""
        return self._gaps[: self._size].copy()
