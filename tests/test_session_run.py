"""Closed-loop multi-turn sessions on an instance: turns arrive a think time after the
previous turn finished, and later turns find their own history in the prefix cache."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb import SimConfig
from llmsim_nb.instance import Instance
from llmsim_nb.instance.session_run import SessionRun
from llmsim_nb.system import build_instance
from llmsim_nb.workload.sessions import Session, SessionWorkload, Turn, multi_turn_sessions


def instance(caching="on"):
    return Instance(build_instance(SimConfig.from_flags(
        model_name="gpt2", scheduling="vllm-v1", enable_prefix_caching=caching)))


def workload():
    turns = (Turn(40, 8, 0.0), Turn(20, 8, 0.5), Turn(30, 4, 1.0))
    return SessionWorkload((Session(0.0, turns), Session(0.2, turns[:2])), "two sessions")


def test_turns_arrive_a_think_time_after_the_previous_finished():
    run = SessionRun(instance(), workload())
    ds = run.run()
    assert run.turn_of == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]
    arrival, finished = ds["arrival_at"].values, ds["finished_at"].values
    assert np.isfinite(finished).all()
    assert arrival[2] == pytest.approx(finished[0] + 0.5)
    assert arrival[3] == pytest.approx(finished[1] + 0.5)
    assert arrival[4] == pytest.approx(finished[2] + 1.0)
    # Prompts grow with the conversation: 40, 40+8+20, 40+8+20+8+30.
    assert ds["num_prompt_tokens"].values.tolist() == [40, 40, 68, 68, 106]


def test_later_turns_hit_their_own_history():
    ds = SessionRun(instance(), workload()).run()
    cached = ds["num_cached_tokens"].values
    block = 16
    # Turn 1 repeats turn 0's 40 prompt tokens and 7 computed outputs (the 8th
    # was never fed back): 47 tokens -> 2 full blocks.
    assert cached.tolist()[:2] == [0, 0]
    assert cached[2] == (47 // block) * block and cached[3] == (47 // block) * block
    off = SessionRun(instance("off"), workload()).run()
    assert (off["num_cached_tokens"].values == 0).all()
    assert ds["ttft"].values[2:].sum() < off["ttft"].values[2:].sum()


def test_step_is_the_api_and_run_repeats_it():
    stepped = SessionRun(instance(), workload())
    count = 0
    from llmsim_nb.instance.instance import SimulationFinished
    while True:
        try:
            stepped.step()
        except SimulationFinished:
            break
        count += 1
    ran = SessionRun(instance(), workload())
    ds = ran.run()
    assert count == ds.sizes["iteration"]
    a, b = stepped.instance.results(), ds
    for name in ("t_end", "finished_at", "num_cached_tokens", "arrival_at"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_generated_sessions_run_and_every_turn_finishes_once():
    wl = multi_turn_sessions(6, 3, (10, 40), (4, 12), 0.3, session_rate=2.0,
                             system_prompt_len=32, rng=np.random.default_rng(1))
    ds = SessionRun(instance(), wl).run()
    assert ds.sizes["request"] == wl.num_requests
    assert np.isfinite(ds["finished_at"].values).all()
    assert (ds["num_cached_tokens"].values > 0).sum() >= wl.num_requests - 1


def test_refuses_a_used_instance():
    inst = instance()
    SessionRun(inst, workload()).run()
    with pytest.raises(ValueError, match="fresh instance"):
        SessionRun(inst, workload())
