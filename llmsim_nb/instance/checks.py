"""The instance's guards: argument checks and the errors of a loop that cannot go on.

Kept apart from the iteration loop (:mod:`.instance`) so that the loop reads
as the data flow; every check here runs before anything is simulated, or
only once an iteration has already gone wrong, so none costs the loop time.
"""

from __future__ import annotations

import math
import numbers
import weakref

import numpy as np

from ..engines.stack import LatencyError
from ..system.builder import InstanceParts
from ..workload.request import Request

#: Consecutive empty plans with the clock not moving after which the loop is
#: declared stuck. (A non-empty plan computes at least one token, and its
#: iteration must move the clock: see ``Instance._advance``.)
STALL_LIMIT = 1000


def is_real(value: object) -> bool:
    """A real number that is not a bool (numpy scalars included)."""
    # A float, the common case, without the abstract base class's check.
    return type(value) is float or (isinstance(value, numbers.Real)
                                    and not isinstance(value, bool))


#: Parts some Instance already runs on: their scheduler and KV cache hold that
#: instance's state, so a second Instance on them would silently share it.
_CLAIMED: "weakref.WeakSet[InstanceParts]" = weakref.WeakSet()


def check_parts(parts: object) -> None:
    """Refuse anything but fresh :class:`InstanceParts`, and claim them."""
    if not isinstance(parts, InstanceParts):
        raise TypeError(f"Instance(parts=...) must be the InstanceParts that "
                        f"build_instance(config) returns, got {type(parts).__name__}")
    if parts in _CLAIMED:
        raise ValueError("these InstanceParts already belong to an Instance (their scheduler "
                         "and KV cache hold its state); call build_instance(config) again "
                         "for another instance")
    _CLAIMED.add(parts)


def check_submit(request: object, at: object) -> None:
    """TypeErrors for :meth:`Instance.submit` arguments of the wrong kind."""
    if not isinstance(request, Request):
        raise TypeError(f"submit(request=...) expects a Request (Request(request_id, "
                        f"arrival_at, num_prompt_tokens, num_output_tokens)), got "
                        f"{type(request).__name__}")
    if at is not None and not is_real(at):
        raise TypeError(f"submit(at={at!r}): the time must be a number of seconds or None, "
                        f"got {type(at).__name__}")


def check_run(until: object, progress: object) -> float | None:
    """``until`` as float seconds (None: to the end), or the error saying what is allowed."""
    if progress is not None and not callable(progress):
        raise TypeError(f"run(progress={progress!r}): progress must be None or a callable "
                        f"taking the number of finished requests")
    if until is None:
        return None
    if not is_real(until):
        raise TypeError(f"run(until={until!r}): until must be None (run to the end) or a "
                        f"time in seconds, got {type(until).__name__}")
    if until == math.inf:  # no time is reached: the same as None, literally
        return None
    if not math.isfinite(until) or until < 0:
        raise ValueError(f"run(until={until!r}): until must be None or inf (run to the end) or "
                         f"a time >= 0 s")
    return float(until)


def stuck_error(rounds: int, now: float, num_active: int) -> RuntimeError:
    return RuntimeError(
        f"the scheduler made no progress: {rounds} empty plans in a row at t={now!r} s with "
        f"{num_active} request(s) released and none schedulable; this is a bug, please "
        f"report it with the config")


def bad_makespan(makespan: float, now: float, iteration: int, plan, engine_name: str,
                 compute_latency: float) -> LatencyError:
    """The error for an iteration whose makespan would not move the clock
    forward to a finite time (its op latencies are already checked)."""
    what = (f"iteration {iteration} ({plan.batch.num_requests} request(s), "
            f"{plan.batch.num_tokens} token(s)) at t={now!r} s")
    if math.isnan(makespan) or math.isinf(makespan):
        return LatencyError(
            f"the network schedule of {what} has a makespan of {makespan!r} s with finite "
            f"op latencies; an iteration must take a finite time > 0 s")
    if makespan <= 0:
        return LatencyError(
            f"{what} took {makespan!r} s: engine {engine_name!r} timed its ops at "
            f"{compute_latency!r} s in all; an iteration must take > 0 s, or the clock "
            f"never moves")
    return LatencyError(
        f"{what} took {makespan!r} s, which is lost in rounding at that time (the clock "
        f"would not move); an iteration must move the clock forward")


class RequestsTooLongError(ValueError):
    """Requests longer than ``max_model_len`` (filter the trace or raise the limit)."""


def length_limit(max_model_len, model) -> int:
    """The longest request served: ``max_model_len``, or the model's context."""
    return max_model_len or model.max_seq_len


def check_lengths(max_model_len, model, num_prompt_tokens, num_output_tokens, ids=None) -> None:
    """Refuse requests longer than ``max_model_len`` (None: the model's context).

    Raises
    ------
    ValueError
        Naming how many are too long and the first of them (by ``ids``, the
        caller's request ids, when given), with what to do.
    """
    limit = length_limit(max_model_len, model)
    total = num_prompt_tokens + num_output_tokens
    over = np.flatnonzero(total > limit)
    if len(over):
        i = int(over[0])
        name = int(ids[i]) if ids is not None else i
        source = "as given" if max_model_len else f"{model.name}'s context"
        raise RequestsTooLongError(
            f"{len(over)} of {len(total)} requests are longer than max_model_len={limit} "
            f"tokens ({source}); the "
            f"first is request {name} with {int(num_prompt_tokens[i])} prompt + "
            f"{int(num_output_tokens[i])} output tokens. Filter the trace, or pass "
            f"max_model_len >= {int(total.max())} to serve them beyond the model's "
            f"context")


#: What ``Instance.submit`` takes for a request whose KV moves between instances.
TRANSFER_KEYS = ("num_external_tokens", "external_latency", "hold_kv", "first_token_at")
_TRANSFER_KEYS = frozenset(TRANSFER_KEYS)


def check_transfer(scheduler, transfer: dict) -> None:
    """Refuse unknown KV-transfer arguments (prefill/decode disaggregation),
    and any to a scheduler that cannot take them (only vLLM V1's has
    ``transfers``)."""
    if not transfer:
        return
    if not transfer.keys() <= _TRANSFER_KEYS:
        unknown = sorted(transfer.keys() - _TRANSFER_KEYS)
        raise ValueError(f"Instance.submit: unknown argument {unknown[0]!r}; a request whose KV "
                         f"moves between instances takes {list(TRANSFER_KEYS)}")
    if not hasattr(scheduler, "transfers"):
        raise ValueError(f"moving KV between instances ({sorted(transfer)}) needs "
                         f"scheduling='vllm-v1'; this instance schedules with "
                         f"{scheduler.config.policy!r}")
