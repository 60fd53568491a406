"""The V1 scheduler's plan of one iteration (``scheduler/v1_plan.py``) and the
trusted BatchShape it is built with, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb.models.ops import BatchShape
from llmsim_nb.scheduler.request_state import RequestTable
from llmsim_nb.scheduler.v1_plan import v1_plan

FIGURES = dict(evicted_request_ids=(), reloaded_request_ids=(), evicted_bytes=0.0,
               reloaded_bytes=0.0, num_used_blocks=3, num_blocks=10)


def table() -> RequestTable:
    t = RequestTable()
    for arrival, prompt, output in ((0.0, 10, 3), (0.0, 6, 4), (1.0, 8, 2)):
        t.add(arrival, prompt, output)
    t.num_computed_tokens[:3] = [4, 6, 2]     # 0: mid-prompt; 1: decoding; 2: recomputing
    t.num_generated_tokens[:3] = [0, 1, 1]    # 2 was preempted after 1 output
    return t


def test_plan_counts_emits_and_prefill_by_hand():
    plan = v1_plan(table(), 5, 2.5, [0, 1, 2], [6, 1, 7], **FIGURES)
    batch = plan.batch
    assert batch.request_ids.tolist() == [0, 1, 2]
    assert batch.num_context_tokens.tolist() == [4, 6, 2]
    # 0 reaches 10 = all it knows: emits; 1 decodes: emits; 2 knows 9, reaches 9: emits.
    assert batch.num_logit_tokens.tolist() == [1, 1, 1]
    assert batch.num_tokens == 14
    # Prefill: 0's 6 prompt tokens; 1 none; 2 recomputes up to known - 1 = 8: 6 of 7.
    assert plan.num_prompt_tokens.tolist() == [6, 0, 6]
    assert plan.num_computed_prompt_tokens == 6 + 0 + 6   # 2's prompt is 8: 8 - 2 = 6
    assert (plan.iteration, plan.scheduled_at, plan.num_used_blocks) == (5, 2.5, 3)


def test_a_partial_chunk_does_not_emit():
    plan = v1_plan(table(), 0, 0.0, [0], [3], **FIGURES)
    assert plan.batch.num_logit_tokens.tolist() == [0]
    assert plan.num_prompt_tokens.tolist() == [3]


def test_a_request_scheduled_with_no_token_is_refused():
    with pytest.raises(ValueError, match="num_query_tokens must all be >= 1"):
        v1_plan(table(), 0, 0.0, [0, 1], [2, 0], **FIGURES)


def test_empty_plan():
    plan = v1_plan(table(), 0, 0.0, [], [], **FIGURES)
    assert plan.is_empty and plan.batch.num_tokens == 0


def test_trusted_batch_shape_equals_the_checked_one():
    ids, q, c, logits = (np.array(v, dtype=np.int64) for v in ([3, 4], [5, 1], [0, 9], [1, 1]))
    checked, trusted = BatchShape(ids, q, c, logits), BatchShape.trusted(ids, q, c, logits, 6)
    for name in ("request_ids", "num_query_tokens", "num_context_tokens", "num_logit_tokens"):
        assert getattr(trusted, name) is getattr(checked, name)
    assert trusted.num_tokens == checked.num_tokens == 6
    assert trusted.expert_tokens is None
    with pytest.raises(ValueError):   # the public constructor still checks
        BatchShape(ids, np.array([0, 1]), c, logits)
