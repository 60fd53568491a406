"""RequestState: one request's progress inside the scheduler.

Tokens, not phases: a request with ``P`` prompt tokens and ``O`` output tokens
must push ``P + O - 1`` tokens through the model (the last generated token is
never fed back). ``num_computed_tokens`` counts those already in the KV cache.
While it is below ``P`` the request has prompt tokens left (a prefill, whole or
chunked); afterwards it computes one token per iteration (a decode). Every
iteration that ends with ``num_computed_tokens >= P`` emits one output token.

With ``gen`` (the original's "skip the initiation phase"), a request starts
with its prompt in the cache (``num_computed_tokens = P``) and emits all ``O``
tokens from decode steps, so it ends holding ``P + O`` tokens.
"""

from __future__ import annotations

import enum
import math


class RequestStatus(enum.Enum):
    PENDING = "pending"    # not arrived yet (or within its batch delay)
    WAITING = "waiting"    # arrived, never admitted
    RUNNING = "running"    # admitted, KV cache on the device
    EVICTED = "evicted"    # KV cache moved to host memory, waits for reload
    FINISHED = "finished"


class RequestState:
    """Mutable scheduling state of one request (owned by the Scheduler)."""

    __slots__ = ("request_id", "arrival_at", "num_prompt_tokens", "num_output_tokens",
                 "num_computed_tokens", "num_generated_tokens", "status", "admitted_at",
                 "first_token_at", "finished_at", "num_evictions", "max_kv_tokens")

    def __init__(self, request_id: int, arrival_at: float, num_prompt_tokens: int,
                 num_output_tokens: int, gen: bool = False) -> None:
        self.request_id = request_id
        self.arrival_at = arrival_at
        self.num_prompt_tokens = num_prompt_tokens
        self.num_output_tokens = num_output_tokens
        self.num_computed_tokens = num_prompt_tokens if gen else 0
        self.num_generated_tokens = 0
        self.status = RequestStatus.PENDING
        self.admitted_at = math.nan
        self.first_token_at = math.nan
        self.finished_at = math.nan
        self.num_evictions = 0
        # Tokens held in the cache at the largest (what kv_manage='max' reserves).
        self.max_kv_tokens = num_prompt_tokens + (
            num_output_tokens if gen else max(num_output_tokens - 1, 0))

    @property
    def is_done(self) -> bool:
        """All output emitted (a zero-output request is done once its prompt is in)."""
        return (self.num_generated_tokens >= self.num_output_tokens
                and self.num_computed_tokens >= self.num_prompt_tokens)

    @property
    def num_prompt_tokens_left(self) -> int:
        return max(0, self.num_prompt_tokens - self.num_computed_tokens)

    def next_num_tokens(self, budget: int | None = None) -> int:
        """Tokens to compute next iteration: the rest of the prompt or one decode.

        ``budget`` caps a prefill chunk (chunked policy). 0 when done.
        """
        left = self.num_prompt_tokens_left
        if left:
            return left if budget is None else min(left, budget)
        return 0 if self.is_done else 1

    def emits_token(self, num_tokens: int) -> bool:
        """Whether computing ``num_tokens`` more tokens produces an output token."""
        return (self.num_computed_tokens + num_tokens >= self.num_prompt_tokens
                and self.num_generated_tokens < self.num_output_tokens)

    def __repr__(self) -> str:
        return (f"RequestState(id={self.request_id}, {self.status.value}, computed="
                f"{self.num_computed_tokens}/{self.num_prompt_tokens}+, generated="
                f"{self.num_generated_tokens}/{self.num_output_tokens})")
