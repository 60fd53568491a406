"""Checks of requests submitted to a cluster, made before anything runs."""

from __future__ import annotations

import numpy as np

from ..workload.request import Request


def check_order(request: Request, previous: Request | None, observed_until: float,
                staleness: float) -> None:
    """Refuse a request arriving before ``previous`` (the last submitted) or
    before a routing decision already made.

    Routers see the instances as of a decision's time minus ``staleness``,
    never earlier than ``observed_until`` (a decision already made, e.g. a
    hand-over routed while stepping): a request arriving before that cannot
    be routed as it would have been.
    """
    if previous is not None and request.arrival_at < previous.arrival_at:
        raise ValueError(f"request {request.request_id} arrives at {request.arrival_at} s, "
                         f"before the previous one ({previous.arrival_at} s); "
                         f"submit requests in arrival order")
    if request.arrival_at - staleness < observed_until:
        raise ValueError(f"request {request.request_id} arrives at {request.arrival_at} s, "
                         f"but the cluster has already routed as of "
                         f"{observed_until + staleness} s; submit requests "
                         f"before stepping past their arrival")


def check_fits(names: list[str], instances: list, roles: list[str], prompts: np.ndarray,
               outputs: np.ndarray, ids: np.ndarray) -> None:
    """Refuse requests that some instance they may be sent to could never hold
    (longer than it serves, or more KV than its blocks), naming the first.

    A prefill instance holds a request's prompt and first token only.
    """
    for name, inst, role in zip(names, instances, roles):
        mine = np.minimum(outputs, 1) if role == "prefill" else outputs
        inst.check_lengths(prompts, mine, ids=ids)
        kv = inst.kv_cache
        tokens = prompts + np.maximum(mine - 1, 0)  # max_kv_tokens, per request
        over = np.flatnonzero(kv.blocks_for(tokens) > kv.num_blocks)
        if len(over):
            i = int(over[0])
            raise ValueError(f"instance {name!r} cannot hold request {int(ids[i])}: its "
                             f"{int(tokens[i])} tokens need {int(kv.blocks_for(tokens[i]))} "
                             f"KV blocks, the instance has {kv.num_blocks}; give it more "
                             f"memory or drop the request")


__all__ = ["check_fits", "check_order"]
