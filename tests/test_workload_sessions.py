"""Closed-loop multi-turn sessions: Turn, Session, SessionWorkload, multi_turn_sessions."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb.workload import (
    Request,
    RequestContent,
    Session,
    SessionWorkload,
    Turn,
    multi_turn_sessions,
)


def workload() -> SessionWorkload:
    a = Session(0.0, (Turn(10, 3), Turn(20, 4, think_time=1.5), Turn(5, 6, think_time=0.5)),
                system_prompt_len=100)
    b = Session(2.0, (Turn(7, 2),), system_prompt_len=100)
    return SessionWorkload((a, b), source="hand-written")


def test_turn_prompts_repeat_the_conversation_so_far():
    w = workload()
    assert w.num_sessions == 2 and w.num_requests == 4
    r = w.request(0, 2, arrival_at=12.0, request_id=7)
    assert r == Request(7, 12.0, 100 + 10 + 3 + 20 + 4 + 5, 6, content=r.content)
    # system 0; session 0's turns are the workload's turns 0, 1, 2: users 1, 3, 5, outputs 2, 4, 6
    assert r.content == RequestContent((0, 1, 2, 3, 4, 5), (100, 10, 3, 20, 4, 5), 6)
    assert w.content(0, 0) == RequestContent((0, 1), (100, 10), 2)
    assert w.content(0, 1) == RequestContent((0, 1, 2, 3), (100, 10, 3, 20), 4)
    # session 1's turn 0 is the workload's turn 3: ids 7 and 8, sharing only the system prompt
    assert w.content(1, 0) == RequestContent((0, 7), (100, 7), 8)
    assert w.turn_ids(1, 0) == (7, 8)


def test_earlier_output_ids_are_the_later_segments():
    w = workload()
    for k in range(2):
        assert w.content(0, k).output_id in w.content(0, k + 1).segment_ids
        assert w.content(0, k + 1).segment_ids[:len(w.content(0, k).segment_ids)] == \
            w.content(0, k).segment_ids


def test_without_a_system_prompt_there_is_no_system_segment():
    w = SessionWorkload((Session(0.0, (Turn(4, 2), Turn(3, 1))),))
    assert w.content(0, 1) == RequestContent((1, 2, 3), (4, 2, 3), 4)
    assert w.max_prompt_tokens() == 9


def test_first_arrivals_and_longest_prompt():
    w = workload()
    assert w.first_arrivals().tolist() == [0.0, 2.0]
    assert w.max_prompt_tokens() == 142


@pytest.mark.parametrize(("build", "match"), [
    (lambda: Turn(0, 1), r"Turn.num_user_tokens = 0; must be an integer from 1"),
    (lambda: Turn(1, 0), r"Turn.num_output_tokens = 0; must be an integer from 1"),
    (lambda: Turn(1, 1, think_time=-1), r"Turn.think_time = -1; must be a finite number"),
    (lambda: Turn(1, 1, think_time=float("nan")), r"Turn.think_time = nan"),
    (lambda: Turn(1.0, 1), r"Turn.num_user_tokens = 1.0"),
    (lambda: Session(-1.0, (Turn(1, 1),)), r"Session.start_at = -1.0; must be a finite number"),
    (lambda: Session(0.0, ()), r"Session.turns must be a non-empty tuple of Turn"),
    (lambda: Session(0.0, (Turn(1, 1), (1, 1))), r"Session.turns\[1\] is a tuple; expected Turn"),
    (lambda: Session(0.0, (Turn(1, 1),), system_prompt_len=-1),
     r"Session.system_prompt_len = -1; must be an integer from 0"),
    (lambda: Session(0.0, (Turn(2**30, 2**30), Turn(2**30, 1))),
     r"turn 1's prompt would hold 3221225472 tokens"),
    (lambda: SessionWorkload(()), r"SessionWorkload.sessions must be a non-empty tuple"),
    (lambda: SessionWorkload((Session(1.0, (Turn(1, 1),)), Session(0.5, (Turn(1, 1),)))),
     r"sessions\[1\].start_at = 0.5 is earlier than sessions\[0\]'s 1.0"),
    (lambda: SessionWorkload((Turn(1, 1),)), r"sessions\[0\] is a Turn; expected Session"),
    (lambda: workload().request(2, 0, 0.0, 0), r"session_index = 2; must be an integer from 0 "
                                               r"to 1"),
    (lambda: workload().request(1, 1, 0.0, 0), r"turn_index = 1; session 1 has turns 0 to 0"),
    (lambda: workload().request(0, 0, -1.0, 0), r"Request.arrival_at must be finite and >= 0"),
])
def test_bad_sessions_are_refused_naming_the_field(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_generated_sessions_follow_their_parameters():
    w = multi_turn_sessions(50, (1, 4), (10, 20), 8, 2.0, session_rate=5.0,
                            system_prompt_len=30, rng=np.random.default_rng(3))
    starts = w.first_arrivals()
    assert starts[0] == 0.0 and np.all(np.diff(starts) >= 0)
    turns = [t for s in w.sessions for t in s.turns]
    assert w.num_requests == len(turns)
    assert {len(s.turns) for s in w.sessions} <= {1, 2, 3, 4}
    assert all(10 <= t.num_user_tokens <= 20 and t.num_output_tokens == 8 for t in turns)
    assert all(s.turns[0].think_time == 0.0 for s in w.sessions)
    assert all(s.system_prompt_len == 30 for s in w.sessions)
    assert np.mean([t.think_time for s in w.sessions for t in s.turns[1:]]) == \
        pytest.approx(2.0, rel=0.5)
    assert w.source.startswith("multi_turn_sessions(num_sessions=50, turns_per_session=(1, 4)")
    again = multi_turn_sessions(50, (1, 4), (10, 20), 8, 2.0, session_rate=5.0,
                                system_prompt_len=30, rng=np.random.default_rng(3))
    assert again == w


def test_generated_ids_never_collide():
    w = multi_turn_sessions(5, 3, 4, 2, 0.0, session_rate=1.0, system_prompt_len=6,
                            rng=np.random.default_rng(0))
    fresh = [w.turn_ids(s, k) for s in range(5) for k in range(3)]
    flat = [i for pair in fresh for i in pair]
    assert len(set(flat)) == 30 and 0 not in flat
    assert all(t.think_time == 0.0 for s in w.sessions for t in s.turns)
    last = w.content(4, 2)
    assert last.num_prompt_tokens == 6 + 2 * (4 + 2) + 4 == w.max_prompt_tokens()


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(num_sessions=0), "num_sessions must be >= 1, got 0"),
    (dict(turns_per_session=(3, 2)), r"turns_per_session = \(3, 2\); must have 1 <= low <= high"),
    (dict(user_tokens=0), r"user_tokens = 0; must have 1 <= low"),
    (dict(output_tokens=(1, 2, 3)), r"output_tokens must be an integer or a \(low, high\) pair"),
    (dict(output_tokens=1.5), r"output_tokens must be an integer"),
    (dict(think_time=-1.0), "think_time must be a finite number >= 0"),
    (dict(session_rate=0.0), "session_rate must be a finite number > 0"),
    (dict(system_prompt_len=-1), "system_prompt_len must be >= 0"),
    (dict(rng=None), "rng must be a numpy.random.Generator"),
    (dict(num_sessions=10**7, turns_per_session=2),
     r"num_sessions \* turns_per_session = 10000000 \* 2 may exceed 10000000"),
])
def test_generator_refuses_bad_arguments(kwargs, match):
    args = dict(num_sessions=2, turns_per_session=2, user_tokens=4, output_tokens=2,
                think_time=1.0, session_rate=1.0, rng=np.random.default_rng(0))
    args.update(kwargs)
    with pytest.raises(ValueError, match=f"multi_turn_sessions: {match}"):
        multi_turn_sessions(**args)
