"""A single inference request: when it arrives and how many tokens it carries."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .content import RequestContent
from .trace_columns import MAX_PRIORITY, MIN_PRIORITY

__all__ = ["Request"]

_INF = math.inf


def _is_int(value: object) -> bool:
    """Return True for Python/numpy integers, excluding ``bool``."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a workload.

    Parameters
    ----------
    request_id : int
        Identifier of the request, ``>= 0``. Inside a :class:`Trace` it is the
        request's position (0 .. n-1).
    arrival_at : float
        Arrival time in seconds, finite and ``>= 0``.
    num_prompt_tokens : int
        Number of prompt (context) tokens, ``>= 1``.
    num_output_tokens : int
        Number of tokens to generate, ``>= 0``. Zero means a prefill-only
        request.
    content : RequestContent or None, optional
        What the prompt and output are (see :mod:`.content`), for prefix
        caching: its segments must add up to ``num_prompt_tokens``. ``None``
        (the default) means content shared with no other request.
    priority : int, optional
        Scheduling priority for vLLM's ``--scheduling-policy priority``: lower
        is served first, ties by arrival. Any integer that fits int64 (negative
        ones too); the default ``0`` is vLLM's.

    Raises
    ------
    ValueError
        If any field has the wrong type or is out of range. Numpy scalars are
        accepted and stored as plain Python ``int``/``float``.
    """

    request_id: int
    arrival_at: float
    num_prompt_tokens: int
    num_output_tokens: int
    content: RequestContent | None = None
    priority: int = 0

    def __post_init__(self) -> None:
        # The common case first: plain Python ints and a float, all in range,
        # need no conversion (a cluster makes two or three Requests per
        # request). Anything else, NaN and inf too, takes the checks below.
        if (type(self.request_id) is int and type(self.num_prompt_tokens) is int
                and type(self.num_output_tokens) is int and type(self.priority) is int
                and type(self.arrival_at) is float and self.request_id >= 0
                and self.num_prompt_tokens >= 1 and self.num_output_tokens >= 0
                and 0.0 <= self.arrival_at < _INF
                and MIN_PRIORITY <= self.priority <= MAX_PRIORITY):
            if self.content is not None:
                self._check_content()
            return
        for name, minimum in (
            ("request_id", 0),
            ("num_prompt_tokens", 1),
            ("num_output_tokens", 0),
        ):
            value = getattr(self, name)
            if not _is_int(value):
                raise ValueError(
                    f"Request.{name} must be an integer >= {minimum}, "
                    f"got {value!r} of type {type(value).__name__}"
                )
            if value < minimum:
                raise ValueError(f"Request.{name} must be >= {minimum}, got {value!r}")
            object.__setattr__(self, name, int(value))

        arrival = self.arrival_at
        if isinstance(arrival, (bool, np.bool_)) or not isinstance(
            arrival, (int, float, np.integer, np.floating)
        ):
            raise ValueError(
                f"Request.arrival_at must be a real number of seconds, got {arrival!r} "
                f"of type {type(arrival).__name__}"
            )
        arrival = float(arrival)
        if not math.isfinite(arrival) or arrival < 0.0:
            raise ValueError(
                f"Request.arrival_at must be finite and >= 0 seconds, got {arrival!r}"
            )
        object.__setattr__(self, "arrival_at", arrival)
        priority = self.priority
        if not _is_int(priority) or not MIN_PRIORITY <= int(priority) <= MAX_PRIORITY:
            raise ValueError(f"Request.priority must be an integer (not bool) from -2**63 to "
                             f"2**63 - 1 (int64; lower is served first), got {priority!r} of "
                             f"type {type(priority).__name__}")
        object.__setattr__(self, "priority", int(priority))
        if self.content is not None:
            self._check_content()

    def _check_content(self) -> None:
        """Refuse a content that is not a RequestContent of this prompt's length."""
        content = self.content
        if not isinstance(content, RequestContent):
            raise ValueError(f"Request.content must be a RequestContent or None, got "
                             f"{type(content).__name__}")
        if content.num_prompt_tokens != self.num_prompt_tokens:
            raise ValueError(
                f"Request.content describes {content.num_prompt_tokens} prompt tokens (the "
                f"sum of its segment lengths) but num_prompt_tokens = "
                f"{self.num_prompt_tokens}; they must be equal")
