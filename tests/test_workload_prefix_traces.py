"""Prefix-sharing workloads: Mooncake and CC trace readers, shared-prefix generator."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from llmsim_nb.workload import (
    RequestContent,
    TraceError,
    load_cc_trace,
    load_mooncake_trace,
    load_trace,
    save_trace,
    shared_prefix_trace,
)

PREFIX = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "traces" / "prefix"


def shared(name: str) -> Path:
    path = PREFIX / name
    if not path.exists():
        pytest.skip(f"shared prefix-trace data not available: {path}")
    return path


def mooncake_file(tmp_path: Path, rows: list[dict], name: str = "mc.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def mc(t: int, p: int, o: int, ids: list[int]) -> dict:
    return {"timestamp": t, "input_length": p, "output_length": o, "hash_ids": ids}


def block_hit_fraction(trace) -> float:
    """Fraction of segments whose id an earlier request had (the README's statistic)."""
    seen: set[int] = set()
    hit = total = 0
    c = trace.content
    for i in range(len(trace)):
        ids = c.segment_ids[int(c.starts[i]):int(c.starts[i + 1])].tolist()
        hit += sum(s in seen for s in ids)
        total += len(ids)
        seen.update(ids)
    return hit / total


# ------------------------------------------------------------------ Mooncake
def test_mooncake_rows_become_segments_cut_at_block_boundaries(tmp_path):
    path = mooncake_file(tmp_path, [mc(0, 1000, 5, [0, 1]), mc(1500, 512, 0, [0]),
                                    mc(1500, 1025, 3, [0, 1, 7])])
    t = load_mooncake_trace(path)
    assert t.arrival_at.tolist() == [0.0, 1.5, 1.5]
    assert t.num_prompt_tokens.tolist() == [1000, 512, 1025]
    assert t.num_output_tokens.tolist() == [5, 0, 3]
    assert t[0].content == RequestContent((0, 1), (512, 488), 8)
    assert t[1].content == RequestContent((0,), (512,), 9)
    assert t[2].content.segment_lengths == (512, 512, 1)
    assert t.source == f"{path} (Mooncake trace, 512-token blocks)"
    assert load_trace(path) == t  # recognised by its keys
    assert load_trace(path, limit=2) == load_mooncake_trace(path, limit=2)
    assert len(load_trace(path, limit=2)) == 2


def test_mooncake_other_block_size_and_sorting(tmp_path):
    path = mooncake_file(tmp_path, [mc(10, 20, 1, [4, 5]), mc(5, 16, 1, [4])])
    with pytest.raises(TraceError, match=r"row 2 \(line 2\): key 'timestamp' goes backwards "
                                         r"\(5 ms after 10 ms\)"):
        load_mooncake_trace(path, block_size=16)
    t = load_mooncake_trace(path, block_size=16, sort=True)
    assert t.arrival_at.tolist() == [0.005, 0.010]
    assert t[0].content == RequestContent((4,), (16,), 7)
    assert t[1].content == RequestContent((4, 5), (16, 4), 6)


@pytest.mark.parametrize(("line", "match"), [
    (json.dumps(mc(0, 1000, 5, [0])), r"row 1 \(line 1\): key 'hash_ids' has 1 ids; "
                                      r"ceil\(input_length 1000 / block 512\) = 2"),
    (json.dumps(mc(0, 0, 5, [])), r"row 1 \(line 1\): key 'input_length' = 0; must be an "
                                  r"integer from 1"),
    (json.dumps(mc(0, 10, -1, [0])), r"key 'output_length' = -1; must be an integer from 0"),
    (json.dumps(mc(-3, 10, 1, [0])), r"key 'timestamp' = -3; must be a finite number >= 0"),
    (json.dumps(mc(0, 10, 1, [1.5])), r"key 'hash_ids' holds 1.5; ids must be integers"),
    (json.dumps(mc(0, 10, 1, "0")), r"key 'hash_ids' is a str; must be a list"),
    ('{"timestamp": 0, "input_length": 10, "hash_ids": [0]}',
     r"missing key\(s\) \['output_length'\]"),
    ('{"timestamp": 0, "timestamp": 1, "input_length": 10, "output_length": 1, "hash_ids": [0]}',
     r"duplicate key 'timestamp' \(values 0, 1\)"),
])
def test_mooncake_bad_rows_name_file_line_and_key(tmp_path, line, match):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(TraceError, match=match) as info:
        load_mooncake_trace(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_mooncake_bad_file_and_arguments(tmp_path):
    path = mooncake_file(tmp_path, [mc(0, 10, 1, [0])])
    path.write_text(path.read_text() + "{oops\n")
    with pytest.raises(TraceError, match=r"row 2 \(line 2\): invalid JSON"):
        load_mooncake_trace(path)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(TraceError, match="file is empty; expected Mooncake JSON lines"):
        load_mooncake_trace(tmp_path / "empty.jsonl")
    with pytest.raises(TraceError, match="block_size must be an integer from 1"):
        load_mooncake_trace(path, block_size=0)
    with pytest.raises(TraceError, match="limit must be None or an integer >= 1, got 0"):
        load_mooncake_trace(path, limit=0)


def test_mooncake_trace_round_trips_through_a_seed_file(tmp_path):
    t = load_mooncake_trace(mooncake_file(tmp_path, [mc(0, 1000, 5, [0, 1]),
                                                     mc(250, 700, 2, [0, 3])]))
    back = load_trace(save_trace(t, tmp_path / "copy.tsv"))
    assert back.content == t.content and back.arrival_at.tolist() == [0.0, 0.25]


def test_the_mooncake_traces_match_their_readme():
    t = load_trace(shared("mooncake_conversation_trace.jsonl"))
    assert len(t) == 12031 and t.content.segment_ids.size == 288500
    assert np.unique(t.content.segment_ids).size == 182790
    assert block_hit_fraction(t) == pytest.approx(0.3664, abs=1e-4)
    s = load_mooncake_trace(shared("mooncake_synthetic_trace.jsonl"))
    assert len(s) == 3993 and s.content.segment_ids.size == 121877
    assert block_hit_fraction(s) == pytest.approx(0.6396, abs=1e-4)


# ------------------------------------------------------------------ CC traces
def session(requests: list[dict], **top) -> dict:
    return {"id": "x", "block_size": 64, "hash_id_scope": "local", "requests": requests, **top}


def cc(t: float, p: int, o: int, ids: list[int], **extra) -> dict:
    return {"t": t, "type": "n", "in": p, "out": o, "hash_ids": ids, **extra}


def write_json(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


def test_cc_session_keeps_full_blocks_and_gives_the_tail_its_own_id(tmp_path):
    path = write_json(tmp_path / "trace_0001.json", session([
        cc(0.0, 130, 7, [1, 2]), cc(2.5, 200, 3, [1, 2, 3]), cc(4.0, 10, 1, [])]))
    t = load_cc_trace(path)
    assert t.arrival_at.tolist() == [0.0, 2.5, 4.0]
    # M = 3 (largest hash id), n = 3: outputs 4, 5, 6; tails 7 + row
    assert t[0].content == RequestContent((1, 2, 7), (64, 64, 2), 4)
    assert t[1].content == RequestContent((1, 2, 3, 8), (64, 64, 64, 8), 5)
    assert t[2].content == RequestContent((9,), (10,), 6)
    assert load_trace(path) == t
    assert t.source == f"{path} (CC traces: 1 session, 64-token blocks)"


def test_cc_subagents_are_flattened_at_their_start_and_sorted(tmp_path):
    path = write_json(tmp_path / "trace_0002.json", session([
        cc(0.0, 64, 1, [1]),
        {"t": 10.0, "type": "subagent", "requests": [cc(0.0, 64, 1, [5]), cc(30.0, 64, 1, [5])]},
        cc(20.0, 128, 1, [1, 2])]))
    t = load_cc_trace(path)
    assert t.arrival_at.tolist() == [0.0, 10.0, 20.0, 40.0]
    assert [r.content.segment_ids for r in t] == [(1,), (5,), (1, 2), (5,)]


def test_cc_folder_merges_sessions_with_distinct_ids(tmp_path):
    write_json(tmp_path / "trace_0001.json", session([cc(0.0, 64, 1, [1]), cc(5.0, 64, 1, [1])]))
    write_json(tmp_path / "trace_0002.json", session([cc(1.0, 128, 1, [1, 2])]))
    (tmp_path / "notes.json").write_text("not a session")
    t = load_cc_trace(tmp_path)
    assert t.arrival_at.tolist() == [0.0, 1.0, 5.0]
    # session 2's ids are shifted by 2 (session 1's largest id + 1)
    assert [r.content.segment_ids for r in t] == [(1,), (3, 4), (1,)]
    assert t.source == f"{tmp_path} (CC traces: 2 sessions, 64-token blocks)"
    assert load_trace(tmp_path) == t
    with pytest.raises(TraceError, match=r"limit=2 is not supported for CC trace sessions"):
        load_trace(tmp_path, limit=2)


def test_cc_global_scope_keeps_ids(tmp_path):
    for k in (1, 2):
        write_json(tmp_path / f"trace_000{k}.json",
                   session([cc(0.0, 64, 1, [1])], hash_id_scope="global"))
    assert [r.content.segment_ids for r in load_cc_trace(tmp_path)] == [(1,), (1,)]


@pytest.mark.parametrize(("doc", "match"), [
    (session([cc(0.0, 200, 1, [1, 2])]), r"requests\[0\]: key 'hash_ids' has 2 ids; "
                                         r"floor\(in 200 / block 64\) = 3"),
    (session([cc(0.0, 0, 1, [])]), r"requests\[0\]: key 'in' = 0; must be an integer from 1"),
    (session([cc(0.0, 64, 1, [1]), cc(-1.0, 64, 1, [1])]),
     r"requests\[1\]: key 't' = -1.0; must be a finite number >= 0"),
    (session([{"t": 1.0, "type": "subagent", "requests": [cc(0.0, 64, -2, [1])]}]),
     r"requests\[0\].requests\[0\]: key 'out' = -2"),
    (session([{"t": 0.0, "in": 64, "out": 1}]), r"requests\[0\]: missing key\(s\) \['hash_ids'\]"),
    (session([]), r"key 'requests' holds no request"),
    (session([cc(0.0, 64, 1, [1])], block_size="64"), r"top level: key 'block_size' = '64'"),
    (session([cc(0.0, 64, 1, [1])], hash_id_scope="team"),
     r"key 'hash_id_scope' = 'team'; must be one of \['local', 'global'\]"),
    ({"block_size": 64}, r"top level: missing key\(s\) \['requests'\]"),
])
def test_cc_bad_sessions_name_file_request_and_key(tmp_path, doc, match):
    path = write_json(tmp_path / "trace_0009.json", doc)
    with pytest.raises(TraceError, match=match) as info:
        load_cc_trace(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_cc_folder_problems(tmp_path):
    with pytest.raises(TraceError, match="folder holds no trace_\\*.json session files"):
        load_cc_trace(tmp_path)
    write_json(tmp_path / "trace_0001.json", session([cc(0.0, 64, 1, [1])]))
    write_json(tmp_path / "trace_0002.json", session([cc(0.0, 64, 1, [1, 2])], block_size=32))
    with pytest.raises(TraceError, match=r"trace_0002.json: block_size 32 and hash_id_scope "
                                         r"'local' differ from trace_0001.json's \(64, 'local'\)"):
        load_cc_trace(tmp_path)
    (tmp_path / "trace_0002.json").write_text('{"block_size": 64,\n "requests": [}')
    with pytest.raises(TraceError, match=r"trace_0002.json: line 2: invalid JSON"):
        load_cc_trace(tmp_path)


def test_the_cc_traces_match_their_readme():
    t = load_cc_trace(shared("cc_traces_weka_kvcachetester"))
    assert len(t) == 1590
    assert t.num_prompt_tokens.mean() == pytest.approx(103677, abs=1)
    hashed = t.content.segment_lengths == 64
    assert int(hashed.sum()) == 2574935  # every hashed block; tails hold < 64 tokens
    seen: set[int] = set()
    hit = total = 0
    c = t.content
    for i in range(len(t)):
        a, b = int(c.starts[i]), int(c.starts[i + 1])
        ids = [s for s, n in zip(c.segment_ids[a:b].tolist(), c.segment_lengths[a:b].tolist())
               if n == 64]
        hit += sum(s in seen for s in ids)
        total += len(ids)
        seen.update(ids)
    assert total == 2574935 and hit / total == pytest.approx(0.9608, abs=1e-4)


# ------------------------------------------------------------------ shared prefix
def test_shared_prefix_groups_share_exactly_their_system_prompt():
    t = shared_prefix_trace(3, 4, 100, 20, 5, rate=2.0, rng=np.random.default_rng(0))
    assert len(t) == 12
    assert t.num_prompt_tokens.tolist() == [120] * 12 and t.num_output_tokens.tolist() == [5] * 12
    rows = [r.content for r in t]
    assert all(r.segment_lengths == (100, 20) for r in rows)
    systems = Counter(r.segment_ids[0] for r in rows)
    assert systems == {0: 4, 1: 4, 2: 4}
    questions = sorted(r.segment_ids[1] for r in rows)
    assert questions == list(range(3, 15))  # G + k for prompt k
    assert sorted(r.output_id for r in rows) == list(range(15, 27))
    for r in rows:  # question k belongs to group k // 4
        assert r.segment_ids[0] == (r.segment_ids[1] - 3) // 4
        assert r.output_id == r.segment_ids[1] + 12
    order = [r.segment_ids[1] - 3 for r in rows]
    assert order == np.random.default_rng(0).permutation(12).tolist()
    assert t.source.startswith("shared_prefix(num_groups=3, prompts_per_group=4, "
                               "system_prompt_len=100, question_len=20, output_len=5, rate=2/s")


def test_shared_prefix_arrivals_and_determinism():
    c = shared_prefix_trace(2, 2, 8, 4, 1, rate=4.0, arrival="constant",
                            rng=np.random.default_rng(1))
    assert c.arrival_at.tolist() == [0.0, 0.25, 0.5, 0.75]
    a = shared_prefix_trace(2, 3, 8, 4, 1, rate=4.0, arrival="gamma", cv=2.0,
                            rng=np.random.default_rng(5))
    b = shared_prefix_trace(2, 3, 8, 4, 1, rate=4.0, arrival="gamma", cv=2.0,
                            rng=np.random.default_rng(5))
    assert a == b and "arrival=gamma, cv=2" in a.source


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    ((0, 4, 100, 20, 5), {}, "num_groups must be >= 1, got 0"),
    ((3, 4.0, 100, 20, 5), {}, "prompts_per_group must be an integer >= 1, got 4.0"),
    ((3, 4, 0, 20, 5), {}, "system_prompt_len must be >= 1, got 0"),
    ((3, 4, 100, True, 5), {}, "question_len must be an integer >= 1, got True"),
    ((3, 4, 100, 20, 0), {}, "output_len must be >= 1, got 0"),
    ((3, 4, 100, 20, 5), {"rate": float("inf")}, "rate must be a finite number > 0"),
    ((3, 4, 100, 20, 5), {"rate": 0}, "rate must be a finite number > 0, got 0"),
    ((3, 4, 100, 20, 5), {"arrival": "burst"}, "arrival must be one of"),
    ((3, 4, 100, 20, 5), {"cv": 2.0}, "cv = 2 only applies to arrival='gamma'"),
    ((3, 4, 100, 20, 5), {"rng": 0}, "rng must be a numpy.random.Generator"),
    ((3, 4, 2**31 - 10, 20, 5), {}, "system_prompt_len \\+ question_len = 2147483658"),
])
def test_shared_prefix_refuses_bad_arguments(args, kwargs, match):
    full = {"rate": 1.0, "rng": np.random.default_rng(0), **kwargs}
    with pytest.raises(ValueError, match=f"shared_prefix_trace: {match}"):
        shared_prefix_trace(*args, **full)
