"""The vLLM V1 scheduler's plan of one iteration, from the requests it scheduled.

:func:`v1_plan` turns the scheduler's decision (which requests, how many tokens
each) into an :class:`~.plan.IterationPlan`, reading the request table for the
rest: what each request had computed, whether it emits a token, and how many of
its tokens count as prefill.

Runs once per iteration, so it is written for small batches: a handful of
whole-array numpy operations, and the :class:`~llmsim_nb.models.ops.BatchShape`
built with :meth:`~llmsim_nb.models.ops.BatchShape.trusted` (its arrays are
consistent by construction here; the one property a scheduler bug could break,
a request scheduled with no token, is still checked). The scheduler's common
iteration (only running requests, all of whose blocks fit) has already
gathered the requests' rows of the table to plan their tokens; it hands them
over as :class:`BatchRows` (:func:`plan_of_rows`) instead of gathering twice.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..models.ops import BatchShape
from .plan import IterationPlan
from .request_state import RequestTable

_maximum, _minimum, _reduce = np.maximum, np.minimum, np.add.reduce
_min_of = np.minimum.reduce


class BatchRows(NamedTuple):
    """The scheduled requests' rows of the request table, before the iteration.

    Every array is in batch order, one entry per scheduled request, gathered
    from the table after the iteration's admissions and before it advances.

    Attributes
    ----------
    ids : ndarray of int64
        Request ids.
    num_tokens : ndarray of int64
        Tokens each computes this iteration.
    computed : ndarray of int64
        ``num_computed_tokens`` of each.
    generated : ndarray of int64
        ``num_generated_tokens`` of each.
    rest : ndarray of int64
        Tokens each knows but has not computed: ``prompt + generated - computed``.
    total : int
        ``num_tokens.sum()``.
    """

    ids: np.ndarray
    num_tokens: np.ndarray
    computed: np.ndarray
    generated: np.ndarray
    rest: np.ndarray
    total: int


def gather_rows(table: RequestTable, ids: list[int], num_tokens: list[int]) -> BatchRows:
    """The :class:`BatchRows` of requests ``ids`` computing ``num_tokens`` tokens."""
    idx = np.array(ids, dtype=np.int64)
    computed = table.num_computed_tokens[idx]
    generated = table.num_generated_tokens[idx]
    return BatchRows(idx, np.array(num_tokens, dtype=np.int64), computed, generated,
                     table.num_prompt_tokens[idx] + generated - computed, sum(num_tokens))


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
    return plan_of_rows(table, iteration, now, gather_rows(table, ids, num_tokens),
                        **cache_figures)


def plan_of_rows(table: RequestTable, iteration: int, now: float, rows: BatchRows,
                 **cache_figures) -> IterationPlan:
    """:func:`v1_plan` of requests whose rows are already gathered."""
    ids, query, computed, generated, rest, total = rows
    if len(query) and _min_of(query) < 1:
        raise ValueError("BatchShape.num_query_tokens must all be >= 1")
    # It emits when computed + query reaches prompt + generated, i.e. query == rest.
    emits = (query == rest) & (generated < table.num_output_tokens[ids])
    # The prefill boundary is the prompt before any output, else every known
    # token but the last: boundary - computed is rest - (generated > 0).
    # clip(x, 0, query) as maximum then minimum: the same integers, without
    # np.clip's per-call overhead. prompt - computed is rest - generated.
    prefill = _minimum(_maximum(rest - (generated > 0), 0), query)
    computed_prompt = int(_reduce(_minimum(_maximum(rest - generated, 0), query)))
    batch = BatchShape.trusted(ids, query, computed, emits.astype(np.int64), total)
    return IterationPlan(iteration=iteration, scheduled_at=now, batch=batch,
                         num_prompt_tokens=prefill,
                         num_computed_prompt_tokens=computed_prompt, **cache_figures)


__all__ = ["BatchRows", "gather_rows", "plan_of_rows", "v1_plan"]
