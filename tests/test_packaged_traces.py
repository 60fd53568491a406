"""Packaged traces: found by name, honest about what they are, never over a local file."""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.workload import (
    Trace,
    TraceError,
    default_trace,
    list_packaged_traces,
    load_trace,
    save_trace,
    synthetic_trace,
)
from llmsim_nb.workload.generators import (
    DEFAULT_TRACE_RATE,
    DEFAULT_TRACE_REQUESTS,
    DEFAULT_TRACE_SEED,
)


def _same(a: Trace, b: Trace) -> bool:
    return (np.array_equal(a.arrival_at, b.arrival_at)
            and np.array_equal(a.num_prompt_tokens, b.num_prompt_tokens)
            and np.array_equal(a.num_output_tokens, b.num_output_tokens))


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_packaged_names():
    assert list_packaged_traces() == ["sharegpt-like-100"]
    from llmsim_nb import workload
    assert "list_packaged_traces" in workload.__all__


@pytest.mark.parametrize("name", ["sharegpt-like-100", "sharegpt-like-100.tsv"])
def test_a_packaged_name_loads_the_default_trace_from_anywhere(name, empty_cwd):
    trace = load_trace(name)
    assert _same(trace, default_trace()) and len(trace) == 100
    assert trace.source == "sharegpt-like-100 (packaged: llmsim_nb/data/default_trace.tsv)"


def test_limit_and_sort_apply_to_packaged_traces(empty_cwd):
    head = load_trace("sharegpt-like-100", limit=5)
    assert len(head) == 5
    assert np.array_equal(head.arrival_at, default_trace().arrival_at[:5])
    assert _same(load_trace("sharegpt-like-100", sort=True), default_trace())
    with pytest.raises(TraceError, match="limit must be None or an integer >= 1"):
        load_trace("sharegpt-like-100", limit=0)


def test_the_name_says_what_the_trace_is():
    """``sharegpt-like-100``: 100 requests of ShareGPT-like lengths, the synthetic
    trace of seed 0 at 10 req/s (what ``default_trace`` documents)."""
    trace = load_trace("sharegpt-like-100")
    regenerated = synthetic_trace(np.random.default_rng(DEFAULT_TRACE_SEED),
                                  DEFAULT_TRACE_REQUESTS, DEFAULT_TRACE_RATE)
    assert len(trace) == DEFAULT_TRACE_REQUESTS == 100
    assert np.array_equal(trace.num_prompt_tokens, regenerated.num_prompt_tokens)
    assert np.array_equal(trace.num_output_tokens, regenerated.num_output_tokens)
    np.testing.assert_allclose(trace.arrival_at, regenerated.arrival_at, rtol=0, atol=1e-9)


def test_it_is_not_the_original_sharegpt_trace(shared_data):
    """So the package must not call it ``share-gpt-req100-rate10``."""
    original = load_trace(shared_data / "traces" / "share-gpt-req100-rate10.tsv")
    assert not _same(original, load_trace("sharegpt-like-100"))
    assert "share-gpt-req100-rate10" not in list_packaged_traces()


@pytest.mark.parametrize("name", ["sharegpt-like-100", "sharegpt-like-100.tsv"])
def test_a_local_file_always_wins(name, empty_cwd):
    mine = Trace(arrival_at=[0.0, 1.0], num_prompt_tokens=[5, 6], num_output_tokens=[1, 2],
                 source="mine")
    save_trace(mine, empty_cwd / "local.tsv")
    (empty_cwd / name).write_bytes((empty_cwd / "local.tsv").read_bytes())
    loaded = load_trace(name)
    assert _same(loaded, mine) and loaded.source == name


def test_a_broken_local_file_is_not_replaced_by_the_packaged_one(empty_cwd):
    (empty_cwd / "sharegpt-like-100.tsv").write_text("")
    with pytest.raises(TraceError, match=r"^sharegpt-like-100\.tsv: file is empty"):
        load_trace("sharegpt-like-100.tsv")


@pytest.mark.parametrize("name, suggestion", [
    ("share-gpt-req100-rate10.tsv", "sharegpt-like-100"),
    ("sharegpt-like-10", "sharegpt-like-100"),
    ("sharegpt_like_100.csv", "sharegpt-like-100"),
    ("nope.tsv", None),
])
def test_an_unknown_name_lists_the_packaged_ones(name, suggestion, empty_cwd):
    with pytest.raises(TraceError) as info:
        load_trace(name)
    message = str(info.value)
    assert message.startswith(f"{name}: trace file not found in the working directory")
    assert "packaged traces: ['sharegpt-like-100']" in message
    assert "\n" not in message
    if suggestion:
        assert message.endswith(f"did you mean {suggestion!r}?")
    else:
        assert "did you mean" not in message


def test_a_path_with_a_folder_is_never_a_packaged_name(empty_cwd):
    with pytest.raises(TraceError) as info:
        load_trace("traces/sharegpt-like-100.tsv")
    assert str(info.value) == "traces/sharegpt-like-100.tsv: trace file not found"
    with pytest.raises(TraceError, match="trace file not found$"):
        load_trace(empty_cwd / "sharegpt-like-100")


def test_the_config_dataset_accepts_a_packaged_name(empty_cwd):
    by_name = Simulator(SimConfig.from_flags(model_name="gpt2", dataset="sharegpt-like-100"))
    default = Simulator(SimConfig.from_flags(model_name="gpt2"))
    a, b = by_name.run(), default.run()
    np.testing.assert_array_equal(a.finished_at.values, b.finished_at.values)
