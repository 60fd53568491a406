"""Request progress inside the scheduler: a table of arrays and a view per request.

Tokens, not phases: a request with ``P`` prompt tokens and ``O`` output tokens
must push ``P + O - 1`` tokens through the model (the last generated token is
never fed back). ``num_computed_tokens`` counts those already in the KV cache.
While it is below ``P`` the request has prompt tokens left (a prefill, whole or
chunked); afterwards it computes one token per iteration (a decode). Every
iteration that ends with ``num_computed_tokens >= P`` emits one output token.

With ``gen`` (the original's "skip the initiation phase"), a request starts
with its prompt in the cache (``num_computed_tokens = P``) and emits all ``O``
tokens from decode steps, so it ends holding ``P + O`` tokens.

The state of every request lives in a :class:`RequestTable`, one numpy array
per field, so that the scheduler advances a whole batch with a few array
operations instead of a Python loop over requests. :class:`RequestState` is a
read-only view of one row, for notebooks and tests.
"""

from __future__ import annotations

import enum
import math

import numpy as np


class RequestStatus(enum.Enum):
    PENDING = "pending"    # not arrived yet (or within its batch delay)
    WAITING = "waiting"    # arrived, never admitted
    RUNNING = "running"    # admitted, KV cache on the device
    EVICTED = "evicted"    # KV cache moved to host memory, waits for reload
    FINISHED = "finished"


#: Status codes stored in :attr:`RequestTable.status` (index into this tuple).
STATUSES = tuple(RequestStatus)
PENDING, WAITING, RUNNING, EVICTED, FINISHED = range(len(STATUSES))

_INT_FIELDS = ("num_prompt_tokens", "num_output_tokens", "num_computed_tokens",
               "num_generated_tokens", "num_evictions", "max_kv_tokens", "num_cached_tokens",
               "num_preemptions", "num_recomputed_tokens", "priority")
_FLOAT_FIELDS = ("arrival_at", "admitted_at", "first_token_at", "finished_at", "last_token_at")


def max_kv_tokens(num_prompt_tokens: int, num_output_tokens: int, gen: bool = False) -> int:
    """Tokens a request holds in the KV cache at the largest: its prompt and
    every output but the last (never fed back); with ``gen``, every output."""
    return num_prompt_tokens + (num_output_tokens if gen else max(num_output_tokens - 1, 0))


class RequestTable:
    """Every request's scheduling state, one array per field (row = request id).

    Attributes
    ----------
    arrival_at, admitted_at, first_token_at, finished_at : ndarray of float64
        Seconds; NaN until the request gets there.
    num_prompt_tokens, num_output_tokens : ndarray of int64
    num_computed_tokens : ndarray of int64
        Tokens in the KV cache (see the module docstring).
    num_generated_tokens, num_evictions : ndarray of int64
    max_kv_tokens : ndarray of int64
        Tokens held at the largest (what ``kv_manage='max'`` reserves).
    num_cached_tokens : ndarray of int64
        Prompt tokens found in the prefix cache at the request's first
        admission (vLLM's ``Request.num_cached_tokens``); 0 without caching.
    num_preemptions, num_recomputed_tokens : ndarray of int64
        Times the request was preempted by recompute, and the computed tokens
        those preemptions discarded (computed again unless found cached).
    priority : ndarray of int64
        Scheduling priority (lower first) for the ``priority`` order.
    last_token_at : ndarray of float64
        When the latest output token was emitted (inter-token latencies).
    status : ndarray of int8
        Index into :data:`STATUSES`.

    The arrays have spare capacity; only the first ``len(table)`` rows are
    requests. They are replaced when they grow, so read them through the
    table, not through a saved reference.
    """

    def __init__(self, capacity: int = 64) -> None:
        self._size = 0
        for name in _INT_FIELDS:
            setattr(self, name, np.zeros(capacity, dtype=np.int64))
        for name in _FLOAT_FIELDS:
            setattr(self, name, np.full(capacity, math.nan))
        self.status = np.zeros(capacity, dtype=np.int8)

    def __len__(self) -> int:
        return self._size

    def add(self, arrival_at: float, num_prompt_tokens: int, num_output_tokens: int,
            gen: bool = False) -> int:
        """Append a pending request; return its id (its row)."""
        i = self._size
        if i == len(self.status):
            self._grow()
        self.arrival_at[i] = arrival_at
        self.num_prompt_tokens[i] = num_prompt_tokens
        self.num_output_tokens[i] = num_output_tokens
        self.num_computed_tokens[i] = num_prompt_tokens if gen else 0
        self.max_kv_tokens[i] = max_kv_tokens(num_prompt_tokens, num_output_tokens, gen)
        self._size = i + 1
        return i

    def _grow(self) -> None:
        for name in (*_INT_FIELDS, *_FLOAT_FIELDS, "status"):
            old = getattr(self, name)
            new = np.full(2 * len(old), math.nan) if name in _FLOAT_FIELDS \
                else np.zeros(2 * len(old), dtype=old.dtype)
            new[: len(old)] = old
            setattr(self, name, new)

    def check_new(self, request_id: int, arrival_at: float, max_kv: int, blocks_for,
                  num_blocks: int) -> None:
        """Refuse a request that is not the next id, arrives before the previous
        one, or could never fit ``num_blocks`` KV blocks holding ``max_kv`` tokens
        (``blocks_for(tokens)`` counts the blocks)."""
        n = self._size
        if request_id != n:
            raise ValueError(f"request ids must be consecutive from 0; got {request_id} "
                             f"after {n} requests")
        if n and arrival_at < self.arrival_at[n - 1]:
            raise ValueError(f"request {request_id} arrives at {arrival_at} s, before the "
                             f"previous request ({self.arrival_at[n - 1]} s)")
        need = blocks_for(max_kv)
        if need > num_blocks:
            raise ValueError(
                f"request {request_id} needs {need} KV blocks ({max_kv} tokens) "
                f"but the device holds only {num_blocks}; it could never run "
                f"(give more memory or shorten the request)")

    def advance(self, ids: np.ndarray, num_tokens: np.ndarray, emits: np.ndarray,
                finished_at: float) -> np.ndarray:
        """Requests ``ids`` computed ``num_tokens`` tokens and emitted a token where
        ``emits`` (an iteration ending at ``finished_at``); mark those done as
        finished and return their ids."""
        computed = self.num_computed_tokens[ids] + num_tokens
        self.num_computed_tokens[ids] = computed
        generated = self.num_generated_tokens[ids] + emits
        self.num_generated_tokens[ids] = generated
        self.first_token_at[ids[emits & (generated == 1)]] = finished_at
        done_ids = ids[(computed >= self.num_prompt_tokens[ids])
                       & (generated >= self.num_output_tokens[ids])]
        if len(done_ids):  # most iterations finish no request
            self.status[done_ids] = FINISHED
            self.finished_at[done_ids] = finished_at
        return done_ids

    def column(self, name: str) -> np.ndarray:
        """A copy of field ``name`` for the requests added so far."""
        return getattr(self, name)[: self._size].copy()

    # -------------------------------------------------- per-request rules
    def is_done(self, i: int) -> bool:
        """All output emitted (a zero-output request is done once its prompt is in)."""
        return bool(self.num_generated_tokens[i] >= self.num_output_tokens[i]
                    and self.num_computed_tokens[i] >= self.num_prompt_tokens[i])

    def num_prompt_tokens_left(self, i: int) -> int:
        return max(0, int(self.num_prompt_tokens[i] - self.num_computed_tokens[i]))

    def next_num_tokens(self, i: int, budget: int | None = None) -> int:
        """Tokens request ``i`` computes next iteration: the rest of its prompt
        (capped by ``budget``, the chunked policy) or one decode; 0 when done."""
        left = self.num_prompt_tokens.item(i) - self.num_computed_tokens.item(i)
        if left > 0:
            return left if budget is None else min(left, budget)
        # The prompt is in: done once every output is emitted.
        return 0 if self.num_generated_tokens.item(i) >= self.num_output_tokens.item(i) else 1


class RequestState:
    """Read-only view of one request's row in a :class:`RequestTable`."""

    __slots__ = ("_table", "request_id")

    def __init__(self, table: RequestTable, request_id: int) -> None:
        self._table = table
        self.request_id = request_id

    def _int(self, name: str) -> int:
        return int(getattr(self._table, name)[self.request_id])

    def _float(self, name: str) -> float:
        return float(getattr(self._table, name)[self.request_id])

    arrival_at = property(lambda self: self._float("arrival_at"))
    admitted_at = property(lambda self: self._float("admitted_at"))
    first_token_at = property(lambda self: self._float("first_token_at"))
    finished_at = property(lambda self: self._float("finished_at"))
    num_prompt_tokens = property(lambda self: self._int("num_prompt_tokens"))
    num_output_tokens = property(lambda self: self._int("num_output_tokens"))
    num_computed_tokens = property(lambda self: self._int("num_computed_tokens"))
    num_generated_tokens = property(lambda self: self._int("num_generated_tokens"))
    num_evictions = property(lambda self: self._int("num_evictions"))
    max_kv_tokens = property(lambda self: self._int("max_kv_tokens"))

    @property
    def status(self) -> RequestStatus:
        return STATUSES[self._table.status[self.request_id]]

    @property
    def is_done(self) -> bool:
        return self._table.is_done(self.request_id)

    @property
    def num_prompt_tokens_left(self) -> int:
        return self._table.num_prompt_tokens_left(self.request_id)

    def next_num_tokens(self, budget: int | None = None) -> int:
        return self._table.next_num_tokens(self.request_id, budget)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, RequestState) and other._table is self._table
                and other.request_id == self.request_id)

    def __hash__(self) -> int:
        return hash((id(self._table), self.request_id))

    def __repr__(self) -> str:
        return (f"RequestState(id={self.request_id}, {self.status.value}, computed="
                f"{self.num_computed_tokens}/{self.num_prompt_tokens}+, generated="
                f"{self.num_generated_tokens}/{self.num_output_tokens})")
