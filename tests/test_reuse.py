"""Computation reuse: identical results, hit rates, bounded size, persistence."""

import pickle

import numpy as np
import pytest
import xarray as xr

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.engines.hardware import make_engine
from llmsim_nb.engines.npu import NPUEngine, NPUSpec
from llmsim_nb.engines.npu_detailed import DetailedNPUEngine
from llmsim_nb.engines.reuse import ReuseCache, ReuseEngine, cache_path, engine_hash
from llmsim_nb.models import BatchShape, decoder_template, get_model
from llmsim_nb.models.ops import OpKind
from llmsim_nb.results.dataset import SIMULATION_EFFORT_VARS
from llmsim_nb.testing import check_engine

from .test_simulator import small_trace


def simulated(ds):
    """The Dataset without the variables that measure simulation effort."""
    out = ds.drop_vars([v for v in SIMULATION_EFFORT_VARS if v in ds])
    out.attrs = {k: v for k, v in ds.attrs.items() if k != "config"}
    return out


@pytest.mark.parametrize("flags", [
    dict(model_name="gpt3-6.7b"),
    dict(model_name="llama-7b", scheduling="chunked", max_num_batched_tokens=64),
    dict(model_name="gpt2", npu_mem=0.3, block_size=16),            # constant eviction
    dict(model_name="gpt3-6.7b", npu_num=4, npu_group=2),            # hybrid parallel
    dict(model_name="gpt3-6.7b", npu_num=4, attention_placement="requests"),
])
def test_reuse_gives_the_identical_dataset(flags):
    trace = small_trace(25, max_prompt=200, max_output=60, rate=300.0)
    on = Simulator(SimConfig.from_flags(reuse="on", **flags), trace).run()
    off = Simulator(SimConfig.from_flags(reuse="off", **flags), trace).run()
    xr.testing.assert_identical(simulated(on), simulated(off))
    assert int(on.reuse_hits.sum()) > 0 and int(off.reuse_hits.sum()) == 0
    assert int(off.reuse_misses.sum()) == 0


def test_hit_rate_grows_as_decodes_repeat_shapes():
    trace = small_trace(30, max_prompt=64, max_output=100, rate=100.0)
    ds = Simulator(SimConfig.from_flags(model_name="gpt2"), trace).run()
    hits, misses = ds.reuse_hits.values, ds.reuse_misses.values
    rate = hits / np.maximum(hits + misses, 1)
    # The first iteration has seen nothing before (ops are keyed by name too,
    # so even the block's two norms are timed separately); later ones reuse.
    assert misses[0] > 0 and hits[0] < misses[0]
    assert rate[len(rate) // 2:].mean() > 0.5 > rate[0]


def test_cache_is_bounded_and_least_recently_used():
    cache = ReuseCache(max_entries=2)
    cache.put("a", (1.0, 1.0, 1.0))
    cache.put("b", (2.0, 2.0, 2.0))
    assert cache.get("a") is not None              # "a" is now the most recent
    cache.put("c", (3.0, 3.0, 3.0))
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") is not None
    with pytest.raises(ValueError, match="max_entries"):
        ReuseCache(max_entries=0)


def test_small_cache_still_gives_identical_results():
    trace = small_trace(15)
    tiny = Simulator(SimConfig.from_flags(model_name="gpt2", reuse_cache_size=3), trace).run()
    off = Simulator(SimConfig.from_flags(model_name="gpt2", reuse="off"), trace).run()
    xr.testing.assert_identical(simulated(tiny), simulated(off))


@pytest.mark.parametrize("hardware", ["npu-128x128", "a100-80gb", "rtx3090"])
def test_op_totals_from_the_cache_equal_the_engines_to_the_bit(hardware):
    """Decode attention comes from a context-length table, prompts are timed;
    per-op totals must be the wrapped engine's floats in every batch mix."""
    template = decoder_template(get_model("llama-7b"))
    inner = make_engine(hardware)
    reuse = ReuseEngine(make_engine(hardware))
    batches = [
        BatchShape.from_lists([1, 1, 1], [5, 300, 17]),                 # all decode
        BatchShape.from_lists([1, 40, 1, 7], [301, 0, 5, 12]),          # mixed
        BatchShape.from_lists([120], [0]),                              # one prompt
        BatchShape.from_lists([1] * 5, [0, 1, 5000, 5, 300]),           # grows the table
        BatchShape.from_lists([1, 1, 1], [5, 300, 17]),                 # all hits
    ]
    for batch in batches:
        for templates, rows in ((template.embedding, None), (template.block, None),
                                (template.head, 2)):
            want = inner.op_totals(templates, batch, template.dtype_bytes, rows)
            got = reuse.op_totals(templates, batch, template.dtype_bytes, rows)
            np.testing.assert_array_equal(got, want)
    before = reuse.cache.misses
    reuse.op_totals(template.block, batches[0], template.dtype_bytes)
    assert reuse.cache.misses == before  # seen contexts and token counts are hits


class CountingNPU(NPUEngine):
    """An engine with a side effect: it records every instance it times."""

    pure = False

    def __init__(self):
        super().__init__(NPUSpec())
        self.timed = []

    def time_op(self, op):
        self.timed.append((op.kind, tuple(op.m.tolist()), tuple(op.n.tolist())))
        return super().time_op(op)


def test_an_impure_engine_times_only_what_batches_ask_for():
    template = decoder_template(get_model("gpt2"))
    counting = CountingNPU()
    reuse = ReuseEngine(counting)
    batch = BatchShape.from_lists([1, 1, 9], [5, 300, 2])
    got = reuse.op_totals(template.block, batch, template.dtype_bytes)
    np.testing.assert_array_equal(got, NPUEngine(NPUSpec()).op_totals(
        template.block, batch, template.dtype_bytes))
    rows = {m for kind, ms, _ in counting.timed if not kind.is_attention for m in ms}
    assert rows == {11}                        # the batch's 11 tokens, no range of counts
    scores = {(m, n) for kind, ms, ns in counting.timed if kind is OpKind.ATTN_SCORE
              for m, n in zip(ms, ns)}
    assert scores == {(1, 6), (1, 301), (9, 11)}  # (query, context + query): no range


def test_reuse_engine_passes_the_conformance_check():
    check_engine(ReuseEngine(make_engine("npu-128x128")))


def test_cache_round_trips_and_refuses_another_engine(tmp_path):
    engine = ReuseEngine(make_engine("npu-128x128"))
    block = decoder_template(get_model("gpt2")).instantiate(
        BatchShape.from_lists([16, 1], [0, 40]))[1]
    first = engine.simulate(block)
    path = engine.cache.save(tmp_path / "cache.npz", engine.inner)
    fresh = ReuseEngine(make_engine("npu-128x128"))
    assert fresh.cache.load(path, fresh.inner) == len(engine.cache)
    again = fresh.simulate(block)
    assert fresh.cache.misses == 0 and fresh.cache.hits > 0
    np.testing.assert_array_equal(again.op_latency, first.op_latency)
    other = make_engine(NPUSpec(memory_bandwidth=500e9))
    assert engine_hash(other) != engine_hash(engine.inner)
    with pytest.raises(ValueError, match="made for engine configuration"):
        ReuseCache().load(path, other)
    (tmp_path / "junk.npz").write_bytes(b"not a cache")
    with pytest.raises(ValueError, match="cannot be read"):
        ReuseCache().load(tmp_path / "junk.npz", engine.inner)


def test_reuse_flag_values():
    assert SimConfig.from_flags(reuse="off").reuse is False
    assert SimConfig.from_flags(reuse=True).reuse is True
    with pytest.raises(ValueError, match="reuse='maybe'"):
        SimConfig.from_flags(reuse="maybe")


def test_fast_run_keeps_the_cache_between_cli_runs(tmp_path, monkeypatch, capsys):
    from llmsim_nb.cli.main import main

    monkeypatch.setenv("LLMSIM_CACHE_DIR", str(tmp_path))
    assert main(["run", "--model_name", "gpt2", "--fast_run", "--quiet"]) == 0
    files = list(tmp_path.glob("reuse-*.npz"))
    assert len(files) == 1
    # The saved tables answer a new run of the same workload without the engine.
    sim = Simulator(SimConfig.from_flags(model_name="gpt2"))
    assert sim.reuse_cache.load(files[0], sim.engine.inner) > 1000
    ds = sim.run()
    assert int(ds.reuse_misses.sum()) == 0 and int(ds.reuse_hits.sum()) > 0
    assert main(["run", "--model_name", "gpt2", "--fast_run", "--quiet"]) == 0
    # A cache file from another version is replaced, with a note.
    files[0].write_bytes(b"not a cache")
    assert main(["run", "--model_name", "gpt2", "--fast_run", "--quiet"]) == 0
    assert "starting a new cache there" in capsys.readouterr().err
    assert sim.reuse_cache.load(files[0], sim.engine.inner) > 1000


def test_fast_run_in_python_lets_a_later_simulator_skip_the_engine(tmp_path, monkeypatch):
    """A notebook restart or the next sweep point: a new process-level Simulator."""
    monkeypatch.setenv("LLMSIM_CACHE_DIR", str(tmp_path))
    trace = small_trace(12)
    config = SimConfig.from_flags(model_name="gpt2", fast_run=True, npu_mode="detailed")
    first = Simulator(config, trace).run()
    assert int(first.reuse_misses.sum()) > 0 and len(list(tmp_path.glob("reuse-*.npz"))) == 1
    again = Simulator(config, trace).run()
    assert int(again.reuse_misses.sum()) == 0
    xr.testing.assert_identical(simulated(first), simulated(again))
    # Without fast_run nothing is read or written.
    plain = Simulator(SimConfig.from_flags(model_name="gpt2", npu_mode="detailed"), trace).run()
    assert int(plain.reuse_misses.sum()) == int(first.reuse_misses.sum())


def test_fast_run_never_costs_a_result(tmp_path, monkeypatch):
    trace = small_trace(6)
    config = SimConfig.from_flags(model_name="gpt2", fast_run=True)
    # A cache directory that cannot exist: the run still returns, with a warning.
    monkeypatch.setenv("LLMSIM_CACHE_DIR", "/dev/null/not-a-directory")
    with pytest.warns(UserWarning, match="reuse cache was not saved"):
        ds = Simulator(config, trace).run()
    assert int(ds.num_finished.sum()) == 6
    # Files that are not caches (another version's pickle) are replaced, with a warning.
    monkeypatch.setenv("LLMSIM_CACHE_DIR", str(tmp_path))
    path = cache_path(Simulator(config, trace).engine.inner)
    for bad in (pickle.dumps({"format": 2}), pickle.dumps([1, 2])):
        path.write_bytes(bad)
        with pytest.warns(UserWarning, match="cannot be read"):
            Simulator(config, trace).run()
        assert Simulator(config, trace).reuse_cache.load(path, make_engine("npu-128x128")) > 0
    # Nothing new simulated: the file is not rewritten.
    before = path.stat().st_mtime_ns
    Simulator(config, trace).run()
    assert path.stat().st_mtime_ns == before


def test_a_cache_file_is_all_or_nothing(tmp_path):
    engine = ReuseEngine(make_engine("npu-128x128"))
    engine.cache.put(("k",), (1.0, 1.0, 1.0))  # a key of no layout: left out of the file
    engine.simulate(decoder_template(get_model("gpt2")).instantiate(
        BatchShape.from_lists([16, 1], [0, 40]))[1])
    path = engine.cache.save(tmp_path / "cache.npz", engine.inner)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    assert len(arrays["entry_keys"]) == len(engine.cache._entries) - 1 > 0
    # Every entry is fine but the last one's latency: nothing is added.
    arrays["entry_timings"] = arrays["entry_timings"].copy()
    arrays["entry_timings"][-1, 0] = -1.0
    with path.open("wb") as f:
        np.savez(f, **arrays)
    cache = ReuseCache()
    with pytest.raises(ValueError, match="1 of its entry timings are not finite numbers >= 0"):
        cache.load(path, engine.inner)
    with pytest.raises(ValueError, match="cannot be read"):
        cache.load(tmp_path, engine.inner)  # a directory
    assert len(cache) == 0 and cache.get(("k",)) is None


def test_tables_stay_within_the_cache_bound():
    trace = small_trace(25, max_prompt=200, max_output=60, rate=300.0)
    sim = Simulator(SimConfig.from_flags(model_name="gpt2", reuse_cache_size=3000), trace)
    bounded = sim.run()
    assert len(sim.reuse_cache) <= 3000
    off = Simulator(SimConfig.from_flags(model_name="gpt2", reuse="off"), trace).run()
    xr.testing.assert_identical(simulated(bounded), simulated(off))


def test_detailed_mode_runs_with_and_without_reuse_identically():
    trace = small_trace(6, max_prompt=40, max_output=8)
    flags = dict(model_name="gpt2", npu_mode="detailed")
    on = Simulator(SimConfig.from_flags(**flags), trace)
    off = Simulator(SimConfig.from_flags(reuse="off", **flags), trace)
    assert isinstance(on.engine.inner, DetailedNPUEngine)
    xr.testing.assert_identical(simulated(on.run()), simulated(off.run()))
