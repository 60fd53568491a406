"""IterationPlan: what the scheduler decided for one iteration.

It is the typed boundary between the scheduler and the engines: the batch's
token composition (a :class:`~llmsim_nb.models.ops.BatchShape`), which requests
were evicted to or reloaded from host memory to make it fit, and the cache's
state once the batch's blocks are allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.ops import BatchShape

#: ``np.add.reduce``: what ``ndarray.sum()`` computes for a 1-d array, without
#: the method's Python-level wrapper (this runs every iteration).
_reduce = np.add.reduce


@dataclass(frozen=True, slots=True)
class IterationPlan:
    """One iteration's schedule.

    Attributes
    ----------
    iteration : int
        0-based index.
    scheduled_at : float
        Simulated time the iteration starts, seconds.
    batch : BatchShape
        Requests and their query / context / logit token counts.
    num_prompt_tokens : ndarray of int64
        Per batch entry, how many of its query tokens are prompt tokens
        (the rest are decode tokens).
    evicted_request_ids, reloaded_request_ids : tuple of int
        Requests whose KV blocks moved to / from host memory for this iteration.
    evicted_bytes, reloaded_bytes : float
        KV bytes moved each way.
    num_used_blocks, num_blocks : int
        Cache occupancy after this iteration's allocation, and capacity.
    num_prefix_query_tokens : int
        Tokens looked up in the prefix cache by the requests admitted for the
        first time in this iteration (their prompts); 0 without prefix caching.
    num_cached_tokens : int
        Of those, tokens found in the cache (not computed again).
        Requests re-admitted after a preemption are not counted in either.
    preempted_request_ids : tuple of int
        Requests preempted by recompute for this iteration (their blocks freed,
        their tokens to be computed again).
    num_host_cached_tokens : int
        Of the cached tokens (both kinds), those found in the host-memory tier
        (loaded back as ``reloaded_bytes``).
    num_recompute_cached_tokens : int
        Tokens found in the cache by requests re-admitted after a preemption;
        kept out of ``num_prefix_query_tokens`` / ``num_cached_tokens`` (the
        hit rate), as vLLM counts them apart.
    num_computed_prompt_tokens : int or None
        Prompt tokens computed in this iteration when that differs from
        :attr:`num_prefill_tokens` (vllm-v1 counts outputs recomputed after a
        preemption as prefill); None means equal (see
        :attr:`computed_prompt_tokens`).
    """

    iteration: int
    scheduled_at: float
    batch: BatchShape
    num_prompt_tokens: np.ndarray
    evicted_request_ids: tuple[int, ...]
    reloaded_request_ids: tuple[int, ...]
    evicted_bytes: float
    reloaded_bytes: float
    num_used_blocks: int
    num_blocks: int
    num_prefix_query_tokens: int = 0
    num_cached_tokens: int = 0
    preempted_request_ids: tuple[int, ...] = ()
    num_host_cached_tokens: int = 0
    num_recompute_cached_tokens: int = 0
    num_computed_prompt_tokens: int | None = None

    @property
    def batch_size(self) -> int:
        return self.batch.num_requests

    @property
    def is_empty(self) -> bool:
        return self.batch.num_requests == 0

    @property
    def num_prefill_tokens(self) -> int:
        return int(_reduce(self.num_prompt_tokens))

    @property
    def num_decode_tokens(self) -> int:
        return self.batch.num_tokens - self.num_prefill_tokens

    @property
    def computed_prompt_tokens(self) -> int:
        """Prompt tokens computed in this iteration (cache hits excluded)."""
        n = self.num_computed_prompt_tokens
        return self.num_prefill_tokens if n is None else n

    @property
    def prefix_hit_rate(self) -> float:
        """Cached over looked-up tokens of this iteration's admissions (NaN if none)."""
        q = self.num_prefix_query_tokens
        return self.num_cached_tokens / q if q else float("nan")

    @property
    def kv_usage(self) -> float:
        return self.num_used_blocks / self.num_blocks


def check_update(open_plan: IterationPlan | None, plan: IterationPlan, finished_at: float) -> None:
    """A scheduler's ``update(plan, finished_at)`` must receive its last ``step()``'s
    plan, ending no earlier than it started."""
    if plan is not open_plan:
        raise RuntimeError("update() must receive the plan returned by the last step()")
    if finished_at < plan.scheduled_at:
        raise ValueError(f"finished_at={finished_at} is before the iteration's start "
                         f"{plan.scheduled_at}")
