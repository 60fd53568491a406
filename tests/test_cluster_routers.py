"""Routers of a cluster: hand-computed choices, a conformance check every
registered router passes, the registry's errors and InstanceState's checks."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from llmsim_nb.cluster.instance_state import InstanceState
from llmsim_nb.cluster.router import (ROUTERS, CallableRouter, Router, get_router,
                                      register_router)
from llmsim_nb.cluster.routers import (LeastKVRouter, LeastOutstandingRouter,
                                       PrefixAwareRouter, RandomRouter, RoundRobinRouter)
from llmsim_nb.workload.request import Request

REQUEST = Request(request_id=0, arrival_at=0.0, num_prompt_tokens=16, num_output_tokens=4)


def state(index, outstanding=0, used=0, blocks=100, cached=0, waiting=0, running=0, at=0.0):
    return InstanceState(index=index, observed_at=at, num_waiting=waiting, num_running=running,
                         num_outstanding=outstanding, num_used_blocks=used, num_blocks=blocks,
                         cached_prefix_tokens=cached)


def build(name):
    """Every registered router, built as a cluster would (rng always passed)."""
    return get_router(name, rng=np.random.default_rng(7))


def varied_states(n):
    """``n`` states whose loads, KV usage and caches differ (and sometimes tie)."""
    return [state(k, outstanding=(3 * k) % 5, used=(7 * k) % 11, blocks=10 + k,
                  cached=(16 * k) % 48) for k in range(n)]


# ----------------------------------------------------------------- behaviour
def test_round_robin_takes_instances_in_turn_and_resets():
    router = get_router("round_robin")
    states = [state(0), state(1), state(2)]
    assert [router.route(REQUEST, states) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    router.reset()
    assert router.route(REQUEST, states) == 0


def test_round_robin_follows_the_order_of_states_not_their_index():
    router = RoundRobinRouter()
    states = [state(4), state(2), state(9)]
    assert [router.route(REQUEST, states) for _ in range(4)] == [4, 2, 9, 4]
    # The cursor counts calls: with two states the 5th call (k=4) takes states[0].
    assert router.route(REQUEST, [state(1), state(3)]) == 1


def test_least_outstanding_picks_the_fewest_and_breaks_ties_by_lowest_index():
    router = get_router("least_outstanding")
    assert router.route(REQUEST, [state(0, 5), state(1, 2), state(2, 3)]) == 1
    assert router.route(REQUEST, [state(0, 4), state(1, 2), state(2, 2)]) == 1
    # Lowest index, not first position.
    assert router.route(REQUEST, [state(3, 1), state(1, 1), state(2, 6)]) == 1
    # KV usage and waiting queues do not matter to it.
    assert router.route(REQUEST, [state(0, 1, used=99), state(1, 2, used=0, waiting=0)]) == 0


def test_least_kv_picks_the_lowest_usage_then_fewer_outstanding_then_lowest_index():
    router = get_router("least_kv")
    # Usage 0.5, 0.25, 0.75: instance 1.
    assert router.route(REQUEST, [state(0, used=50), state(1, used=25), state(2, used=75)]) == 1
    # Usage is a fraction: 30/60 = 0.5 beats 40/50 = 0.8 though more blocks are used.
    assert router.route(REQUEST, [state(0, used=40, blocks=50),
                                  state(1, used=30, blocks=60)]) == 1
    # Equal usage (1/4 == 25/100): fewer outstanding wins.
    assert router.route(REQUEST, [state(0, outstanding=3, used=25),
                                  state(1, outstanding=1, used=1, blocks=4)]) == 1
    # Equal usage and outstanding: lowest index.
    assert router.route(REQUEST, [state(5, 2, used=10), state(2, 2, used=10)]) == 2


def test_prefix_aware_follows_the_cache_within_the_load_cap():
    router = get_router("prefix_aware", load_cap=2)
    # min outstanding 1, limit 3: instances 0 (1) and 2 (3) are candidates;
    # instance 1 (outstanding 4) has the longest prefix but is too busy.
    states = [state(0, 1, cached=0), state(1, 4, cached=64), state(2, 3, cached=32)]
    assert router.route(REQUEST, states) == 2
    # With a larger cap instance 1 becomes a candidate and wins.
    assert get_router("prefix_aware", load_cap=3).route(REQUEST, states) == 1


def test_prefix_aware_ties_by_fewer_outstanding_then_lowest_index():
    router = PrefixAwareRouter()  # load_cap 8
    assert router.route(REQUEST, [state(0, 5, cached=32), state(1, 2, cached=32),
                                  state(2, 0, cached=16)]) == 1
    assert router.route(REQUEST, [state(3, 2, cached=32), state(1, 2, cached=32)]) == 1


def test_prefix_aware_without_a_cached_prefix_is_least_outstanding():
    states = [state(0, 6), state(1, 2), state(2, 9), state(3, 2)]
    assert PrefixAwareRouter(load_cap=8).route(REQUEST, states) == 1
    assert LeastOutstandingRouter().route(REQUEST, states) == 1
    # Only a too-busy instance has the prefix: the candidates have none.
    states = [state(0, 3), state(1, 1), state(2, 20, cached=128)]
    assert PrefixAwareRouter(load_cap=8).route(REQUEST, states) == 1


def test_prefix_aware_with_load_cap_zero_only_uses_the_cache_among_the_least_busy():
    router = PrefixAwareRouter(load_cap=0)
    states = [state(0, 2, cached=16), state(1, 3, cached=64), state(2, 2, cached=48)]
    assert router.route(REQUEST, states) == 2


def test_random_draws_one_integer_per_request_from_its_generator():
    states = [state(k) for k in range(4)]
    router = get_router("random", rng=np.random.default_rng(123))
    got = [router.route(REQUEST, states) for _ in range(50)]
    expected = [int(i) for i in np.random.default_rng(123).integers(4, size=50)]
    assert got == expected
    assert set(got) == {0, 1, 2, 3}


def test_random_returns_the_index_of_the_drawn_state():
    states = [state(10), state(20), state(30)]
    draws = np.random.default_rng(5).integers(3, size=10)
    router = RandomRouter(rng=np.random.default_rng(5))
    assert [router.route(REQUEST, states) for _ in range(10)] == [states[d].index for d in draws]


def test_a_callable_router_sees_the_request_and_the_states():
    seen = []

    def longest_prompt_to_last(request, states):
        seen.append((request.request_id, type(states)))
        return states[-1].index if request.num_prompt_tokens > 8 else states[0].index

    router = get_router(longest_prompt_to_last)
    assert isinstance(router, CallableRouter) and router.name == "callable"
    assert router.route(REQUEST, [state(0), state(1), state(2)]) == 2
    short = Request(request_id=3, arrival_at=1.0, num_prompt_tokens=4, num_output_tokens=1)
    assert router.route(short, [state(0), state(1)]) == 0
    assert seen == [(0, tuple), (3, tuple)]
    assert get_router(lambda r, s: np.int64(1)).route(REQUEST, [state(0), state(1)]) == 1


def test_get_router_accepts_a_router_class_or_instance():
    assert isinstance(get_router(PrefixAwareRouter, load_cap=1), PrefixAwareRouter)
    built = LeastKVRouter()
    assert get_router(built) is built
    assert repr(get_router("prefix_aware", load_cap=3)) == "PrefixAwareRouter(load_cap=3)"
    assert get_router("prefix_aware").get_params() == {"load_cap": 8}


def test_routers_that_draw_nothing_ignore_the_rng():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    router = get_router("least_outstanding", rng=rng)
    router.route(REQUEST, [state(0), state(1)])
    assert rng.bit_generator.state == before


# -------------------------------------------------------------- conformance
@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_every_registered_router_conforms(name):
    router = build(name)
    assert isinstance(router, Router) and router.name == name
    for n in range(1, 6):
        states = varied_states(n)
        frozen = copy.deepcopy(states)
        for _ in range(3):
            chosen = router.route(REQUEST, states)
            assert type(chosen) is int and chosen in {s.index for s in states}
        assert states == frozen  # the list is neither reordered nor changed
        # Indices need not be 0..n-1 nor in order (a cluster may pass a subset).
        shuffled = [state(10 + 3 * k, outstanding=k % 2) for k in reversed(range(n))]
        assert router.route(REQUEST, shuffled) in {s.index for s in shuffled}
    with pytest.raises(ValueError, match="states is empty"):
        router.route(REQUEST, [])
    with pytest.raises(TypeError, match=r"states\[1\] is a dict"):
        router.route(REQUEST, [state(0), {"index": 1}])


@pytest.mark.parametrize("name", sorted(ROUTERS))
def test_every_registered_router_is_deterministic_under_a_seed(name):
    sequences = [[state(k, outstanding=(k * j) % 4, used=(k + j) % 7, blocks=8,
                        cached=16 * ((k + j) % 3)) for k in range(4)] for j in range(20)]

    def choices():
        router = get_router(name, rng=np.random.default_rng(2024))
        return [router.route(REQUEST, states) for states in sequences]

    first = choices()
    assert choices() == first
    router = build(name)
    router.route(REQUEST, sequences[0])
    router.reset()  # reset() exists on every router and never raises


def test_the_registered_routers_are_the_documented_ones():
    assert sorted(ROUTERS) == ["least_kv", "least_outstanding", "prefix_aware", "random",
                               "round_robin"]


# ------------------------------------------------------------------- errors
def test_an_unknown_name_lists_the_routers_and_suggests_one():
    with pytest.raises(ValueError) as info:
        get_router("least_outstandng")
    message = str(info.value)
    assert "\n" not in message
    assert "'least_outstandng'" in message
    assert "known routers: ['least_kv', 'least_outstanding', 'prefix_aware', 'random', " \
           "'round_robin']" in message
    assert message.endswith("did you mean 'least_outstanding'?")
    with pytest.raises(ValueError, match="did you mean 'round_robin'"):
        get_router("round-robin")
    with pytest.raises(ValueError) as info:
        get_router("zzz")
    assert "did you mean" not in str(info.value)


def test_random_without_a_generator_says_to_pass_one():
    with pytest.raises(ValueError, match=r"pass rng=numpy.random.default_rng\(seed\)"):
        get_router("random")
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator, got int"):
        get_router("random", rng=3)
    with pytest.raises(ValueError, match="needs a generator"):
        RandomRouter()


@pytest.mark.parametrize("value", [-1, 1.5, "8", None, True])
def test_a_bad_load_cap_names_the_parameter_and_value(value):
    with pytest.raises(ValueError) as info:
        get_router("prefix_aware", load_cap=value)
    message = str(info.value)
    assert f"load_cap={value!r}" in message and ">= 0" in message and "\n" not in message


def test_a_parameter_the_router_does_not_take_is_named():
    with pytest.raises(ValueError, match=r"router 'round_robin' has no parameter 'load_cap'; "
                                         r"it takes none"):
        get_router("round_robin", load_cap=2)
    with pytest.raises(ValueError, match=r"no parameter 'load_cp'; its parameters: "
                                         r"\['load_cap'\]; did you mean 'load_cap'\?"):
        get_router("prefix_aware", load_cp=2)
    with pytest.raises(ValueError, match="no parameter 'seed'"):
        get_router("random", rng=np.random.default_rng(0), seed=1)
    with pytest.raises(ValueError, match="takes no parameters"):
        get_router(LeastKVRouter(), load_cap=1)


@pytest.mark.parametrize("returned, shown", [(3, "3"), (-1, "-1"), (1.0, "1.0"),
                                             (True, "True"), ("0", "'0'"), (None, "None")])
def test_a_bad_callable_return_names_the_value_and_the_range(returned, shown):
    router = get_router(lambda request, states: returned)
    with pytest.raises(ValueError) as info:
        router.route(REQUEST, [state(0), state(1), state(2)])
    message = str(info.value)
    assert f"returned {shown};" in message and "3 instances given (0..2)" in message


def test_a_bad_callable_return_lists_non_contiguous_indices():
    router = get_router(lambda request, states: 1)
    with pytest.raises(ValueError, match=r"one of \[0, 4\]"):
        router.route(REQUEST, [state(4), state(0)])


def test_get_router_refuses_what_is_neither_a_name_nor_a_callable():
    with pytest.raises(TypeError, match="must be a router name"):
        get_router(3)
    with pytest.raises(ValueError, match="must be a callable"):
        CallableRouter(fn=3)


def test_register_router_refuses_duplicates_and_nameless_classes():
    class Again(Router):
        name = "least_kv"

    with pytest.raises(ValueError, match="'least_kv' is already registered"):
        register_router(Again)
    assert ROUTERS["least_kv"] is LeastKVRouter
    assert register_router(LeastKVRouter) is LeastKVRouter  # the same class again: a no-op

    class Nameless(Router):
        pass

    with pytest.raises(ValueError, match="non-empty str name"):
        register_router(Nameless)
    with pytest.raises(ValueError, match="expects a Router subclass"):
        register_router(dict)


def test_a_registered_router_is_found_by_name():
    class First(Router):
        name = "first_given"

        def _route(self, request, states):
            return states[0].index

    try:
        register_router(First)
        assert get_router("first_given").route(REQUEST, [state(2), state(0)]) == 2
    finally:
        ROUTERS.pop("first_given", None)


# ------------------------------------------------------------ InstanceState
def test_instance_state_kv_usage_and_plain_types():
    s = InstanceState(np.int64(1), np.float32(2.5), 0, 1, 2, np.int32(25), 100, 7)
    assert s.kv_usage == 0.25
    assert type(s.index) is int and type(s.num_used_blocks) is int
    assert type(s.observed_at) is float and s.observed_at == 2.5
    assert state(0, used=0, blocks=1).kv_usage == 0.0
    assert state(0, used=8, blocks=8).kv_usage == 1.0
    with pytest.raises(AttributeError):
        s.index = 3  # frozen


@pytest.mark.parametrize("field, value, needle", [
    ("index", -1, "index must be >= 0, got -1"),
    ("num_waiting", 1.5, "num_waiting must be an integer >= 0, got 1.5 of type float"),
    ("num_running", True, "num_running must be an integer >= 0, got True of type bool"),
    ("num_outstanding", -2, "num_outstanding must be >= 0, got -2"),
    ("num_used_blocks", "3", "num_used_blocks must be an integer >= 0, got '3'"),
    ("num_blocks", 0, "num_blocks must be >= 1, got 0"),
    ("cached_prefix_tokens", -5, "cached_prefix_tokens must be >= 0, got -5"),
    ("observed_at", -0.5, "observed_at must be a finite number of seconds >= 0, got -0.5"),
    ("observed_at", math.inf, "observed_at must be a finite number of seconds >= 0, got inf"),
    ("observed_at", math.nan, "got nan"),
    ("observed_at", "0", "got '0' of type str"),
    ("observed_at", False, "got False of type bool"),
])
def test_instance_state_refuses_bad_fields(field, value, needle):
    fields = dict(index=0, observed_at=0.0, num_waiting=0, num_running=0, num_outstanding=0,
                  num_used_blocks=0, num_blocks=4, cached_prefix_tokens=0)
    fields[field] = value
    with pytest.raises(ValueError) as info:
        InstanceState(**fields)
    assert f"InstanceState.{field}" in str(info.value) and needle in str(info.value)


def test_instance_state_refuses_more_used_blocks_than_it_has():
    with pytest.raises(ValueError, match="num_used_blocks=5 must be <= num_blocks=4"):
        state(0, used=5, blocks=4)


def test_a_trusted_state_equals_a_checked_one():
    from llmsim_nb.cluster.instance_state import InstanceState
    args = (2, 1.5, 3, 4, 9, 10, 20, 32)
    assert InstanceState.trusted(*args) == InstanceState(*args)
    assert InstanceState.trusted(*args[:-1]).cached_prefix_tokens == 0
