"""The vLLM V1 scheduler's plan of one iteration, from the requests it scheduled.

:func:`v1_plan` turns the scheduler's decision (which requests, how many tokens
each) into an :class:`~.plan.IterationPlan`, reading the request table for the
rest: what each request had computed, whether it emits a token, and how many of
its tokens count as prefill.

Runs once per iteration, so it is written for small batches: the decision comes
as Python lists, the arithmetic is a handful of whole-array numpy operations,
and the :class:`~llmsim_nb.models.ops.BatchShape` is built with
:meth:`~llmsim_nb.models.ops.BatchShape.trusted` (its arrays are consistent by
construction here; the one property a scheduler bug could break, a request
scheduled with no token, is still checked).
"""

from __future__ import annotations

import numpy as np

from ..models.ops import BatchShape
from .plan import IterationPlan
from .request_state import RequestTable

_maximum, _minimum, _reduce = np.maximum, np.minimum, np.add.reduce


def v1_plan(table: RequestTable, iteration: int, now: float, ids: list[int],
            num_tokens: list[int], **cache_figures) -> IterationPlan:
    """The plan of an iteration starting at ``now`` that computes ``num_tokens[k]``
    tokens of request ``ids[k]`` (before the table advances them).

    A request emits a token when it reaches the end of what it knows (its prompt
    plus the outputs so far) and has outputs left. Its prompt tokens, and after
    a preemption the outputs it recomputes (all but the last, which is fed as a
    decode), count as prefill tokens. ``cache_figures`` are the plan's other
    fields (evictions, reloads, cache occupancy, prefix-cache counts).
    """
    if num_tokens and min(num_tokens) < 1:
        raise ValueError("BatchShape.num_query_tokens must all be >= 1")
    idx = np.array(ids, dtype=np.int64)
    query = np.array(num_tokens, dtype=np.int64)
    computed = table.num_computed_tokens[idx]
    prompt = table.num_prompt_tokens[idx]
    generated = table.num_generated_tokens[idx]
    known = prompt + generated
    emits = (computed + query == known) & (generated < table.num_output_tokens[idx])
    boundary = np.where(generated > 0, known - 1, prompt)
    # clip(x, 0, query) as maximum then minimum: the same integers, without
    # np.clip's per-call overhead.
    prefill = _minimum(_maximum(boundary - computed, 0), query)
    computed_prompt = int(_reduce(_minimum(_maximum(prompt - computed, 0), query)))
    batch = BatchShape.trusted(idx, query, computed, emits.astype(np.int64), sum(num_tokens))
    return IterationPlan(iteration=iteration, scheduled_at=now, batch=batch,
                         num_prompt_tokens=prefill,
                         num_computed_prompt_tokens=computed_prompt, **cache_figures)


__all__ = ["v1_plan"]
