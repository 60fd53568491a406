"""StateBoard and PoolView: what routers see, against a by-hand reference.

The board answers "each instance as of time t" incrementally (a heap of
instances with pending snapshots or routed requests); the reference below
answers it from the whole history, the definition in state_board.py's
docstring. Routers that pick from the view must choose what they choose from
the InstanceStates.
"""

from __future__ import annotations

from bisect import bisect_right

import numpy as np
import pytest

from llmsim_nb.cluster.instance_state import InstanceState
from llmsim_nb.cluster.pool_view import PoolView
from llmsim_nb.cluster.router import Router, get_router
from llmsim_nb.cluster.routers import (LeastKVRouter, LeastOutstandingRouter, RandomRouter,
                                       RoundRobinRouter)
from llmsim_nb.cluster.state_board import StateBoard


def reference(history, routed, num_blocks, k, at):
    """Instance k as of ``at``: the last snapshot at or before it, routed by then."""
    snap = (0.0, 0, 0, 0, 0)
    for s in history[k]:
        if s[0] <= at:
            snap = s
    _, waiting, running, finished, used = snap
    outstanding = max(bisect_right(routed[k], at) - finished, 0)
    return InstanceState(k, max(at, 0.0), waiting, running, outstanding, used, num_blocks[k])


def test_empty_board_is_the_empty_instance():
    board = StateBoard([10, 20])
    assert board.view([0, 1], 0.0).states() == [InstanceState(0, 0.0, 0, 0, 0, 0, 10),
                                                 InstanceState(1, 0.0, 0, 0, 0, 0, 20)]


def test_snapshot_visible_only_once_ended_and_outstanding_counted():
    board = StateBoard([8])
    board.routed(0, 1.0)
    board.routed(0, 1.0)
    board.record(0, 2.0, 1, 1, 0, 3)  # an iteration ending at 2.0
    assert board.view([0], 1.5).states() == [InstanceState(0, 1.5, 0, 0, 2, 0, 8)]
    board.record(0, 3.0, 0, 1, 1, 2)
    assert board.view([0], 2.0).states() == [InstanceState(0, 2.0, 1, 1, 2, 3, 8)]
    # 2.5: still the 2.0 snapshot; 3.0: one finished, one outstanding.
    assert board.view([0], 2.5).states()[0].num_used_blocks == 3
    assert board.view([0], 3.0).states() == [InstanceState(0, 3.0, 0, 1, 1, 2, 8)]


def test_negative_observation_time_is_time_zero():
    board = StateBoard([4])
    board.routed(0, 0.0)
    assert board.view([0], -0.5).states() == [InstanceState(0, 0.0, 0, 0, 0, 0, 4)]


@pytest.mark.parametrize("seed", range(6))
def test_board_equals_reference_on_random_histories(seed):
    rng = np.random.default_rng(seed)
    n = 5
    num_blocks = [int(b) for b in rng.integers(10, 50, n)]
    board = StateBoard(num_blocks)
    history = [[] for _ in range(n)]
    routed = [[] for _ in range(n)]
    clock = [0.0] * n  # each instance's own clock
    now = 0.0  # routing time (non-decreasing)
    finished = [0] * n
    last = -np.inf  # the latest observation
    for _ in range(400):
        event = rng.integers(3)
        if event == 0:  # an instance ends an iteration (maybe ahead of "now")
            k = int(rng.integers(n))
            clock[k] = max(clock[k], now) + float(rng.exponential(0.3))
            finished[k] = min(finished[k] + int(rng.integers(0, 2)), len(routed[k]))
            snap = (clock[k], int(rng.integers(5)), int(rng.integers(5)), finished[k],
                    int(rng.integers(num_blocks[k] + 1)))
            history[k].append(snap)
            board.record(k, *snap)
        elif event == 1:  # a request routed to an instance
            now += float(rng.exponential(0.1))
            k = int(rng.integers(n))
            routed[k].append(now)
            board.routed(k, now)
        else:  # a decision, maybe with staleness
            observed = now - float(rng.choice([0.0, 0.05, 0.5]))
            observed = last = max(observed, last)  # observations never go back
            pool = sorted(int(k) for k in rng.choice(n, int(rng.integers(1, n + 1)),
                                                     replace=False))
            got = board.view(pool, observed).states()
            want = [reference(history, routed, num_blocks, k, observed) for k in pool]
            assert got == want


def view_of(states):
    n = max(s.index for s in states) + 1
    cols = {f: [0] * n for f in ("num_waiting", "num_running", "num_outstanding",
                                 "num_used_blocks", "num_blocks")}
    for s in states:
        for f in cols:
            cols[f][s.index] = getattr(s, f)
    cols["num_blocks"] = [b or 1 for b in cols["num_blocks"]]
    return PoolView(sorted(s.index for s in states), states[0].observed_at, **cols)


@pytest.mark.parametrize("name", ["round_robin", "random", "least_outstanding", "least_kv"])
def test_view_routing_equals_state_routing(name):
    rng = np.random.default_rng(7)
    by_view = get_router(name, rng=np.random.default_rng(1))
    by_states = get_router(name, rng=np.random.default_rng(1))
    assert type(by_view)._uses_view
    for _ in range(300):
        pool = sorted(int(k) for k in rng.choice(8, int(rng.integers(1, 9)), replace=False))
        states = [InstanceState(k, 1.0, int(rng.integers(3)), int(rng.integers(3)),
                                int(rng.integers(4)), int(rng.integers(0, 6)), 5 + k % 3)
                  for k in pool]  # few distinct values: many ties
        view = view_of(states)
        assert view.states() == states
        assert by_view.route_pool(None, view) == by_states.route(None, states)


def test_least_outstanding_view_ties_go_to_the_lowest_index():
    view = view_of([InstanceState(k, 0.0, 0, 0, o, 0, 4) for k, o in
                    [(2, 1), (3, 0), (5, 0), (6, 2)]])
    assert LeastOutstandingRouter().route_pool(None, view) == 3
    view = view_of([InstanceState(k, 0.0, 0, 0, 1, u, 4) for k, u in [(1, 2), (4, 1), (7, 1)]])
    assert LeastKVRouter().route_pool(None, view) == 4


def test_subclass_overriding_route_is_asked_with_states():
    class Last(LeastOutstandingRouter):
        name = ""

        def _route(self, request, states):
            return states[-1].index

    class Public(RoundRobinRouter):
        name = ""

        def route(self, request, states):
            return states[0].index

    class Plain(Router):
        name = ""

        def _route(self, request, states):
            return states[1].index

    class Nothing(Router):
        name = ""

    view = view_of([InstanceState(k, 0.0, 0, 0, k, 0, 4) for k in (0, 1, 2)])
    assert not Last._uses_view and not Public._uses_view and not Plain._uses_view
    assert not Nothing._uses_view
    with pytest.raises(NotImplementedError, match="must implement _route"):
        Nothing().route_pool(None, view)
    assert Last().route_pool(None, view) == 2
    assert Public().route_pool(None, view) == 0
    assert Plain().route_pool(None, view) == 1
    assert RandomRouter._uses_view and RoundRobinRouter._uses_view
