"""KV that moves between instances: prefill/decode disaggregation, one side each.

vLLM V1's KV connectors (``NixlConnector``) split a request between a
prefill instance, which computes the prompt and the first token, and a
decode instance, which reads that KV and generates the rest. This module
keeps, for one :class:`~llmsim_nb.scheduler.v1_scheduler.V1Scheduler`, the
requests whose KV is on its way in or out; the cluster
(:mod:`llmsim_nb.cluster`) decides where and when, the scheduler only knows
tokens, blocks and times.

Decode side (*receiving*): a request added with ``num_external_tokens = E``
(its prompt's KV, or a prefix of it) and ``external_latency = d`` has its
first output token already (made on the prefill side) and waits in the
queue like any other; when it is
admitted (its blocks for ``E`` tokens fit: memory shortage delays the
transfer, it never drops the request) the transfer starts; the request holds
its blocks, computes nothing, and joins the running requests at admission +
``d`` (up to ``max_num_seqs``), with ``E`` tokens computed: its next step
computes the rest of its prompt, if any, and the first output token's KV,
and emits the second (vLLM's ``WAITING_FOR_REMOTE_KVS``). A
preempted request recomputes everything locally, as in vLLM.

Prefill side (*holding*): a request added with ``hold_kv=True`` keeps its
blocks when it finishes, until the cluster says when the transfer ended
(:meth:`KVTransfers.release_at`); the scheduler frees them at its first step
at or after that time (vLLM's delayed block freeing on the prefill side).
Until that time is known, a scheduler with nothing else to do has no event
of its own (``num_unreleased``; the instance then starts no iteration).

Invariant: a request is receiving at most once (its first admission); a
held request is finished and holds the blocks it had when it finished.
"""

from __future__ import annotations

import heapq
import math

from .request_state import RUNNING


class KVTransfers:
    """Receiving and holding requests of one scheduler (see the module docstring)."""

    __slots__ = ("_external", "_receiving", "_hold", "_held", "_release", "admitted")

    def __init__(self) -> None:
        self._external: dict[int, tuple[int, float]] = {}   # request -> (tokens, latency)
        self._receiving: list[tuple[float, int]] = []      # heap of (ready_at, request)
        self._hold: set[int] = set()                        # to hold when finished
        self._held: set[int] = set()                        # finished, blocks kept
        self._release: list[tuple[float, int]] = []        # heap of (release_at, request)
        #: (request, admitted_at, ready_at) of receiving requests admitted since
        #: the cluster last took them (:meth:`take_admitted`).
        self.admitted: list[tuple[int, float, float]] = []

    # ----------------------------------------------------------- decode side
    def expect(self, request_id: int, num_tokens: int, latency: float, prompt: int,
               outputs: int) -> None:
        """Request ``request_id`` (being added, with ``prompt`` and ``outputs``
        tokens) receives its first ``num_tokens`` prompt tokens' KV, which takes
        ``latency`` seconds once its blocks are allocated; its first output token
        was made where the prompt was (the scheduler counts it as generated)."""
        if isinstance(num_tokens, bool) or not isinstance(num_tokens, int) \
                or not 0 < num_tokens <= prompt:
            raise ValueError(f"request {request_id}: num_external_tokens={num_tokens!r} must "
                             f"be an integer in 1..{prompt} (its prompt)")
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) \
                or not math.isfinite(latency) or latency < 0:
            raise ValueError(f"request {request_id}: external_latency={latency!r} must be a "
                             f"finite number of seconds >= 0")
        if outputs < 2:
            raise ValueError(f"request {request_id}: a request whose KV arrives must have "
                             f"tokens left to generate (num_output_tokens >= 2, the first "
                             f"made elsewhere), got {outputs}")
        self._external[request_id] = (num_tokens, float(latency))

    def external_tokens(self, request_id: int) -> int:
        """Tokens the request receives at admission (0: none, or already received)."""
        entry = self._external.get(request_id)
        return 0 if entry is None else entry[0]

    def start(self, request_id: int, now: float) -> None:
        """The request was admitted at ``now``: its transfer runs until ready."""
        _, latency = self._external.pop(request_id)
        ready = now + latency
        heapq.heappush(self._receiving, (ready, request_id))
        self.admitted.append((request_id, now, ready))

    def take_admitted(self) -> list[tuple[int, float, float]]:
        taken, self.admitted = self.admitted, []
        return taken

    # ---------------------------------------------------------- prefill side
    def hold_when_finished(self, request_id: int) -> None:
        self._hold.add(request_id)

    def keeps(self, request_id: int) -> bool:
        """Whether the finishing request keeps its blocks (and is now held)."""
        if request_id in self._hold:
            self._hold.discard(request_id)
            self._held.add(request_id)
            return True
        return False

    def release_at(self, request_id: int, at: float) -> None:
        """The held request's transfer ends at ``at``: free its blocks then."""
        if request_id not in self._held:
            raise ValueError(f"request {request_id} holds no KV for a transfer (it is not "
                             f"finished, was not added with hold_kv, or was released)")
        if not math.isfinite(at) or at < 0:
            raise ValueError(f"release_at(at={at!r}) must be a finite time >= 0")
        self._held.discard(request_id)
        heapq.heappush(self._release, (float(at), request_id))

    def due(self, now: float) -> list[int]:
        """Held requests whose release time has come by ``now``."""
        out = []
        heap = self._release
        while heap and heap[0][0] <= now:
            out.append(heapq.heappop(heap)[1])
        return out

    @property
    def num_unreleased(self) -> int:
        """Held requests whose release time is not known yet."""
        return len(self._held)

    # ------------------------------------------------------ with the scheduler
    def admit(self, table, kv, hasher_of, registration, i: int, now: float) -> bool:
        """Admit receiving request ``i`` at ``now`` into its scheduler's request
        ``table`` and block pool ``kv`` (``hasher_of``: request id -> its
        :class:`~.block_hasher.BlockHasher`; ``registration``: the
        :class:`~.block_registration.BlockRegistration` that registers the
        blocks given): blocks for its external tokens, or False (the queue's
        head waits)."""
        tokens = self.external_tokens(i)
        if not kv.allocate_slots(i, tokens):
            return False
        registration.admitted(i, hasher_of, tokens, kv)
        table.num_computed_tokens[i] = tokens
        table.admitted_at[i] = now
        table.num_cached_tokens[i] = 0
        self.start(i, now)
        return True

    def step(self, table, kv, running: list[int], max_batch: int, now: float) -> None:
        """Before its scheduler plans the iteration at ``now``: free the held
        requests whose transfer has ended (in the block pool ``kv``), and move
        the received ones to the end of ``running`` (their ``table`` status
        too), up to ``max_batch`` running requests."""
        for i in self.due(now):
            kv.free(i)
        heap = self._receiving
        # Received requests join the running ones, up to max_num_seqs (the rest
        # wait, in the order their KV arrived).
        while heap and heap[0][0] <= now and not 0 < max_batch <= len(running):
            i = heapq.heappop(heap)[1]
            table.status[i] = RUNNING
            running.append(i)

    def next_event_at(self) -> float | None:
        """The earliest time a receiving request gets ready or a held one is freed."""
        receiving, release = self._receiving, self._release
        if not release:
            return receiving[0][0] if receiving else None
        if not receiving:
            return release[0][0]
        return min(receiving[0][0], release[0][0])


__all__ = ["KVTransfers"]
