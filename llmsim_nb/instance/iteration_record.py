"""Making the :class:`~llmsim_nb.results.dataset.IterationRecord` of each iteration.

An IterationRecord is a frozen dataclass with slots and no ``__post_init__``:
its generated ``__init__`` only stores its twelve fields, each through
``object.__setattr__`` (the frozen class's own ``__setattr__`` refuses),
which looks the name up again for every field of every iteration.
:func:`iteration_record` stores the same values through the slots' own
setters (``__slots__`` member descriptors), which is what
``object.__setattr__`` ends up calling: the record is the same, field for
field, for about a third of the cost.

Invariant: the setters cover exactly the record's fields. Checked at import,
so a field added to IterationRecord fails loudly here instead of being left
unset by :func:`iteration_record`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..results.recorder import IterationRecord
from ..scheduler.plan import IterationPlan

_FIELDS = ("plan", "t_start", "t_end", "compute_latency", "host_transfer_latency",
           "op_latency", "finished", "reuse_hits", "reuse_misses", "expert_tokens",
           "rank_expert_tokens", "dispatch_bytes")
if tuple(f.name for f in dataclasses.fields(IterationRecord)) != _FIELDS:
    raise ImportError(f"iteration_record.py knows IterationRecord's fields as {_FIELDS}, the "
                      f"class has {tuple(f.name for f in dataclasses.fields(IterationRecord))}; "
                      f"update iteration_record() with them")

_new = object.__new__
(_set_plan, _set_t_start, _set_t_end, _set_compute_latency, _set_host_transfer_latency,
 _set_op_latency, _set_finished, _set_reuse_hits, _set_reuse_misses, _set_expert_tokens,
 _set_rank_expert_tokens, _set_dispatch_bytes) = (
    getattr(IterationRecord, name).__set__ for name in _FIELDS)


def iteration_record(plan: IterationPlan, t_start: float, t_end: float, compute_latency: float,
                     host_transfer_latency: float, op_latency: np.ndarray,
                     finished: tuple[int, ...], reuse_hits: int, reuse_misses: int,
                     expert_tokens: np.ndarray | None, rank_expert_tokens: np.ndarray | None,
                     dispatch_bytes: float) -> IterationRecord:
    """``IterationRecord(plan, t_start, ..., dispatch_bytes)``, every field given
    (see the module docstring)."""
    record = _new(IterationRecord)
    _set_plan(record, plan)
    _set_t_start(record, t_start)
    _set_t_end(record, t_end)
    _set_compute_latency(record, compute_latency)
    _set_host_transfer_latency(record, host_transfer_latency)
    _set_op_latency(record, op_latency)
    _set_finished(record, finished)
    _set_reuse_hits(record, reuse_hits)
    _set_reuse_misses(record, reuse_misses)
    _set_expert_tokens(record, expert_tokens)
    _set_rank_expert_tokens(record, rank_expert_tokens)
    _set_dispatch_bytes(record, dispatch_bytes)
    return record


__all__ = ["iteration_record"]
