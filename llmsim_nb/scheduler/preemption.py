"""How the vLLM V1 scheduler gives up a running request's KV blocks.

``recompute`` (V1's only mode): the blocks are freed (full ones stay cached),
the request forgets its computed tokens and waits at the front of the queue
to compute them again, minus whatever is still cached when it returns.

``swap`` (vLLM V0's ``preemption_mode="swap"``, kept as an option): the
request's KV is copied to host memory (``evicted_bytes``) and its blocks are
freed; it keeps its computed tokens. Swapped requests come back first, in the
order they left, before any waiting request is admitted (as V0 did): each is
given blocks for its tokens again and its KV is copied back
(``reloaded_bytes``), once they fit beside one spare block per running request.
Both copies are timed on the host link, before the iteration's compute.
"""

from __future__ import annotations

from .request_state import EVICTED, RUNNING, WAITING


class Preemption:
    """The preemption mode of a :class:`~.v1_scheduler.V1Scheduler`.

    Parameters
    ----------
    mode : {"recompute", "swap"}
    kv_bytes_per_token : int
        Bytes of one token's K and V over all layers (what a swap moves).

    Attributes
    ----------
    swapped : list of int
        Requests whose KV is in host memory, in the order they left.
    """

    def __init__(self, mode: str, kv_bytes_per_token: int) -> None:
        if mode not in ("recompute", "swap"):
            raise ValueError(f"preemption_mode={mode!r} is not one of ['recompute', 'swap']")
        self.mode = mode
        self.kv_bytes_per_token = kv_bytes_per_token
        self.swapped: list[int] = []
        self.reset()

    def reset(self) -> None:
        """Start an iteration's accounting."""
        self.swapped_out: list[int] = []
        self.swapped_in: list[int] = []
        self.bytes_out = 0.0
        self.bytes_in = 0.0

    def preempt(self, table, kv, running: list[int], waiting, i: int) -> None:
        """Take running request ``i`` off the device: its blocks go back to the
        pool ``kv`` and it leaves ``running``. Under ``recompute`` its ``table``
        row drops its computed tokens (counted as recomputed) and it goes back
        to the ``waiting`` queue (a :class:`~.waiting_queue.WaitingQueue`): at
        the front under FCFS, by its (priority, arrival) key under priority.
        Under ``swap`` it is evicted: it keeps its computed tokens, joins
        :attr:`swapped` and its KV bytes count in ``bytes_out``."""
        kv.free(i)
        running.remove(i)
        table.num_preemptions[i] += 1
        if self.mode == "swap":
            table.status[i] = EVICTED
            table.num_evictions[i] += 1
            self.swapped.append(i)
            self.swapped_out.append(i)
            self.bytes_out += int(table.num_computed_tokens[i]) * self.kv_bytes_per_token
            return
        table.status[i] = WAITING
        table.num_recomputed_tokens[i] += table.num_computed_tokens[i]
        table.num_computed_tokens[i] = 0
        waiting.push(i, table.priority.item(i), table.arrival_at.item(i), True)

    def swap_in(self, table, kv, running: list[int], max_batch: int, hasher_of) -> None:
        """Bring swapped requests back to the end of ``running``, first out first
        in, while their blocks fit in ``kv`` with one spare block per running
        request (so the same iteration's decodes do not preempt them again), up
        to ``max_batch`` running requests (``hasher_of``: request id -> its
        :class:`~.block_hasher.BlockHasher`)."""
        while self.swapped:
            if 0 < max_batch <= len(running):
                return
            i = self.swapped[0]
            computed = int(table.num_computed_tokens[i])
            need = kv.blocks_for(computed)
            if need + len(running) > kv.num_free_blocks:
                return
            self.swapped.pop(0)
            kv.allocate_slots(i, computed)
            kv.cache_full_blocks(i, hasher_of(i), computed)
            table.status[i] = RUNNING
            running.append(i)
            self.swapped_in.append(i)
            self.bytes_in += computed * self.kv_bytes_per_token
