"""The run buffers in chunks: Recorder and TokenTimes keep every value, in order.

Both grow by chunks (doubling up to a cap, then fixed), so a long run holds
about what it recorded; these tests cross many chunk boundaries with small
caps and compare against the values by hand.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import llmsim_nb.instance.token_times as token_times
import llmsim_nb.results.recorder as recorder
from llmsim_nb.instance.token_times import TokenTimes
from llmsim_nb.models.ops import BatchShape
from llmsim_nb.results.recorder import IterationRecord, Recorder
from llmsim_nb.results.variables import ITERATION_VARS
from llmsim_nb.scheduler.plan import IterationPlan


def record(k: int) -> IterationRecord:
    batch = BatchShape.from_lists([1] * (k % 3 + 1), [k] * (k % 3 + 1),
                                  request_ids=list(range(k % 3 + 1)))
    plan = IterationPlan(iteration=k, scheduled_at=float(k), batch=batch,
                         num_prompt_tokens=np.zeros(k % 3 + 1, dtype=np.int64),
                         evicted_request_ids=(), reloaded_request_ids=(), evicted_bytes=0.0,
                         reloaded_bytes=0.0, num_used_blocks=k, num_blocks=1000)
    return IterationRecord(plan=plan, t_start=float(k), t_end=k + 0.5, compute_latency=0.25,
                           host_transfer_latency=0.0, op_latency=np.array([k, 2.0 * k]),
                           finished=())


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 40])
def test_recorder_keeps_every_row_in_order(monkeypatch, n):
    monkeypatch.setattr(recorder, "CHUNK_ROWS", 4)
    rec = Recorder(("a", "b"), capacity=1)
    for k in range(n):
        rec.append(record(k))
    assert rec.num_iterations == n
    arrays = rec.iteration_arrays()
    assert arrays["t_start"].tolist() == [float(k) for k in range(n)]
    assert arrays["batch_size"].tolist() == [k % 3 + 1 for k in range(n)]
    assert arrays["batch_size"].dtype == np.int64 and arrays["t_end"].dtype == np.float64
    assert arrays["num_used_blocks"].tolist() == list(range(n))
    assert arrays["op_latency"].tolist() == [[k, 2.0 * k] for k in range(n)]
    assert set(arrays) == {*ITERATION_VARS, "op_latency"}
    assert "op_latency" not in rec.iteration_arrays(with_ops=False)
    # Chunks of 1, 2, 4, 4, ...: at most one chunk partly used.
    sizes = [len(rows) for rows, _ in rec._full] + [len(rec._rows)]
    assert sizes[:3] == [1, 2, 4][:len(sizes)]
    assert all(s == 4 for s in sizes[3:])
    assert sum(sizes) - n < max(sizes) or n == 0


def test_recorder_arrays_are_new_arrays():
    rec = Recorder(("a", "b"))
    rec.append(record(1))
    a = rec.column("t_start")
    a[0] = 99.0
    assert rec.column("t_start").tolist() == [1.0]


def emit(times: TokenTimes, table, ids: list[int], at: float) -> None:
    batch = SimpleNamespace(request_ids=np.array(ids, dtype=np.int64),
                            num_logit_tokens=np.ones(len(ids), dtype=np.int64))
    times.record(table, SimpleNamespace(batch=batch), at)


def test_token_times_gaps_across_chunks(monkeypatch):
    monkeypatch.setattr(token_times, "CHUNK_SLOTS", 4)
    table = SimpleNamespace(last_token_at=np.full(5, np.nan))
    times = TokenTimes(capacity=2)
    want = []
    last = [None] * 5
    at = 0.0
    rng = np.random.default_rng(3)
    for _ in range(30):
        at += 0.125
        ids = sorted(int(i) for i in rng.choice(5, int(rng.integers(1, 4)), replace=False))
        emit(times, table, ids, at)
        for i in ids:
            if last[i] is not None:
                want.append(at - last[i])
            last[i] = at
    assert times.num_gaps == len(want)
    assert times.gaps().tolist() == want
    out = np.full(len(want) + 2, -1.0)
    times.copy_gaps(out)
    assert out[:len(want)].tolist() == want and out[len(want):].tolist() == [-1.0, -1.0]
    assert all(len(c) <= 4 for c in times._full)  # capped chunks


def test_token_times_batch_larger_than_a_chunk(monkeypatch):
    monkeypatch.setattr(token_times, "CHUNK_SLOTS", 2)
    table = SimpleNamespace(last_token_at=np.full(6, np.nan))
    times = TokenTimes(capacity=2)
    emit(times, table, list(range(6)), 1.0)
    emit(times, table, list(range(6)), 1.5)
    assert times.gaps().tolist() == [0.5] * 6


def test_moved_gaps_are_kept_once_and_later_gaps_follow_them(monkeypatch):
    monkeypatch.setattr(token_times, "CHUNK_SLOTS", 4)
    table = SimpleNamespace(last_token_at=np.full(3, np.nan))
    times = TokenTimes(capacity=2)
    for k in range(6):  # gaps 0.5 for each of 3 requests from the second emission
        emit(times, table, [0, 1, 2], 0.5 * k)
    shared = times.shared_gaps()
    assert shared.tolist() == [0.5] * 15 and not shared.flags.writeable
    assert times.shared_gaps() is shared  # nothing recorded since: the same array
    assert times._full[0] is shared  # the recorder keeps the returned array itself
    with pytest.raises(ValueError, match="read-only"):
        shared[0] = 1.0
    emit(times, table, [1], 4.0)  # one more gap of 1.5: into a new chunk
    again = times.shared_gaps()
    assert again is not shared and again.tolist() == [0.5] * 15 + [1.5]
    assert shared.tolist() == [0.5] * 15  # the earlier results are unchanged


def test_move_gaps_writes_the_callers_array_and_keeps_its_part(monkeypatch):
    monkeypatch.setattr(token_times, "CHUNK_SLOTS", 4)
    table = SimpleNamespace(last_token_at=np.full(2, np.nan))
    times = TokenTimes(capacity=2)
    for k in range(4):
        emit(times, table, [0, 1], 0.25 * k)
    out = np.full(8, -1.0)
    times.move_gaps(out[1:])
    assert out.tolist() == [-1.0] + [0.25] * 6 + [-1.0]
    assert times.num_gaps == 6 and np.shares_memory(times._full[0], out)
    assert times.gaps().tolist() == [0.25] * 6


def test_lazy_arrays_read_each_variable_when_asked_and_equal_the_eager_ones():
    rec = Recorder(("a", "b"), capacity=2)
    for k in range(9):
        rec.append(record(k))
    others = {"ttft": np.array([0.5, 0.25])}
    lazy, eager = rec.lazy_arrays(others), rec.iteration_arrays(with_ops=False)
    assert list(lazy) == [*ITERATION_VARS, "ttft"] and len(lazy) == len(ITERATION_VARS) + 1
    for name in ITERATION_VARS:
        assert np.array_equal(lazy[name], eager[name], equal_nan=True)
        assert lazy[name].dtype == eager[name].dtype
        assert lazy[name] is not lazy[name]  # made at each read, not kept
    assert lazy["ttft"] is others["ttft"] and "op_latency" not in lazy
    assert "t_start" in lazy and "ttft" in lazy
    with pytest.raises(KeyError):
        lazy["op_latency"]


def test_lazy_instance_arrays_need_no_op_latency():
    from llmsim_nb import SimConfig, Simulator
    from llmsim_nb.workload.trace import Trace
    sim = Simulator(SimConfig.from_flags(model_name="gpt2", hardware="a100-80gb"),
                    Trace(np.array([0.0, 0.01]), np.array([16, 8]), np.array([3, 2])))
    sim.advance()
    lazy = sim.result_arrays(with_ops=False, lazy=True)
    eager = sim.result_arrays(with_ops=False)
    for name in (*ITERATION_VARS, "ttft", "inter_token_latency"):
        assert np.array_equal(lazy[name].values, eager[name].values, equal_nan=True), name
    with pytest.raises(ValueError, match="with_ops=False"):
        sim.result_arrays(lazy=True)
