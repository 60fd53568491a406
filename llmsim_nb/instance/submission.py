"""What :meth:`Instance.submit` checks of a request before its scheduler takes it.

Kept apart from the iteration loop (:mod:`.instance`), as :mod:`.checks` is. A
cluster submits every request it routes one at a time, so the length check
compares plain Python ints; only a request that fails it goes through the
array check of :mod:`.checks` (the same comparison), which words the error.
"""

from __future__ import annotations

import math

import numpy as np

from ..workload.request import Request
from ..workload.trace import MAX_ARRIVAL_S
from .checks import check_submit, check_transfer, length_limit


def submission_time(instance, request: Request, at: float | None, transfer: dict) -> float:
    """The time ``request`` reaches ``instance`` (``at``, by default its
    ``arrival_at``), once every check of :meth:`Instance.submit` passed.

    Parameters
    ----------
    instance : Instance
        The instance the request is submitted to (its scheduler, config,
        model and earlier requests are read, nothing is changed).
    request : Request
    at : float or None
        When it reaches the instance, s (None: its ``arrival_at``).
    transfer : dict
        ``Instance.submit``'s KV-transfer keyword arguments.

    Returns
    -------
    float
        The checked time, s.

    Raises
    ------
    TypeError
        For a ``request`` that is not a Request or an ``at`` that is not a number.
    ValueError
        For unknown ``transfer`` arguments, a time that is not finite, ``>= 0``
        and below a trace's limit, a time before the previous request's, or a
        request longer than ``max_model_len``.
    """
    check_transfer(instance.scheduler, transfer)
    check_submit(request, at)
    arrival = request.arrival_at if at is None else float(at)
    if not math.isfinite(arrival) or not 0 <= arrival < MAX_ARRIVAL_S:
        raise ValueError(f"submit(at={arrival!r}): the time must be finite, >= 0 and below "
                         f"{MAX_ARRIVAL_S:g} s (a trace's limit)")
    table = instance.scheduler.table
    if len(table) and arrival < table.arrival_at[len(table) - 1]:
        raise ValueError(f"request {request.request_id} reaches the instance at {arrival} s, "
                         f"before the previous request ({instance.request_ids[-1]}, at "
                         f"{float(table.arrival_at[len(table) - 1])} s); submit requests in "
                         f"arrival order")
    prompt, output = request.num_prompt_tokens, request.num_output_tokens
    if prompt + output > length_limit(instance.config.scheduler.max_model_len, instance.model):
        instance.check_lengths(np.array([prompt]), np.array([output]),
                               ids=np.array([request.request_id]))  # raises, naming it
    return arrival


__all__ = ["submission_time"]
