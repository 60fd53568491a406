"""Request scheduling priority: Request.priority, Trace.priority, trace files."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb.workload import (
    PromptContent,
    Request,
    Trace,
    TraceError,
    load_trace,
    save_trace,
)

LOW, HIGH = -(2**63), 2**63 - 1


def trace4(priority=(3, LOW, 0, HIGH), **kwargs) -> Trace:
    # arrivals that are whole nanoseconds, so files round-trip exactly
    return Trace(np.array([0.0, 0.25, 0.25, 1.5]), np.array([5, 6, 7, 8]),
                 np.array([1, 0, 2, 3]), source="t",
                 priority=None if priority is None else np.array(priority), **kwargs)


# ------------------------------------------------------------------- Request
def test_request_priority_defaults_to_zero_and_is_keyword_after_content():
    assert Request(0, 0.0, 4, 1).priority == 0
    r = Request(0, 0.0, 4, 1, None, -7)
    assert r.priority == -7 and r == Request(0, 0.0, 4, 1, priority=-7)
    assert type(Request(0, 0.0, 4, 1, priority=np.int64(5)).priority) is int
    assert Request(0, 0.0, 4, 1, priority=LOW).priority == LOW
    assert Request(0, 0.0, 4, 1, priority=HIGH).priority == HIGH


@pytest.mark.parametrize("value", [True, np.bool_(False), 1.0, "1", None, HIGH + 1, LOW - 1,
                                   np.uint64(HIGH + 1)])
def test_request_refuses_bad_priority(value):
    with pytest.raises(ValueError, match=r"Request\.priority must be an integer \(not bool\) "
                                         r"from -2\*\*63 to 2\*\*63 - 1 \(int64"):
        Request(0, 0.0, 4, 1, priority=value)


# --------------------------------------------------------------------- Trace
def test_trace_priority_is_a_read_only_int64_copy():
    given = np.array([3, -1, 0, 9], dtype=np.int32)
    t = trace4(given)
    given[0] = 100
    assert t.priority.dtype == np.int64 and t.priority.tolist() == [3, -1, 0, 9]
    assert not t.priority.flags.writeable
    assert Trace(np.zeros(2), [1, 1], [0, 0], priority=np.array([1, 2], np.uint64)).priority \
        .tolist() == [1, 2]


def test_trace_gives_requests_their_priority():
    t = trace4()
    assert [r.priority for r in t] == [3, LOW, 0, HIGH]
    assert t[1].priority == LOW and t[-1].priority == HIGH
    assert [r.priority for r in trace4(None)] == [0, 0, 0, 0]


def test_trace_operations_carry_priority():
    t = trace4()
    assert t[1:3].priority.tolist() == [LOW, 0]
    assert t[::2].priority.tolist() == [3, 0]
    assert t.head(2).priority.tolist() == [3, LOW]
    assert t.filter(lambda x: x.num_prompt_tokens != 6).priority.tolist() == [3, 0, HIGH]
    assert t.filter(np.array([False, True, True, False])).priority.tolist() == [LOW, 0]
    assert t.sort().priority.tolist() == [3, LOW, 0, HIGH]
    assert t.scale_rate(2).priority.tolist() == [3, LOW, 0, HIGH]
    assert t.summary() == trace4(None).summary()


def test_trace_without_priority_is_unchanged():
    t = trace4(None)
    assert t.priority is None
    for derived in (t[1:], t.head(2), t.filter(np.array([True, False, True, True])), t.sort(),
                    t.scale_rate(0.5)):
        assert derived.priority is None


def test_equality_compares_priority():
    assert trace4() == trace4()
    assert trace4() != trace4((3, LOW, 1, HIGH))
    assert trace4(None) != trace4((0, 0, 0, 0))  # as their files differ


@pytest.mark.parametrize("priority, match", [
    (np.array([1, 2, 3]), r"equal lengths.*'priority': 3"),
    (np.array([1.0, 2, 3, 4]), r"Trace\.priority must have an integer dtype.*float64"),
    (np.array([True, False, True, False]), r"integer dtype \(int64; not bool\).*bool"),
    (np.array([[1, 2], [3, 4]]), r"Trace\.priority must be a 1-D array or None"),
    (np.array([0, 0, 0, 2**63], dtype=np.uint64),
     r"Trace\.priority\[3\] = 9223372036854775808; must fit int64"),
])
def test_trace_refuses_bad_priority(priority, match):
    with pytest.raises(TraceError, match=match):
        trace4(priority)


def test_from_requests_makes_a_column_only_for_non_zero_priorities():
    t = trace4()
    assert Trace.from_requests(list(t), source="t") == t
    assert Trace.from_requests(list(trace4(None)), source="t") == trace4(None)
    assert Trace.from_requests(list(trace4((0, 0, 0, 0)))).priority is None
    mixed = Trace.from_requests([Request(0, 0.0, 3, 1), Request(1, 1.0, 3, 1, priority=-2)])
    assert mixed.priority.tolist() == [0, -2]


def test_priority_and_content_together():
    content = PromptContent(np.array([0, 1, 2, 3, 4]), np.array([1, 2, 3, 4]),
                            np.array([5, 6, 7, 8]), np.array([10, 11, 12, 13]),
                            np.zeros(4, dtype=np.int64))
    t = trace4(content=content)
    again = Trace.from_requests(list(t), source="t")
    assert again == t and again[3].content == t[3].content and again[3].priority == HIGH


# --------------------------------------------------------------------- files
@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_priority_round_trips_exactly_through_files(tmp_path, suffix):
    path = tmp_path / f"t{suffix}"
    t = trace4()
    back = load_trace(save_trace(t, path))
    assert back == Trace(t.arrival_at, t.num_prompt_tokens, t.num_output_tokens,
                         source=str(path), priority=t.priority)
    assert load_trace(path, limit=2).priority.tolist() == [3, LOW]
    zeros = load_trace(save_trace(trace4((0, 0, 0, 0)), path))
    assert zeros.priority is not None and zeros.priority.tolist() == [0, 0, 0, 0]
    assert load_trace(save_trace(trace4(None), path)).priority is None
    assert "priority" not in path.read_text()


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl"])
def test_priority_round_trips_with_content(tmp_path, suffix):
    content = PromptContent(np.array([0, 2, 3, 4, 5]), np.array([1, 2, 3, 4, 5]),
                            np.array([2, 3, 6, 7, 8]), np.array([10, 11, 12, 13]),
                            np.array([0, 4, 0, 0]))
    t = trace4(content=content)
    back = load_trace(save_trace(t, tmp_path / f"t{suffix}"))
    assert back.content == content and np.array_equal(back.priority, t.priority)


def test_written_priority_column_and_key(tmp_path):
    lines = save_trace(trace4(), tmp_path / "t.tsv").read_text().splitlines()
    assert lines[0] == "input_toks\toutput_toks\tarrival_time_ns\tpriority"
    assert lines[2] == f"6\t0\t250000000\t{LOW}"
    line = save_trace(trace4(), tmp_path / "t.jsonl").read_text().splitlines()[0]
    assert line == '{"input_toks": 5, "output_toks": 1, "arrival_time_ns": 0, "priority": 3}'


def test_sorting_a_file_reorders_its_priority(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("priority,input_toks,output_toks,arrival_time_ns\n"
                    "+5,4,1,20\n-1,4,1,10\n007,4,1,10\n")
    t = load_trace(path, sort=True)
    assert t.priority.tolist() == [-1, 7, 5]
    assert [r.priority for r in t] == [-1, 7, 5]


@pytest.mark.parametrize("cell, shown", [
    ("", "'' is empty"), ("1.5", "'1.5'"), ("1e3", "'1e3'"), ("1_000", "'1_000'"),
    ("true", "'true'"), ("--1", "'--1'"), ("+-1", "'+-1'"), ("١", "'١'"),
    (str(HIGH + 1), f"'{HIGH + 1}'"), (str(LOW - 1), f"'{LOW - 1}'"),
    ("1" * 5000, "'11111111111111111111... (5000 characters)'"),
], ids=lambda v: v if len(v) < 30 else f"{v[:10]}...")
def test_bad_priority_cells_are_refused_in_one_line(tmp_path, cell, shown):
    path = tmp_path / "bad.tsv"
    path.write_text(f"input_toks\toutput_toks\tarrival_time_ns\tpriority\n4\t1\t0\t2\n"
                    f"4\t1\t5\t{cell}\n")
    with pytest.raises(TraceError) as info:
        load_trace(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: row 2 (line 3): column 'priority' = ")
    assert shown in message
    assert f"from {LOW} to {HIGH} (int64" in message


@pytest.mark.parametrize("lines, match", [
    (['{"input_toks": 4, "output_toks": 1, "arrival_time_ns": 0, "priority": 1}',
      '{"input_toks": 4, "output_toks": 1, "arrival_time_ns": 1, "priority": 1.0}'],
     r"row 2 \(line 2\): key 'priority' = 1\.0; must be an integer from"),
    (['{"input_toks": 4, "output_toks": 1, "arrival_time_ns": 0, "priority": true}'],
     r"row 1 \(line 1\): key 'priority' = True; must be an integer"),
    (['{"input_toks": 4, "output_toks": 1, "arrival_time_ns": 0, "priority": "1"}'],
     r"key 'priority' = '1'; must be an integer"),
    (['{"input_toks": 4, "output_toks": 1, "arrival_time_ns": 0, "priority": null}'],
     r"key 'priority' = None; must be an integer"),
    ([f'{{"input_toks": 4, "output_toks": 1, "arrival_time_ns": 0, "priority": {HIGH + 1}}}'],
     r"key 'priority' = 9223372036854775808; must be an integer from -9223372036854775808"),
    (['{"input_toks": 4, "output_toks": 1, "arrival_time_ns": 0, "priority": 1}',
      '{"input_toks": 4, "output_toks": 1, "arrival_time_ns": 1}'],
     r"row 2 \(line 2\): missing key 'priority'; row 1 has it, so every row needs it"),
    (['{"input_toks": 4, "output_toks": 1, "arrival_time_ns": 0}', '',
      '{"input_toks": 4, "output_toks": 1, "arrival_time_ns": 1, "priority": 1}'],
     r"row 2 \(line 3\): has key 'priority' but row 1 has none; either every row has it"),
])
def test_bad_priority_keys_are_refused_in_one_line(tmp_path, lines, match):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceError, match=match) as info:
        load_trace(path)
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{path}: ")


def test_a_priority_column_alone_is_not_content(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("input_toks\toutput_toks\tarrival_time_ns\tpriority\n4\t1\t0\t-3\n"
                    f"4\t1\t1\t{'0' * 5000}1\n4\t1\t2\t-0{HIGH}\n")
    t = load_trace(path)
    assert t.content is None and t.priority.tolist() == [-3, 1, -HIGH]


def test_prefix_trace_readers_have_no_priority(tmp_path):
    path = tmp_path / "mooncake.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 600, "output_length": 2, '
                    '"hash_ids": [0, 1]}\n')
    assert load_trace(path).priority is None
