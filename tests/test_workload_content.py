"""Request content (prefix caching): RequestContent, PromptContent, Trace.content, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from llmsim_nb.workload import (
    PromptContent,
    Request,
    RequestContent,
    Trace,
    TraceError,
    load_trace,
    save_trace,
)


def content3() -> PromptContent:
    # row 0: (5, 10) (6, 2); row 1: (5, 10); row 2: (7, 1) (8, 3) (9, 4)
    return PromptContent(np.array([0, 2, 3, 6]), np.array([5, 6, 5, 7, 8, 9]),
                         np.array([10, 2, 10, 1, 3, 4]), np.array([100, 101, 102]),
                         np.array([0, 0, 3]))


def trace3(**kwargs) -> Trace:
    # arrivals that are whole nanoseconds, so files round-trip exactly
    return Trace(np.array([0.0, 0.25, 0.5]), np.array([12, 10, 8]), np.array([1, 0, 4]),
                 source="t", content=kwargs.get("content", content3()))


# ------------------------------------------------------------------ PromptContent
def test_rows_lengths_and_arrays_are_read_only():
    c = content3()
    assert len(c) == 3
    assert c.row(0) == RequestContent((5, 6), (10, 2), 100)
    assert c.row(-1) == RequestContent((7, 8, 9), (1, 3, 4), 102, cache_salt=3)
    assert c.num_prompt_tokens().tolist() == [12, 10, 8]
    assert c.segment_ids.dtype == np.int64 and not c.segment_ids.flags.writeable
    assert repr(c) == "PromptContent(3 requests, 6 segments)"
    with pytest.raises(IndexError, match="row 3 out of range for 3 requests"):
        c.row(3)


def test_take_by_slice_mask_and_index_array():
    c = content3()
    assert c.take(slice(1, None)) == PromptContent.from_rows([c.row(1), c.row(2)])
    assert c.take(np.array([True, False, True])) == PromptContent.from_rows([c.row(0), c.row(2)])
    picked = c.take(np.array([2, 0, 0, -2]))
    assert [picked.row(i) for i in range(4)] == [c.row(2), c.row(0), c.row(0), c.row(1)]
    assert c.take(slice(None, None, -1)).row(0) == c.row(2)
    with pytest.raises(ValueError, match=r"boolean mask must have shape \(3,\), got \(2,\)"):
        c.take(np.array([True, False]))
    with pytest.raises(IndexError, match=r"index\[1\] = 3 out of range for 3 requests"):
        c.take(np.array([0, 3]))


def test_from_rows_round_trips_and_equality():
    c = content3()
    assert PromptContent.from_rows([c.row(i) for i in range(3)]) == c
    assert c != c.take(np.array([0, 1, 1]))
    with pytest.raises(TraceError, match="item 1 is a tuple, expected RequestContent"):
        PromptContent.from_rows([c.row(0), (1, 2)])


@pytest.mark.parametrize(("change", "match"), [
    (dict(starts=[1, 2, 3, 6]), r"starts\[0\] = 1; must be 0"),
    (dict(starts=[0, 2, 2, 6]), r"starts\[2\] = 2 is not above starts\[1\] = 2: row 1 has no "
                                r"segment"),
    (dict(segment_ids=[5, 6, 5, 7, 8]), r"segment_ids has 5 values; must have starts\[-1\] = 6"),
    (dict(segment_lengths=[10, 2, 10, 1, 0, 4]),
     r"segment_lengths\[4\] \(row 2\) = 0; must be an integer from 1 to 2147483647"),
    (dict(segment_ids=[5, 6, -1, 7, 8, 9]), r"segment_ids\[2\] \(row 1\) = -1; must be an "
                                            r"integer >= 0"),
    (dict(output_ids=[1, 2]), r"output_ids has 2 values; must have len\(starts\) - 1 = 3"),
    (dict(cache_salts=[0, -4, 0]), r"cache_salts\[1\] \(row 1\) = -4"),
    (dict(segment_ids=[5.0, 6, 5, 7, 8, 9]), r"segment_ids must have an integer dtype"),
])
def test_prompt_content_refuses_bad_arrays(change, match):
    c = content3()
    fields = {f: getattr(c, f) for f in ("starts", "segment_ids", "segment_lengths",
                                         "output_ids", "cache_salts")}
    fields.update({k: np.array(v) for k, v in change.items()})
    with pytest.raises(TraceError, match=match):
        PromptContent(**fields)


# ------------------------------------------------------------------ block hashes
def test_block_hashes_cut_a_partial_last_block():
    c = PromptContent.from_block_hashes([[3, 4], [3], [3, 9, 10]], [1000, 512, 1025], 512)
    assert c.row(0).segment_ids == (3, 4) and c.row(0).segment_lengths == (512, 488)
    assert c.row(1).segment_lengths == (512,)
    assert c.row(2).segment_lengths == (512, 512, 1)
    assert c.output_ids.tolist() == [11, 12, 13]  # above every segment id


def test_block_hashes_with_omitted_tail_give_unique_tail_ids():
    c = PromptContent.from_block_hashes([[1, 2], [], [1]], [130, 10, 64], 64,
                                        last_block="omitted")
    assert c.row(0) == RequestContent((1, 2, 6), (64, 64, 2), 3)
    assert c.row(1) == RequestContent((7,), (10,), 4)
    assert c.row(2) == RequestContent((1,), (64,), 5)


def test_block_hashes_given_output_ids_and_salts():
    c = PromptContent.from_block_hashes([[0]], [5], 16, output_ids=[40], cache_salts=[2])
    assert c.row(0) == RequestContent((0,), (5,), 40, 2)


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    (([[1]], [1000], 512), {}, r"row 0 has 1 hash ids for 1000 prompt tokens; blocks of 512 "
                               r"tokens need ceil\(1000/512\) = 2"),
    (([[1], [1, 2, 3]], [70, 100], 64), {"last_block": "omitted"},
     r"row 1 has 3 hash ids for 100 prompt tokens; blocks of 64 tokens need floor\(100/64\) = 1"),
    (([[1, -2]], [600], 512), {}, r"hash_ids\[0\]\[1\] \(row 0\) = -2; ids must be integers"),
    (([[1, True]], [600], 512), {}, r"hash_ids\[0\]\[1\] \(row 0\) = True"),
    (([[1, 2.0]], [600], 512), {}, r"hash_ids\[0\]\[1\] \(row 0\) = 2.0"),
    (([[1], 7], [10, 10], 512), {}, r"hash_ids\[1\] \(row 1\) is a int"),
    (([[1]], [0], 512), {}, r"num_prompt_tokens\[0\] \(row 0\) = 0; must be an integer from 1"),
    (([[1]], [10, 20], 512), {}, r"num_prompt_tokens must hold one value per row \(1\)"),
    (([[1]], [10], 0), {}, r"block_size must be an integer from 1"),
    (([[1]], [10], 512), {"last_block": "full"}, r"last_block must be 'partial' or 'omitted'"),
    (([[1]], [10], 512), {"output_ids": [-1]}, r"output_ids\[0\] \(row 0\) = -1"),
])
def test_block_hashes_refuse_bad_rows(args, kwargs, match):
    with pytest.raises(TraceError, match=match):
        PromptContent.from_block_hashes(*args, **kwargs)


# ------------------------------------------------------------------ Request.content
def test_request_content_must_match_the_prompt_length():
    content = RequestContent((1, 2), (3, 4), 9)
    assert Request(0, 0.0, 7, 1, content=content).content == content
    assert Request(0, 0.0, 7, 1).content is None
    with pytest.raises(ValueError, match="describes 7 prompt tokens .* but num_prompt_tokens = 8"):
        Request(0, 0.0, 8, 1, content=content)
    with pytest.raises(ValueError, match="content must be a RequestContent or None, got tuple"):
        Request(0, 0.0, 7, 1, content=(1, 2))


# ------------------------------------------------------------------ Trace.content
def test_trace_gives_requests_their_content():
    t = trace3()
    assert t[2].content == RequestContent((7, 8, 9), (1, 3, 4), 102, 3)
    assert [r.content for r in t] == [t.content.row(i) for i in range(3)]
    assert Trace.from_requests(list(t), source="t") == t


def test_trace_operations_keep_matching_content():
    t = trace3()
    assert t[1:].content == t.content.take(slice(1, None))
    assert t.head(2).content == t.content.take(slice(0, 2))
    kept = t.filter(t.num_prompt_tokens != 10)
    assert [r.content for r in kept] == [t[0].content, t[2].content]
    assert t.sort().content == t.content
    assert t.scale_rate(2.0).content == t.content
    assert t != Trace(t.arrival_at, t.num_prompt_tokens, t.num_output_tokens, source="t")


def test_trace_without_content_is_unchanged():
    t = Trace(np.array([0.0, 1.0]), np.array([3, 4]), np.array([1, 1]))
    assert t.content is None and t[0].content is None and t.head(1).content is None
    assert Trace.from_requests(list(t)).content is None


def test_trace_refuses_mismatched_content():
    c = content3()
    with pytest.raises(TraceError, match=r"content has 3 rows; must have one per request \(2\)"):
        Trace(np.zeros(2), np.array([12, 10]), np.ones(2, dtype=np.int64), content=c)
    with pytest.raises(TraceError, match=r"content row 1 describes 10 prompt tokens .* but "
                                         r"num_prompt_tokens\[1\] = 11"):
        Trace(np.zeros(3), np.array([12, 11, 8]), np.ones(3, dtype=np.int64), content=c)
    with pytest.raises(TraceError, match="content must be a PromptContent or None, got list"):
        Trace(np.zeros(1), np.array([1]), np.ones(1, dtype=np.int64), content=[1])


def test_from_requests_wants_content_on_all_or_none():
    a = Request(0, 0.0, 3, 1, content=RequestContent((1,), (3,), 2))
    b = Request(1, 0.0, 3, 1)
    with pytest.raises(TraceError, match="item 1 has no content but item 0 has"):
        Trace.from_requests([a, b])
    with pytest.raises(TraceError, match="item 1 has content but item 0 has none"):
        Trace.from_requests([Request(0, 0.0, 3, 1), Request(1, 0.0, 3, 1, content=a.content)])


# ------------------------------------------------------------------ files
@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_content_round_trips_exactly_through_files(tmp_path, suffix):
    t = trace3()
    back = load_trace(save_trace(t, tmp_path / f"t{suffix}"))
    assert back.content == t.content
    assert back == Trace(t.arrival_at, t.num_prompt_tokens, t.num_output_tokens,
                         source=str(tmp_path / f"t{suffix}"), content=t.content)
    assert load_trace(tmp_path / f"t{suffix}", limit=2).content == t.content.take(slice(0, 2))


def test_written_content_columns_are_as_documented(tmp_path):
    text = save_trace(trace3(), tmp_path / "t.tsv").read_text().splitlines()
    assert text[0].split("\t")[3:] == ["segment_ids", "segment_lengths", "output_id",
                                       "cache_salt"]
    assert text[3].split("\t")[3:] == ["7 8 9", "1 3 4", "102", "3"]
    line = save_trace(trace3(), tmp_path / "t.jsonl").read_text().splitlines()[0]
    assert '"segment_ids": [5, 6], "segment_lengths": [10, 2], "output_id": 100' in line


def test_sorting_a_file_reorders_its_content(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("input_toks\toutput_toks\tarrival_time_ns\tsegment_ids\tsegment_lengths\t"
                    "output_id\n3\t1\t20\t1 2\t1 2\t9\n4\t1\t10\t1\t4\t8\n")
    t = load_trace(path, sort=True)
    assert t[0].content == RequestContent((1,), (4,), 8)
    assert t[1].content == RequestContent((1, 2), (1, 2), 9)  # cache_salt absent: 0


HEAD = "input_toks\toutput_toks\tarrival_time_ns\tsegment_ids\tsegment_lengths\toutput_id\n"


@pytest.mark.parametrize(("text", "match"), [
    (HEAD + "3\t1\t0\t1 x\t1 2\t9\n", r"row 1 \(line 2\): column 'segment_ids' = '1 x'; must be "
                                       r"integers from 0 to \d+ separated by single spaces"),
    (HEAD + "3\t1\t0\t1 2\t1 2\t9\n3\t1\t5\t1 2\t3 0\t9\n",
     r"row 2 \(line 3\): column 'segment_lengths' = '3 0'; must be integers from 1"),
    (HEAD + "3\t1\t0\t1 2\t3\t9\n", r"row 1 \(line 2\): 'segment_ids' has 2 values but "
                                    r"'segment_lengths' has 1"),
    (HEAD + "4\t1\t0\t1 2\t1 2\t9\n", r"row 1 \(line 2\): 'segment_lengths' add up to 3 tokens "
                                      r"but 'input_toks' = 4"),
    (HEAD + "3\t1\t0\t1 2\t1 2\t\n", r"row 1 \(line 2\): column 'output_id' = ''"),
    (HEAD + "3\t1\t0\t\t1 2\t9\n", r"column 'segment_ids' = ''"),
    (HEAD + "3\t1\t0\t1  2\t1 2\t9\n", r"column 'segment_ids' = '1  2'"),
    (HEAD + "3\t1\t0\t1 2\t1 2\t9 9\n", r"column 'output_id' = '9 9'; must be one integer"),
    ("input_toks\toutput_toks\tarrival_time_ns\tsegment_ids\n3\t1\t0\t1\n",
     r"line 1: content column\(s\) \['segment_ids'\] need \['segment_lengths', 'output_id'\]"),
])
def test_bad_content_cells_are_refused_in_one_line(tmp_path, text, match):
    path = tmp_path / "bad.tsv"
    path.write_text(text)
    with pytest.raises(TraceError, match=match) as info:
        load_trace(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


ROW = '{"input_toks": 3, "output_toks": 1, "arrival_time_ns": 0'


@pytest.mark.parametrize(("lines", "match"), [
    ([ROW + ', "segment_ids": [1], "segment_lengths": [3], "output_id": 2}', ROW + "}"],
     r"row 2 \(line 2\): missing content key\(s\) \['segment_ids', 'segment_lengths', "
     r"'output_id'\]"),
    ([ROW + "}", ROW + ', "segment_ids": [1], "segment_lengths": [3], "output_id": 2}'],
     r"row 2 \(line 2\): has key 'segment_ids' but row 1 has no content keys"),
    ([ROW + ', "segment_ids": [1, -1], "segment_lengths": [1, 2], "output_id": 2}'],
     r"row 1 \(line 1\): key 'segment_ids' = \[1, -1\]; must be a non-empty list of integers"),
    ([ROW + ', "segment_ids": [1], "segment_lengths": [3.0], "output_id": 2}'],
     r"key 'segment_lengths' = \[3.0\]"),
    ([ROW + ', "segment_ids": [1], "segment_lengths": [3], "output_id": "2"}'],
     r"key 'output_id' = '2'; must be an integer from 0"),
    ([ROW + ', "segment_ids": [1], "segment_lengths": [2], "output_id": 2}'],
     r"'segment_lengths' add up to 2 tokens but 'input_toks' = 3"),
])
def test_bad_content_keys_are_refused_in_one_line(tmp_path, lines, match):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceError, match=match):
        load_trace(path)


def test_seed_files_without_content_still_load_without_it(tmp_path):
    path = Path(tmp_path / "plain.jsonl")
    path.write_text(ROW + "}\n")
    assert load_trace(path).content is None
