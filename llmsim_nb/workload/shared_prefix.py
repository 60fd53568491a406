"""Groups of prompts that share a system prompt (inference-perf's ``shared_prefix`` data).

``num_groups`` groups of ``prompts_per_group`` prompts each: every prompt of
group ``g`` is a system prompt of ``system_prompt_len`` tokens common to the
group, then a question of ``question_len`` tokens of its own; every request
generates ``output_len`` tokens.

Ids (see :mod:`.content`), with ``G = num_groups``, ``P = prompts_per_group``
and prompt ``k = g * P + p`` (prompt ``p`` of group ``g``):

- system prompt of group ``g``: segment id ``g`` (``0 .. G - 1``);
- question of prompt ``k``: segment id ``G + k``;
- output of prompt ``k``: output id ``G + G * P + k``.

Order: inference-perf builds the prompts group by group and then shuffles them
all, so requests of one group are spread over the run rather than sent back to
back. Here the ``G * P`` prompts are likewise put in a random order: request
``i`` is prompt ``rng.permutation(G * P)[i]``. The permutation is drawn first,
then the arrivals (none for ``"constant"``).
"""

from __future__ import annotations

import numpy as np

from ._checks import check_int, check_positive, check_rng
from .content import PromptContent
from .generators import constant_arrivals, gamma_arrivals, poisson_arrivals
from .recipe import MAX_GENERATED_REQUESTS
from .trace import MAX_TOKENS, Trace

__all__ = ["shared_prefix_trace"]

_ARRIVALS = ("poisson", "constant", "gamma")
_WHERE = "shared_prefix_trace"


def shared_prefix_trace(num_groups: int, prompts_per_group: int, system_prompt_len: int,
                        question_len: int, output_len: int, *, rate: float,
                        arrival: str = "poisson", cv: float = 1.0,
                        rng: np.random.Generator) -> Trace:
    """Generate a shared-system-prompt workload with content.

    Parameters
    ----------
    num_groups : int
        Number of distinct system prompts, ``>= 1``.
    prompts_per_group : int
        Prompts (requests) per system prompt, ``>= 1``.
    system_prompt_len : int
        Tokens of each system prompt, ``>= 1``.
    question_len : int
        Tokens of each prompt's own question, ``>= 1``.
    output_len : int
        Tokens each request generates, ``>= 1``.
    rate : float
        Mean arrival rate in requests per second, finite and ``> 0``.
    arrival : {"poisson", "constant", "gamma"}, optional
        Arrival process (:func:`.poisson_arrivals`,
        :func:`.generators.constant_arrivals`, :func:`.gamma_arrivals`).
    cv : float, optional
        Coefficient of variation of the gaps, for ``"gamma"`` only (the other
        processes require the default 1).
    rng : numpy.random.Generator
        The only source of randomness (the order, then the arrivals).

    Returns
    -------
    Trace
        ``num_groups * prompts_per_group`` requests of ``system_prompt_len +
        question_len`` prompt tokens, first at 0 s, in the order the module
        docstring gives, with ``content``; ``source`` names every parameter.

    Raises
    ------
    ValueError
        Naming the argument, for a non-integer or too small count or length,
        more than 10 million requests, a prompt longer than ``2**31 - 1``
        tokens, a bad rate, process, cv or rng.
    """
    rng = check_rng(_WHERE, rng)
    groups = check_int(_WHERE, "num_groups", num_groups, 1)
    per = check_int(_WHERE, "prompts_per_group", prompts_per_group, 1)
    system = check_int(_WHERE, "system_prompt_len", system_prompt_len, 1)
    question = check_int(_WHERE, "question_len", question_len, 1)
    out = check_int(_WHERE, "output_len", output_len, 1)
    rate = check_positive(_WHERE, "rate", rate)
    cv = check_positive(_WHERE, "cv", cv, allow_zero=True)
    if arrival not in _ARRIVALS:
        raise ValueError(f"{_WHERE}: arrival must be one of {_ARRIVALS}, got {arrival!r}")
    if arrival != "gamma" and cv != 1.0:
        raise ValueError(f"{_WHERE}: cv = {cv:g} only applies to arrival='gamma'; leave it at 1 "
                         f"for arrival={arrival!r}")
    if system + question > MAX_TOKENS or out > MAX_TOKENS:
        raise ValueError(f"{_WHERE}: system_prompt_len + question_len = {system + question} and "
                         f"output_len = {out} must be at most {MAX_TOKENS} (2**31 - 1) tokens")
    n = groups * per
    if n > MAX_GENERATED_REQUESTS:
        raise ValueError(f"{_WHERE}: num_groups * prompts_per_group = {n} requests; at most "
                         f"{MAX_GENERATED_REQUESTS} are generated")
    prompts = rng.permutation(n)
    if arrival == "poisson":
        times = poisson_arrivals(rng, n, rate)
    elif arrival == "gamma":
        times = gamma_arrivals(rng, n, rate, cv)
    else:
        times = constant_arrivals(rng, n, rate)
    starts = np.arange(0, 2 * n + 1, 2, dtype=np.int64)
    ids = np.empty(2 * n, dtype=np.int64)
    ids[0::2] = prompts // per
    ids[1::2] = groups + prompts
    lengths = np.tile(np.array([system, question], dtype=np.int64), n)
    content = PromptContent(starts, ids, lengths, groups + n + prompts,
                            np.zeros(n, dtype=np.int64))
    spec = f"arrival={arrival}" + (f", cv={cv:g}" if arrival == "gamma" else "")
    source = (f"shared_prefix(num_groups={groups}, prompts_per_group={per}, system_prompt_len="
              f"{system}, question_len={question}, output_len={out}, rate={rate:g}/s, {spec}, "
              f"order=random permutation)")
    return Trace(times, np.full(n, system + question, dtype=np.int64),
                 np.full(n, out, dtype=np.int64), source=source, content=content)
