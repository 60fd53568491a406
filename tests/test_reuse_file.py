"""The reuse cache's file: data only, bit-identical round trips, bad files refused."""

import io
import json
import os
import pickle
import stat
import zipfile

import numpy as np
import pytest
import xarray as xr

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.engines.hardware import make_engine
from llmsim_nb.engines.npu import NPUSpec
from llmsim_nb.engines.reuse import CACHE_FORMAT, ReuseCache, ReuseEngine, cache_path
from llmsim_nb.engines.reuse.file import read_cache_file
from llmsim_nb.models import BatchShape, decoder_template, get_model
from llmsim_nb.models.ops import OpKind

from .test_reuse import CountingNPU, simulated
from .test_simulator import small_trace

TRACE = small_trace(10, max_prompt=60, max_output=12)
TABLES = dict(model_name="gpt2")                         # closed form: tables
ENTRIES = dict(model_name="gpt2", npu_mode="detailed")   # expensive engine: instance entries


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMSIM_CACHE_DIR", str(tmp_path))
    return tmp_path


def run(flags, fast_run=True):
    return Simulator(SimConfig.from_flags(fast_run=fast_run, **flags), TRACE).run()


def saved(flags):
    """A Simulator's engine and the cache file of one fast run."""
    sim = Simulator(SimConfig.from_flags(fast_run=True, **flags), TRACE)
    sim.run()
    return sim.engine.inner, cache_path(sim.engine.inner)


def arrays_of(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def header_of(arrays):
    return json.loads(arrays["header"].tobytes())


def write(path, arrays, header=None):
    arrays = dict(arrays)
    if header is not None:
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def same_contents(a: ReuseCache, b: ReuseCache):
    """Bit for bit: the same keys in the same order, the same floats (and NaNs)."""
    assert list(a._entries.items()) == list(b._entries.items())
    assert list(a._tables) == list(b._tables)
    for x, y in zip(a._tables.values(), b._tables.values()):
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes()
    assert len(a) == len(b)


# --- round trips ----------------------------------------------------------------------

@pytest.mark.parametrize("flags", [
    TABLES, ENTRIES,
    dict(model_name="llama-7b", scheduling="chunked", max_num_batched_tokens=64),
    dict(model_name="gpt2", hardware="a100-80gb"),
    dict(model_name="gpt3-6.7b", npu_num=4, npu_group=2),
])
def test_a_second_fast_run_reads_the_file_and_gives_the_same_dataset(cache_dir, flags):
    first = run(flags)
    files = list(cache_dir.glob(f"reuse-*-v{CACHE_FORMAT}.npz"))
    assert len(files) == 1 and not list(cache_dir.glob(".*.tmp"))
    again = Simulator(SimConfig.from_flags(fast_run=True, **flags), TRACE)
    ds = again.run()
    # Everything comes from the file but the (query, context) pairs of prompt
    # chunks after a non-empty cache, which are remembered in memory only.
    pairs = sum(1 for key in again.reuse_cache.memo if key[0] == "pair")
    assert int(ds.reuse_misses.sum()) == pairs and int(ds.reuse_hits.sum()) > 0
    xr.testing.assert_identical(simulated(ds), simulated(first))
    xr.testing.assert_identical(simulated(ds), simulated(run(flags, fast_run=False)))


@pytest.mark.parametrize("flags", [TABLES, ENTRIES])
def test_save_then_load_gives_the_cache_bit_for_bit(tmp_path, flags):
    sim = Simulator(SimConfig.from_flags(**flags), TRACE)
    sim.run()
    cache, engine = sim.reuse_cache, sim.engine.inner
    path = cache.save(tmp_path / "cache.npz", engine)
    loaded = ReuseCache()
    assert loaded.load(path, engine) == len(cache) > 0
    same_contents(loaded, cache)
    # Never-timed cells are NaN in memory, absent from the file.
    if cache._tables:
        assert any(np.isnan(t).any() for t in cache._tables.values())
        assert np.isfinite(arrays_of(path)["table_timings"]).all()


def test_an_impure_engines_partly_filled_tables_round_trip(tmp_path):
    """An impure engine times only the lengths asked for: tables full of gaps."""
    template = decoder_template(get_model("gpt2"))
    batches = [BatchShape.from_lists([1, 1, 9], [5, 300, 2]),
               BatchShape.from_lists([12, 1], [0, 1000])]
    first = ReuseEngine(CountingNPU())
    want = [first.op_totals(template.block, b, template.dtype_bytes) for b in batches]
    path = first.cache.save(tmp_path / "c.npz", first.inner)
    again = ReuseEngine(CountingNPU())
    again.cache.load(path, again.inner)
    same_contents(again.cache, first.cache)
    first.inner.timed.clear()
    for batch, totals in zip(batches, want):
        assert first.op_totals(template.block, batch, template.dtype_bytes).tobytes() == \
            again.op_totals(template.block, batch, template.dtype_bytes).tobytes() == \
            totals.tobytes()
    # Chunks of a partly cached prompt are remembered in memory, not in the file:
    # the first engine times nothing again, the loaded one only those.
    assert first.inner.timed == []
    assert again.inner.timed and again.cache.misses == len(again.inner.timed)
    assert not any(m == (1,) for _, m, _ in again.inner.timed)


def test_keys_of_numpy_scalars_and_zero_timings_round_trip(tmp_path):
    engine = make_engine("npu-128x128")
    cache = ReuseCache()
    key = ("add", OpKind.ELEMENTWISE, np.int64(1), np.int64(7), 3, 1, 21, 42.0, np.float64(7.0))
    cache.put(key, (0.0, 0.0, 0.0))                    # an instance without work takes 0 s
    cache.put(("norm", OpKind.NORM, 1, 2, 3, 1, 48, 1.5, 2.5), (1e-6, 5e-7, 1e-6))
    cache.put(("odd",), (1.0, 1.0, 1.0))               # no layout: left out
    cache.put(("nan", OpKind.NORM, 1, 2, 3, 1, 4.0, 1.0, 1.0), (np.nan, 0.0, 0.0))  # left out
    loaded = ReuseCache()
    # The timings are invented (the format is under test, not the engine), so
    # load them as an engine that is not spot-checked would (an impure one).
    impure = type("Impure", (type(engine),), {"pure": False})(engine.spec)
    assert loaded.load(cache.save(tmp_path / "c.npz", engine), impure) == 2
    assert loaded.get(key) == (0.0, 0.0, 0.0)
    assert loaded.get(("norm", OpKind.NORM, 1, 2, 3, 1, 48, 1.5, 2.5)) == (1e-6, 5e-7, 1e-6)
    assert loaded.get(("odd",)) is None


def test_the_file_respects_the_umask_and_is_replaced_atomically(tmp_path):
    engine = make_engine("npu-128x128")
    cache = ReuseCache()
    cache.put(("norm", OpKind.NORM, 1, 2, 3, 1, 48, 1.5, 2.5), (1e-6, 5e-7, 1e-6))
    for umask, mode in ((0o077, 0o600), (0o022, 0o644)):
        old = os.umask(umask)
        try:
            path = cache.save(tmp_path / f"c{umask}.npz", engine)
        finally:
            os.umask(old)
        assert stat.S_IMODE(path.stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c18.npz", "c63.npz"]


def test_a_small_cache_keeps_what_putting_every_saved_timing_would(tmp_path):
    sim = Simulator(SimConfig.from_flags(**TABLES), TRACE)
    sim.run()
    path = sim.reuse_cache.save(tmp_path / "c.npz", sim.engine.inner)
    everything = read_cache_file(path, sim.engine.inner)
    assert everything.num_left_out == 0 and len(everything.tables) > 4
    for size in (100, 1000, 2000):
        for held in (False, True):
            want, got = ReuseCache(size), ReuseCache(size)
            if held:  # a table held before the load
                for c in (want, got):
                    c.put_table(("held",), np.ones(50))
            for key, table in everything.tables:
                want.put_table(key, table.copy())
            assert got.load(path, sim.engine.inner) == everything.num_timings
            same_contents(got, want)


# --- refused files ----------------------------------------------------------------------

@pytest.mark.parametrize("flags, member, row, bad", [
    (ENTRIES, "entry_timings", 0, np.nan),
    (ENTRIES, "entry_timings", -1, -1e-6),
    (ENTRIES, "entry_timings", 3, np.inf),
    (ENTRIES, "entry_costs", 0, np.nan),
    (TABLES, "table_timings", 0, np.nan),
    (TABLES, "table_timings", -1, -1.0),
    (TABLES, "table_timings", 7, -np.inf),
])
def test_a_timing_that_is_not_a_number_ge_0_is_refused_and_the_run_is_right(
        cache_dir, flags, member, row, bad):
    engine, path = saved(flags)
    arrays = arrays_of(path)
    arrays[member] = arrays[member].copy()
    arrays[member].reshape(len(arrays[member]), -1)[row, 0] = bad
    write(path, arrays)
    with pytest.raises(ValueError, match=f"{str(path)!r} cannot be read: 1 of its .* are not "
                                         "finite numbers >= 0"):
        ReuseCache().load(path, engine)
    with pytest.warns(UserWarning, match="are not finite numbers >= 0 .*; starting a new cache"):
        ds = run(flags)
    assert int(ds.reuse_misses.sum()) > 0          # nothing was taken from the file
    xr.testing.assert_identical(simulated(ds), simulated(run(flags, fast_run=False)))
    assert ReuseCache().load(path, engine) > 0     # and it was replaced by a good one


def test_truncated_and_random_files_are_refused(tmp_path):
    sim = Simulator(SimConfig.from_flags(**TABLES), TRACE)
    sim.run()
    engine = sim.engine.inner
    good = sim.reuse_cache.save(tmp_path / "good.npz", engine).read_bytes()
    bad = tmp_path / "bad.npz"
    rng = np.random.default_rng(0)
    candidates = [good[:n] for n in (0, 1, 30, len(good) // 3, len(good) // 2, len(good) - 1)]
    candidates += [rng.bytes(n) for n in (1, 100, 10_000)]
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF                   # a flipped byte inside a member: CRC
    candidates.append(bytes(flipped))
    for data in candidates:
        bad.write_bytes(data)
        cache = ReuseCache()
        with pytest.raises(ValueError, match=f"^reuse cache {str(bad)!r} cannot be read: "):
            cache.load(bad, engine)
        assert len(cache) == 0
    # Members cut short, or whose npy header claims more than the file holds.
    arrays = arrays_of(tmp_path / "good.npz")
    for member in ("table_timings", "header"):
        bad.write_bytes(_cut_member(tmp_path, arrays, member))
        with pytest.raises(ValueError, match=f"member {member} holds .* bytes, its shape"):
            ReuseCache().load(bad, engine)
    huge = dict(arrays, table_timings=np.lib.stride_tricks.as_strided(
        np.zeros(1), shape=(10**12,), strides=(0,)))
    with open(bad, "wb") as f, zipfile.ZipFile(f, "w") as z:
        for name, array in huge.items():
            with z.open(f"{name}.npy", "w") as out:
                if name == "table_timings":  # the header of an 8 TB array, no data
                    np.lib.format.write_array_header_1_0(
                        out, np.lib.format.header_data_from_array_1_0(array))
                else:
                    np.lib.format.write_array(out, array, allow_pickle=False)
    with pytest.raises(ValueError, match="member table_timings is truncated"):
        ReuseCache().load(bad, engine)


def _cut_member(tmp_path, arrays, member):
    """An archive whose ``member`` loses its last 8 bytes of data (valid zip)."""
    path = tmp_path / "cut.npz"
    with open(path, "wb") as f, zipfile.ZipFile(f, "w") as z:
        for name, array in arrays.items():
            with z.open(f"{name}.npy", "w") as out:
                if name == member:
                    buffer = io.BytesIO()
                    np.lib.format.write_array(buffer, array, allow_pickle=False)
                    out.write(buffer.getvalue()[:-8])
                else:
                    np.lib.format.write_array(out, array, allow_pickle=False)
    return path.read_bytes()


def test_a_file_for_another_engine_configuration_is_refused(cache_dir):
    _, path = saved(TABLES)
    other = make_engine(NPUSpec(memory_bandwidth=500e9))
    with pytest.raises(ValueError, match="was made for engine configuration"):
        ReuseCache().load(path, other)
    # Even placed at the other configuration's path, it is refused there.
    flags = dict(TABLES, hardware="a100-80gb")
    gpu = Simulator(SimConfig.from_flags(fast_run=True, **flags), TRACE)
    cache_path(gpu.engine.inner).write_bytes(path.read_bytes())
    with pytest.warns(UserWarning, match="was made for engine configuration"):
        ds = gpu.run()
    xr.testing.assert_identical(simulated(ds), simulated(run(flags, fast_run=False)))


class Payload:
    """Unpickling this creates ``marker``: proof that a file was unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickle_is_never_unpickled(cache_dir):
    marker = cache_dir / "unpickled"
    engine = Simulator(SimConfig.from_flags(fast_run=True, **TABLES), TRACE).engine.inner
    path = cache_path(engine)
    assert path.name.endswith(f"-v{CACHE_FORMAT}.npz")
    old_name = path.with_name(path.name.replace(f"-v{CACHE_FORMAT}.npz", ".pkl"))
    pickle.loads(pickle.dumps(Payload(cache_dir / "proof"))).close()
    assert (cache_dir / "proof").exists()           # the payload works when unpickled
    # A format-2 file under its old name is not even looked at.
    old_name.write_bytes(pickle.dumps({"format": 2, "entries": [Payload(marker)]}))
    ds = run(TABLES)
    assert not marker.exists() and int(ds.reuse_misses.sum()) > 0
    # A pickle at the path, a pickled object array in the archive, a pickle in a zip.
    pickled = pickle.dumps({"format": CACHE_FORMAT, "entries": [Payload(marker)]})
    arrays = arrays_of(path)
    with open(path, "wb") as f:
        np.savez(f, **{**arrays, "entry_keys": np.array([Payload(marker)], dtype=object)})
    in_archive = path.read_bytes()
    with open(path, "wb") as f, zipfile.ZipFile(f, "w") as z:
        for name in arrays:
            z.writestr(f"{name}.npy", pickled)
    in_zip = path.read_bytes()
    for data in (pickled, in_archive, in_zip):
        path.write_bytes(data)
        with pytest.raises(ValueError, match="cannot be read"):
            ReuseCache().load(path, engine)
        with pytest.warns(UserWarning, match="cannot be read"):
            ds = run(TABLES)
        assert not marker.exists()
        xr.testing.assert_identical(simulated(ds), simulated(run(TABLES, fast_run=False)))


def _set(header, *path_and_value):
    *where, last, value = path_and_value
    for step in where:
        header = header[step]
    header[last] = value


@pytest.mark.parametrize("change, problem", [
    (("format", 2), "it has format 2, this version reads format 4"),
    (("magic", "something else"), "it is not a llmsim_nb reuse cache"),
    (("row_chunk", 64), "its key layout is not this version's"),
    (("layout", "entry_keys", 0, "flops"), "its key layout is not this version's"),
    (("entries", 1), "its entry arrays are not of 1 entries"),
    (("kinds", 0, "teleport"), "its op kinds are not a list of kinds"),
    (("tables", 0, "key", "other"), "table 0 has the key 'other'"),
    (("tables", 0, "template", 10_000), "table 0's template is not a non-attention template"),
    (("tables", 0, "chunk", -1), "table 0's chunk is -1"),
    (("tables", 0, "dtype_bytes", 0), "table 0's dtype_bytes is 0"),
    (("tables", -1, "width", 10**12), "its tables have more columns than it stores"),
    (("tables", -1, "shape", 2), "table .*'s shape is 2"),
    (("templates", 0, "width", -3), "template 0 has width=-3, not a number >= 0"),
    (("templates", 0, "kind", "teleport"), "template 0 has an invalid name or kind"),
    (("tables", []), "its tables do not use every column and timing it stores"),
])
def test_a_header_that_does_not_fit_the_arrays_is_refused(tmp_path, change, problem):
    sim = Simulator(SimConfig.from_flags(**TABLES), TRACE)
    sim.run()
    engine = sim.engine.inner
    path = sim.reuse_cache.save(tmp_path / "c.npz", engine)
    arrays = arrays_of(path)
    header = header_of(arrays)
    assert header["tables"][0]["key"] == "rows" and header["tables"][-1]["key"] == "attention"
    _set(header, *change)
    write(path, arrays, header)
    with pytest.raises(ValueError, match=problem):
        ReuseCache().load(path, engine)


@pytest.mark.parametrize("change, problem", [
    (lambda a: a.update(entry_keys=a["entry_keys"].astype(np.int32)), "not a 2-d int64 array"),
    (lambda a: a.update(entry_timings=a["entry_timings"][:, :2]), "not of .* entries"),
    (lambda a: a.pop("table_timed"), "its members are"),
    (lambda a: a.update(extra=np.zeros(3)), "its members are"),
    (lambda a: a["entry_keys"].__setitem__((0, 0), 10**6), "name or kind index is out of range"),
    (lambda a: a["entry_keys"].__setitem__((0, 3), -5), "batch or shape is negative"),
    (lambda a: a["entry_keys"].__setitem__(1, a["entry_keys"][0]), "two entries have the same"),
])
def test_arrays_that_do_not_fit_the_layout_are_refused(tmp_path, change, problem):
    sim = Simulator(SimConfig.from_flags(**ENTRIES), TRACE)
    sim.run()
    engine = sim.engine.inner
    path = sim.reuse_cache.save(tmp_path / "c.npz", engine)
    arrays = {k: v.copy() for k, v in arrays_of(path).items()}
    arrays["entry_costs"][1] = arrays["entry_costs"][0]
    arrays["entry_timings"][1] = arrays["entry_timings"][0]
    change(arrays)
    write(path, arrays)
    cache = ReuseCache()
    with pytest.raises(ValueError, match=problem):
        cache.load(path, engine)
    assert len(cache) == 0


def test_a_compressed_archive_is_refused(tmp_path):
    engine = ReuseEngine(make_engine("npu-128x128"))
    engine.simulate(decoder_template(get_model("gpt2")).instantiate(
        BatchShape.from_lists([16, 1], [0, 40]))[1])
    path = engine.cache.save(tmp_path / "c.npz", engine.inner)
    arrays = arrays_of(path)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    with pytest.raises(ValueError, match="is compressed, encrypted or bigger than the file"):
        ReuseCache().load(path, engine.inner)


def test_a_well_formed_file_with_wrong_timings_is_refused_by_the_spot_check(tmp_path, monkeypatch):
    """Every timing x 1000 passes the format checks; re-timing a sample catches it."""
    monkeypatch.setenv("LLMSIM_CACHE_DIR", str(tmp_path))
    config = SimConfig.from_flags(model_name="gpt2", fast_run=True)
    trace = small_trace(12)
    expected = Simulator(config, trace).run()
    (path,) = tmp_path.glob("*.npz")
    with np.load(path, allow_pickle=False) as z:
        arrays = {name: z[name] for name in z.files}
    arrays["entry_timings"] = arrays["entry_timings"] * 1000
    arrays["table_timings"] = arrays["table_timings"] * 1000
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.warns(UserWarning, match=r"cannot be used: it times op '.*' .* but the engine "
                                         r"gives .* \(a file of another engine version"):
        again = Simulator(config, trace).run()
    np.testing.assert_array_equal(again.t_end.values, expected.t_end.values)


def test_the_cache_file_name_carries_the_package_version(monkeypatch):
    from llmsim_nb.engines.reuse import engine_hash
    import llmsim_nb._version as version
    engine = make_engine("npu-128x128")
    before = engine_hash(engine)
    monkeypatch.setattr(version, "__version__", "99.0.0")
    assert engine_hash(engine) != before
