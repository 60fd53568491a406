"""``llmsim run --shared_prefix`` and ``--multi_turn``: workloads that share prefixes.

Both are comma-separated whole numbers (a think time may be fractional), so a
command line reads as the inference-perf / session parameters it sets::

    --shared_prefix NUM_GROUPS,PROMPTS_PER_GROUP,SYSTEM_PROMPT_LEN,QUESTION_LEN,OUTPUT_LEN
    --multi_turn NUM_SESSIONS,TURNS,USER_TOKENS,OUTPUT_TOKENS,THINK_TIME_S

``--rate`` is requests per second for ``--shared_prefix`` and sessions started
per second for ``--multi_turn`` (default 10); ``--arrival`` and ``--cv`` pick
the arrival process of ``--shared_prefix``; ``--seed`` draws both.
"""

from __future__ import annotations

import argparse

SHARED_PREFIX_FIELDS = ("NUM_GROUPS", "PROMPTS_PER_GROUP", "SYSTEM_PROMPT_LEN", "QUESTION_LEN",
                        "OUTPUT_LEN")
MULTI_TURN_FIELDS = ("NUM_SESSIONS", "TURNS", "USER_TOKENS", "OUTPUT_TOKENS", "THINK_TIME_S")
DEFAULT_RATE = 10.0


def _numbers(flag: str, text: str, names: tuple[str, ...]) -> list[float]:
    parts = text.split(",")
    if len(parts) != len(names):
        raise ValueError(f"--{flag} {text!r}: expected {len(names)} comma-separated values "
                         f"{','.join(names)}, got {len(parts)}")
    out = []
    for name, part in zip(names, parts):
        try:
            value = float(part) if name.endswith("_S") else int(part)
        except ValueError:
            kind = "a number of seconds" if name.endswith("_S") else "a whole number"
            raise ValueError(f"--{flag} {text!r}: {name}={part!r} must be {kind}") from None
        if (value < 0 if name.endswith("_S") else value < 1) or value != value:
            bound = ">= 0" if name.endswith("_S") else ">= 1"
            raise ValueError(f"--{flag} {text!r}: {name}={part} must be {bound}")
        out.append(value)
    return out


def prefix_workload(args: argparse.Namespace, seed: int, dataset: str | None):
    """The trace (``--shared_prefix``) or session workload (``--multi_turn``) the
    flags ask for, or None when neither is given. Conflicts raise one line."""
    shared, multi = args.shared_prefix, args.multi_turn
    if shared is None and multi is None:
        return None
    mode = "--shared_prefix" if shared is not None else "--multi_turn"
    clashing = [f"--{name}" for name in ("num_requests", "lengths", "limit")
                if getattr(args, name) is not None]
    clashing += [f"--{name}" for name in ("drop_too_long", "sort") if getattr(args, name)]
    if shared is not None and multi is not None:
        clashing.insert(0, "--multi_turn")
    if dataset is not None:
        clashing.insert(0, "--dataset")
    if clashing:
        raise ValueError(f"{mode} generates its own workload; it cannot be combined with "
                         f"{', '.join(clashing)}")
    import numpy as np  # here: building the CLI parser must not import numpy

    rng = np.random.default_rng(seed)
    rate = DEFAULT_RATE if args.rate is None else args.rate
    if shared is not None:
        from ..workload.shared_prefix import shared_prefix_trace

        g, p, s, q, o = (int(v) for v in _numbers("shared_prefix", shared,
                                                   SHARED_PREFIX_FIELDS))
        arrival = args.arrival or "poisson"
        cv = {} if args.cv is None else {"cv": args.cv}
        try:
            return shared_prefix_trace(g, p, s, q, o, rate=rate, arrival=arrival, rng=rng, **cv)
        except ValueError as exc:
            raise ValueError(f"--shared_prefix {shared} (--rate {rate:g}, --arrival {arrival}"
                             f"{'' if args.cv is None else f', --cv {args.cv:g}'}): {exc}"
                             ) from None
    if args.arrival is not None or args.cv is not None:
        raise ValueError("--multi_turn sessions start as a Poisson process at --rate; "
                         "--arrival and --cv do not apply")
    from ..workload.sessions import multi_turn_sessions

    n, t, u, o, think = _numbers("multi_turn", multi, MULTI_TURN_FIELDS)
    try:
        return multi_turn_sessions(int(n), int(t), int(u), int(o), think, session_rate=rate,
                                   rng=rng)
    except ValueError as exc:
        raise ValueError(f"--multi_turn {multi} (--rate {rate:g}): {exc}") from None


def check_slos(args: argparse.Namespace) -> None:
    """``--slo_ttft`` / ``--slo_tpot`` must be finite seconds > 0 (before any run)."""
    from ..results.metrics import check_slo

    for name in ("slo_ttft", "slo_tpot"):
        check_slo(f"--{name}", getattr(args, name))


def check_session_lengths(instance, workload) -> None:
    """Refuse sessions whose longest turn exceeds the model's length, before any turn
    runs, naming the session and turn (a turn's prompt grows with its history)."""
    from ..instance.checks import length_limit

    limit = length_limit(instance.config.scheduler.max_model_len, instance.model)
    for s, session in enumerate(workload.sessions):
        for k, turn in enumerate(session.turns):
            need = session.prompt_tokens(k) + turn.num_output_tokens
            if need > limit:
                raise ValueError(f"--multi_turn: session {s} turn {k} needs {need} tokens "
                                 f"(the conversation so far, a {turn.num_user_tokens}-token "
                                 f"message and {turn.num_output_tokens} outputs) but "
                                 f"max_model_len is {limit}; use fewer or shorter turns, or "
                                 f"raise --max_model_len")
