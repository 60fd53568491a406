"""Tests for llmsim_nb.workload: data model, trace files and generators."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from llmsim_nb.workload import (
    Empirical,
    Fixed,
    Request,
    Trace,
    TraceError,
    Uniform,
    alpaca_like,
    default_trace,
    gamma_arrivals,
    load_trace,
    poisson_arrivals,
    save_trace,
    sharegpt_like,
    synthetic_trace,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRACES = SHARED / "traces"
SEED_HEADER = "input_toks\toutput_toks\tarrival_time_ns\n"


def seed_file(name: str) -> Path:
    path = TRACES / name
    if not path.exists():
        pytest.skip(f"seed data not available: {path}")
    return path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def small_trace() -> Trace:
    return Trace(
        np.array([0.0, 0.5, 0.5, 2.0]),
        np.array([10, 20, 30, 40]),
        np.array([1, 0, 5, 7]),
        source="test",
    )


# --------------------------------------------------------------------- Request
def test_request_valid_and_normalised():
    r = Request(np.int64(3), np.float32(1.5), np.int64(7), 0)
    assert r == Request(3, 1.5, 7, 0)
    assert type(r.request_id) is int and type(r.arrival_at) is float


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(request_id=-1), r"request_id must be >= 0, got -1"),
        (dict(num_prompt_tokens=0), r"num_prompt_tokens must be >= 1, got 0"),
        (dict(num_output_tokens=-2), r"num_output_tokens must be >= 0, got -2"),
        (dict(num_prompt_tokens=1.5), r"num_prompt_tokens must be an integer"),
        (dict(num_prompt_tokens=True), r"num_prompt_tokens must be an integer"),
        (dict(arrival_at=float("nan")), r"arrival_at must be finite"),
        (dict(arrival_at=-0.1), r"arrival_at must be finite and >= 0"),
        (dict(arrival_at="1"), r"arrival_at must be a real number"),
    ],
)
def test_request_rejects_bad_fields(kwargs, match):
    fields = dict(request_id=0, arrival_at=0.0, num_prompt_tokens=1, num_output_tokens=1)
    fields.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Request(**fields)


def test_request_is_frozen():
    r = Request(0, 0.0, 1, 1)
    with pytest.raises(AttributeError):
        r.arrival_at = 1.0  # type: ignore[misc]


# ----------------------------------------------------------------------- Trace
def test_trace_access_and_iteration():
    t = small_trace()
    assert len(t) == 4
    assert t[1] == Request(1, 0.5, 20, 0)
    assert t[-1] == Request(3, 2.0, 40, 7)
    assert [r.request_id for r in t] == [0, 1, 2, 3]
    assert list(t)[2] == t[2]
    assert t.arrival_at.dtype == np.float64
    assert t.num_prompt_tokens.dtype == np.int64
    with pytest.raises(IndexError, match="out of range"):
        t[4]


def test_trace_arrays_are_read_only_copies():
    arr = np.array([0.0, 1.0])
    t = Trace(arr, np.array([1, 2]), np.array([0, 0]))
    arr[0] = 5.0
    assert t.arrival_at[0] == 0.0
    with pytest.raises(ValueError):
        t.arrival_at[0] = 3.0


def test_trace_head_and_slice():
    t = small_trace()
    h = t.head(2)
    assert len(h) == 2 and h[1] == t[1]
    assert len(t[1:3]) == 2 and t[1:3][0].num_prompt_tokens == 20
    with pytest.raises(ValueError, match=r"n = 5 out of range; must be between 1 and 4"):
        t.head(5)
    with pytest.raises(ValueError, match=r"n = 0 out of range"):
        t.head(0)


def test_trace_from_requests_roundtrip():
    t = small_trace()
    again = Trace.from_requests(list(t), source="test")
    assert again == t
    shuffled = [Request(7, 0.0, 3, 1), Request(9, 1.0, 4, 2)]
    with pytest.raises(TraceError, match=r"item 0 has request_id 7.*renumber=True"):
        Trace.from_requests(shuffled)
    renumbered = Trace.from_requests(shuffled, renumber=True)
    assert [r.request_id for r in renumbered] == [0, 1]


def test_trace_summary():
    s = small_trace().summary()
    assert s["num_requests"] == 4
    assert s["duration_s"] == pytest.approx(2.0)
    assert s["mean_rate_per_s"] == pytest.approx(1.5)
    assert s["total_prompt_tokens"] == 100
    assert s["prompt_tokens_mean"] == pytest.approx(25.0)
    assert s["prompt_tokens_p50"] == pytest.approx(25.0)
    assert s["output_tokens_max"] == 7 and s["output_tokens_min"] == 0
    burst = Trace(np.zeros(3), np.ones(3, dtype=np.int64), np.ones(3, dtype=np.int64))
    assert burst.summary()["mean_rate_per_s"] == float("inf")


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (([], [], []), r"at least one request"),
        (([0.0, 1.0], [1], [1, 1]), r"equal lengths"),
        (([0.0], [1.0], [1]), r"num_prompt_tokens must have an integer dtype"),
        (([0.0], [0], [1]), r"num_prompt_tokens\[0\] = 0; must be >= 1"),
        (([0.0], [1], [-1]), r"num_output_tokens\[0\] = -1; must be >= 0"),
        (([0.0, np.nan], [1, 1], [1, 1]), r"arrival_at\[1\] = nan; must be finite"),
        (([0.0, np.inf], [1, 1], [1, 1]), r"arrival_at\[1\] = inf; must be finite"),
        (([-1.0], [1], [1]), r"arrival_at\[0\] = -1.0; must be >= 0"),
        (([1.0, 0.5], [1, 1], [1, 1]), r"arrival_at\[1\] = 0.5 is earlier than arrival_at\[0\]"),
        (([[0.0]], [[1]], [[1]]), r"1-D"),
    ],
)
def test_trace_validation(args, match):
    with pytest.raises(TraceError, match=match):
        Trace(*(np.asarray(a) for a in args))


# --------------------------------------------------------------- seed files
def test_load_sharegpt_first_row():
    t = load_trace(seed_file("share-gpt-req100-rate10.tsv"))
    assert len(t) == 100
    assert t[0] == Request(0, 46926808e-9, 10, 70)
    assert t[1] == Request(1, 347938952e-9, 22, 104)
    assert t.source.endswith("share-gpt-req100-rate10.tsv")


def test_load_alpaca_files():
    files = sorted(TRACES.glob("alpaca-bs256-*.tsv")) if TRACES.exists() else []
    if not files:
        pytest.skip("alpaca seed traces not available")
    for f in files:
        t = load_trace(f)
        assert len(t) == 256
        assert np.all(t.num_output_tokens == 1)
        assert np.all(t.arrival_at == 0.0)
    first = load_trace(seed_file("alpaca-bs256-ms7B-tp4-pp1.tsv"))[0]
    assert (first.num_prompt_tokens, first.num_output_tokens) == (259, 1)


def test_load_simulation_time_files():
    t = load_trace(seed_file("simulation-time-bs32-seq512.tsv"))
    assert np.all(t.num_prompt_tokens == 512)


def test_load_azure_conv():
    path = seed_file("azure_llm_2023_conv.csv")
    start = time.perf_counter()
    t = load_trace(path)
    elapsed = time.perf_counter() - start
    assert len(t) == 19366
    assert elapsed < 0.5
    assert t[0] == Request(0, 0.0, 374, 44)
    # 18:15:50.9951690 - 18:15:46.6805900
    assert t[1].arrival_at == pytest.approx(4.314579, abs=1e-9)
    assert t[1].num_prompt_tokens == 396 and t[1].num_output_tokens == 109
    # last row 2023-11-16 19:14:08.4025270
    assert t.arrival_at[-1] == pytest.approx(3501.721937, abs=1e-9)
    assert np.all(np.diff(t.arrival_at) >= 0)


def test_load_azure_code_and_limit():
    path = seed_file("azure_llm_2023_code.csv")
    t = load_trace(path)
    assert len(t) == 8819
    assert t[0] == Request(0, 0.0, 4808, 10)
    assert t[1].arrival_at == pytest.approx(0.052, abs=1e-9)
    conv = load_trace(seed_file("azure_llm_2023_conv.csv"), limit=10_000)
    assert len(conv) == 10_000
    assert conv[9_999] == load_trace(seed_file("azure_llm_2023_conv.csv"))[9_999]


# ------------------------------------------------------- formats, round trips
def test_csv_and_jsonl_match_tsv(tmp_path):
    rows = [(10, 70, 46926808), (22, 0, 347938952), (5, 3, 347938952)]
    tsv = write(tmp_path, "a.tsv", SEED_HEADER + "".join(f"{p}\t{o}\t{a}\n" for p, o, a in rows))
    csv = write(
        tmp_path, "a.csv", "input_toks,output_toks,arrival_time_ns\n"
        + "".join(f"{p},{o},{a}\n" for p, o, a in rows)
    )
    jsonl = write(
        tmp_path, "a.jsonl",
        "".join(
            json.dumps({"input_toks": p, "output_toks": o, "arrival_time_ns": a}) + "\n"
            for p, o, a in rows
        ),
    )
    a, b, c = load_trace(tsv), load_trace(csv), load_trace(jsonl)
    for t in (b, c):
        np.testing.assert_array_equal(t.arrival_at, a.arrival_at)
        np.testing.assert_array_equal(t.num_prompt_tokens, a.num_prompt_tokens)
        np.testing.assert_array_equal(t.num_output_tokens, a.num_output_tokens)
    assert a[1].num_output_tokens == 0  # zero output tokens is allowed


def test_columns_in_any_order_extra_columns_and_crlf(tmp_path):
    path = write(
        tmp_path, "b.csv",
        "arrival_time_ns,note,output_toks,input_toks\r\n5,x,2,3\r\n\r\n9,y,4,1\r\n",
    )
    t = load_trace(path)
    assert list(t) == [Request(0, 5e-9, 3, 2), Request(1, 9e-9, 1, 4)]


@pytest.mark.parametrize("suffix", [".tsv", ".csv", ".jsonl"])
def test_save_load_roundtrip_synthetic(tmp_path, suffix):
    t = synthetic_trace(np.random.default_rng(3), 50, 4.0, Uniform(1, 100), Uniform(0, 10))
    path = save_trace(t, tmp_path / f"t{suffix}")
    back = load_trace(path)
    np.testing.assert_allclose(back.arrival_at, t.arrival_at, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(back.num_prompt_tokens, t.num_prompt_tokens)
    np.testing.assert_array_equal(back.num_output_tokens, t.num_output_tokens)


def test_save_load_roundtrip_seed_is_exact(tmp_path):
    src = seed_file("share-gpt-req100-rate10.tsv")
    t = load_trace(src)
    out = save_trace(t, tmp_path / "copy.tsv")
    assert out.read_text() == src.read_text().rstrip("\n") + "\n"
    back = load_trace(out)
    np.testing.assert_array_equal(back.arrival_at, t.arrival_at)


def test_save_rejects_unknown_extension(tmp_path):
    with pytest.raises(TraceError, match=r"unsupported extension '.txt'"):
        save_trace(small_trace(), tmp_path / "t.txt")


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("empty.tsv", "", r"empty\.tsv: file is empty"),
        ("blank.tsv", "\n  \n", r"file is empty"),
        ("header.tsv", SEED_HEADER, r"header\.tsv: has a header but no request rows"),
        (
            "cols.tsv",
            "input_toks\toutput_toks\n1\t2\n",
            r"missing column\(s\) \['arrival_time_ns'\]; found columns \['input_toks', 'output_toks'\]",
        ),
        (
            "azcols.csv",
            "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.68,5\n",
            r"missing column\(s\) \['GeneratedTokens'\]; found columns \['TIMESTAMP', 'ContextTokens'\]",
        ),
        (
            "float.tsv",
            SEED_HEADER + "1\t2\t0\n3.5\t2\t1\n",
            r"row 2 \(line 3\): column 'input_toks' = '3\.5' is not an integer",
        ),
        (
            "text.tsv",
            SEED_HEADER + "1\tabc\t0\n",
            r"row 1 \(line 2\): column 'output_toks' = 'abc' is not an integer",
        ),
        (
            "negout.tsv",
            SEED_HEADER + "1\t2\t0\n1\t-3\t5\n",
            r"row 2 \(line 3\): output_toks = -3; output token counts must be integers >= 0",
        ),
        (
            "zeroprompt.tsv",
            SEED_HEADER + "0\t2\t0\n",
            r"row 1 \(line 2\): input_toks = 0; a request needs at least 1 prompt token",
        ),
        (
            "nan.tsv",
            SEED_HEADER + "1\t2\t0\n1\t2\tnan\n",
            r"row 2 \(line 3\): arrival_time_ns = nan; arrival times must be finite",
        ),
        (
            "inf.csv",
            "input_toks,output_toks,arrival_time_ns\n1,2,inf\n",
            r"row 1 \(line 2\): arrival_time_ns = inf; arrival times must be finite",
        ),
        (
            "negarr.tsv",
            SEED_HEADER + "1\t2\t-5\n",
            r"arrival_time_ns = -5; arrival times must be >= 0 ns",
        ),
        (
            "badnum.tsv",
            SEED_HEADER + "1\t2\tsoon\n",
            r"column 'arrival_time_ns' = 'soon' is not a number",
        ),
        (
            "fields.tsv",
            SEED_HEADER + "1\t2\t0\n1\t2\n",
            r"row 2 \(line 3\): has 2 fields, the header has 3",
        ),
        (
            "unsorted.tsv",
            SEED_HEADER + "1\t1\t0\n2\t2\t500\n3\t3\t100\n",
            r"unsorted\.tsv: row 3 \(line 4\): arrival_time_ns goes backwards \(100 after 500\).*sort=True",
        ),
        (
            "badts.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n"
            "2023-11-16 18:15:46.6805900,5,1\nyesterday,5,1\n",
            r"row 2 \(line 3\): column 'TIMESTAMP' = 'yesterday' is not a timestamp",
        ),
        (
            "badmonth.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-13-16 18:15:46.6805900,5,1\n",
            r"row 1 \(line 2\): column 'TIMESTAMP' = '2023-13-16 18:15:46\.6805900' is not a valid",
        ),
        (
            "azzero.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n"
            "2023-11-16 18:15:46.6805900,5,1\n2023-11-16 18:15:47.0000000,0,3\n",
            r"row 2 \(line 3\): ContextTokens = 0; a request needs at least 1 prompt token",
        ),
        (
            "azunsorted.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n"
            "2023-11-16 18:15:47.0000000,5,1\n2023-11-16 18:15:46.0000000,4,3\n",
            r"row 2 \(line 3\): TIMESTAMP goes backwards \(2023-11-16T18:15:46\.000000000 after",
        ),
        ("bad.jsonl", '{"input_toks": 1, "output_toks": 2, "arrival_time_ns": 0}\n{oops\n',
         r"row 2 \(line 2\): invalid JSON"),
        (
            "keys.jsonl",
            '{"input_toks": 1, "arrival_time_ns": 0}\n',
            r"missing key\(s\) \['output_toks'\]; found keys \['input_toks', 'arrival_time_ns'\]",
        ),
        (
            "jfloat.jsonl",
            '{"input_toks": 1.5, "output_toks": 2, "arrival_time_ns": 0}\n',
            r"key 'input_toks' = 1\.5 is not an integer",
        ),
        (
            "jnan.jsonl",
            '{"input_toks": 1, "output_toks": 2, "arrival_time_ns": NaN}\n',
            r"arrival_time_ns = nan; arrival times must be finite",
        ),
        (
            "jarray.jsonl",
            "[1, 2, 3]\n",
            r"expected a JSON object, got list",
        ),
    ],
)
def test_bad_files_are_refused(tmp_path, name, text, match):
    path = write(tmp_path, name, text)
    with pytest.raises(TraceError, match=match) as info:
        load_trace(path)
    assert name in str(info.value)  # every message names the file
    assert isinstance(info.value, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(TraceError, match=r"nope\.tsv: trace file not found"):
        load_trace(tmp_path / "nope.tsv")


def test_unsorted_sort_true_is_stable(tmp_path):
    path = write(tmp_path, "u.tsv", SEED_HEADER + "1\t1\t300\n2\t2\t100\n3\t3\t300\n4\t4\t100\n")
    t = load_trace(path, sort=True)
    np.testing.assert_array_equal(t.num_prompt_tokens, [2, 4, 1, 3])
    np.testing.assert_allclose(t.arrival_at, [1e-7, 1e-7, 3e-7, 3e-7])


def test_azure_sort_true_rebases_on_earliest(tmp_path):
    path = write(
        tmp_path, "az.csv",
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:47.5,5,1\n2023-11-16 18:15:46.25,4,0\n",
    )
    t = load_trace(path, sort=True)
    assert list(t) == [Request(0, 0.0, 4, 0), Request(1, 1.25, 5, 1)]


def test_limit(tmp_path):
    path = write(tmp_path, "l.tsv", SEED_HEADER + "1\t1\t0\n2\t2\t1\nbad\t3\t2\n")
    assert len(load_trace(path, limit=2)) == 2  # the bad row 3 is never read
    assert len(load_trace(write(tmp_path, "m.tsv", SEED_HEADER + "1\t1\t0\n"), limit=5)) == 1
    with pytest.raises(TraceError, match=r"limit must be None or an integer >= 1, got 0"):
        load_trace(path, limit=0)


# ------------------------------------------------------------------ arrivals
def test_poisson_rate_and_first_arrival():
    t = poisson_arrivals(np.random.default_rng(1), 20_000, 5.0)
    assert t[0] == 0.0 and t.dtype == np.float64
    assert np.all(np.diff(t) >= 0)
    rate = (t.size - 1) / t[-1]
    assert rate == pytest.approx(5.0, rel=0.03)
    gaps = np.diff(t)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("cv", [0.5, 1.0, 2.0, 4.0])
def test_gamma_rate_and_cv(cv):
    t = gamma_arrivals(np.random.default_rng(2), 20_000, 8.0, cv)
    gaps = np.diff(t)
    assert t[0] == 0.0
    assert 1.0 / gaps.mean() == pytest.approx(8.0, rel=0.05 * max(cv, 1.0))
    assert gaps.std() / gaps.mean() == pytest.approx(cv, rel=0.1)


def test_gamma_cv_zero_is_regular():
    np.testing.assert_allclose(
        gamma_arrivals(np.random.default_rng(0), 4, 2.0, 0.0), [0.0, 0.5, 1.0, 1.5]
    )


def test_arrivals_deterministic_per_seed():
    a = poisson_arrivals(np.random.default_rng(7), 100, 3.0)
    b = poisson_arrivals(np.random.default_rng(7), 100, 3.0)
    c = poisson_arrivals(np.random.default_rng(8), 100, 3.0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    g1 = gamma_arrivals(np.random.default_rng(7), 100, 3.0, 2.0)
    g2 = gamma_arrivals(np.random.default_rng(7), 100, 3.0, 2.0)
    np.testing.assert_array_equal(g1, g2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: poisson_arrivals(np.random.default_rng(0), 10, 0.0), r"rate must be a finite number > 0, got 0\.0"),
        (lambda: poisson_arrivals(np.random.default_rng(0), 0, 1.0), r"num_requests must be >= 1, got 0"),
        (lambda: poisson_arrivals(0, 10, 1.0), r"rng must be a numpy.random.Generator"),
        (lambda: gamma_arrivals(np.random.default_rng(0), 10, 1.0, -1.0), r"cv must be a finite number >= 0, got -1\.0"),
        (lambda: gamma_arrivals(np.random.default_rng(0), 10, float("inf"), 1.0), r"rate must be a finite number > 0"),
    ],
)
def test_arrival_argument_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------- lengths
def test_fixed_and_uniform():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(Fixed(5).sample(rng, 3), [5, 5, 5])
    u = Uniform(2, 4).sample(rng, 5000)
    assert u.dtype == np.int64 and set(u.tolist()) == {2, 3, 4}
    assert Uniform(3, 3).sample(rng, 2).tolist() == [3, 3]
    with pytest.raises(ValueError, match=r"high must be >= low, got low=5, high=4"):
        Uniform(5, 4)
    with pytest.raises(ValueError, match=r"Fixed: value must be >= 0, got -1"):
        Fixed(-1)


def test_empirical_samples_only_from_support():
    dist = Empirical((3, 7, 7, 11))
    s = dist.sample(np.random.default_rng(4), 10_000)
    assert s.dtype == np.int64
    assert set(s.tolist()) == {3, 7, 11}
    assert np.mean(s == 7) == pytest.approx(0.5, abs=0.03)
    assert Empirical([1, 2]).values == (1, 2)
    with pytest.raises(ValueError, match="must not be empty"):
        Empirical(())
    with pytest.raises(ValueError, match=r"values\[1\] = -2; every value must be an integer >= 0"):
        Empirical((1, -2))
    with pytest.raises(ValueError, match=r"values\[0\] = 1\.5"):
        Empirical((1.5,))


def test_shipped_distributions():
    sp, so = sharegpt_like()
    assert len(sp.values) == len(so.values) == 100
    assert sp.values[0] == 10 and so.values[0] == 70  # first row of the seed trace
    ap, ao = alpaca_like()
    assert len(ap.values) == 6 * 256 and min(ap.values) >= 1
    assert ao == so  # documented stand-in: ShareGPT outputs
    path = TRACES / "share-gpt-req100-rate10.tsv"
    if path.exists():
        seed = load_trace(path)
        assert sp.values == tuple(seed.num_prompt_tokens.tolist())
        assert so.values == tuple(seed.num_output_tokens.tolist())


# ------------------------------------------------------------ synthetic traces
def test_synthetic_trace_determinism_and_support():
    a = synthetic_trace(np.random.default_rng(11), 200, 10.0)
    b = synthetic_trace(np.random.default_rng(11), 200, 10.0)
    c = synthetic_trace(np.random.default_rng(12), 200, 10.0)
    assert a == b
    assert not np.array_equal(a.arrival_at, c.arrival_at)
    sp, so = sharegpt_like()
    assert set(a.num_prompt_tokens.tolist()) <= set(sp.values)
    assert set(a.num_output_tokens.tolist()) <= set(so.values)
    assert a[0].arrival_at == 0.0
    assert "poisson" in a.source


def test_synthetic_trace_gamma_and_errors():
    t = synthetic_trace(
        np.random.default_rng(0), 50, 2.0, Fixed(8), Fixed(0), arrival="gamma", cv=3.0
    )
    assert np.all(t.num_prompt_tokens == 8) and np.all(t.num_output_tokens == 0)
    assert "cv=3" in t.source
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"arrival must be one of \('poisson', 'gamma'\), got 'weibull'"):
        synthetic_trace(rng, 5, 1.0, arrival="weibull")
    with pytest.raises(ValueError, match=r"cv = 2\.0 only applies to arrival='gamma'"):
        synthetic_trace(rng, 5, 1.0, cv=2.0)
    with pytest.raises(TraceError, match=r"num_prompt_tokens\[0\] = 0; must be >= 1"):
        synthetic_trace(rng, 5, 1.0, prompt=Fixed(0))
    with pytest.raises(ValueError, match=r"prompt must have a sample\(rng, n\) method"):
        synthetic_trace(rng, 5, 1.0, prompt=5)  # type: ignore[arg-type]


def test_default_trace():
    t = default_trace()
    assert len(t) == 100
    again = default_trace()
    assert again == t
    np.testing.assert_array_equal(again.arrival_at, t.arrival_at)
    assert t[0].arrival_at == 0.0
    # It is the documented generator output (rounded to whole ns in the file).
    regen = synthetic_trace(np.random.default_rng(0), 100, 10.0)
    np.testing.assert_allclose(t.arrival_at, regen.arrival_at, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(t.num_prompt_tokens, regen.num_prompt_tokens)
    np.testing.assert_array_equal(t.num_output_tokens, regen.num_output_tokens)
