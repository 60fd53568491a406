"""Fuzz tests for the readers the per-door files do not fuzz: the reuse cache
file, network YAML files and the LLMCompass measurement folder.

Each feeds random bytes, truncations and random edits of a valid file and
accepts only a clean one-line refusal or a correct parse.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmsim_nb.engines.hardware import make_engine
from llmsim_nb.engines.reuse import ReuseCache
from llmsim_nb.models.ops import OpKind
from llmsim_nb.network import load_topology

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _one_line(exc: Exception, path: Path) -> None:
    text = str(exc)
    assert "\n" not in text, text
    assert str(path) in text or path.name in text, text


# --------------------------------------------------------------- reuse cache
def _valid_cache_file(tmp: Path) -> tuple[bytes, object]:
    engine = make_engine("npu-128x128")
    cache = ReuseCache()
    from llmsim_nb.models.ops import Op
    op = Op("norm", OpKind.NORM, np.array([2]), np.array([3]), np.array([1]), 1,
            np.array([48.0]), np.array([1.5]), np.array([2.5]))
    timing = engine.time_op(op)
    cache.put(("norm", OpKind.NORM, 1, 2, 3, 1, 48.0, 1.5, 2.5),
              (timing.latency.item(0), timing.compute_latency.item(0),
               timing.memory_latency.item(0)))
    return cache.save(tmp / "valid.npz", engine).read_bytes(), engine


@pytest.fixture(scope="module")
def cache_bytes(tmp_path_factory):
    return _valid_cache_file(tmp_path_factory.mktemp("cache"))


@FUZZ
@given(data=st.data())
def test_reuse_cache_file_is_read_correctly_or_refused_cleanly(cache_bytes, tmp_path_factory, data):
    good, engine = cache_bytes
    choice = data.draw(st.sampled_from(["random", "truncate", "flip"]))
    if choice == "random":
        raw = data.draw(st.binary(max_size=400))
    elif choice == "truncate":
        raw = good[:data.draw(st.integers(0, len(good) - 1))]
    else:
        at = data.draw(st.integers(0, len(good) - 1))
        raw = good[:at] + bytes([good[at] ^ data.draw(st.integers(1, 255))]) + good[at + 1:]
    path = tmp_path_factory.mktemp("fuzz") / "c.npz"
    path.write_bytes(raw)
    cache = ReuseCache()
    try:
        added = cache.load(path, engine)
    except ValueError as exc:
        _one_line(exc, path)
        assert len(cache) == 0  # all or nothing
        return
    # A flipped byte the format does not depend on (e.g. zip padding) may still
    # read: then it must read as the valid file does.
    assert added == 1
    assert cache.get(("norm", OpKind.NORM, 1, 2, 3, 1, 48.0, 1.5, 2.5)) is not None


# --------------------------------------------------------------- network YAML
VALID_YAML = """\
name: fuzzed
dimensions:
  - {kind: Ring, size: 4, bandwidth: 50 GB/s, latency: 500 ns, links: 2}
  - {kind: Switch, size: 2, bandwidth: 25 GB/s, latency: 1 us, links: 1}
"""
NASTY = ["", "-1", "0", "1e400", "nan", ".inf", "2.5", "x", "[]", "{}", "null", "true",
         "1e-300 GB/s", "5 TB/s", "0x10", "1:30", "'4'", "65537", "1000000 GB/s"]


@FUZZ
@given(data=st.data())
def test_network_yaml_is_read_correctly_or_refused_cleanly(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("net") / "n.yaml"
    choice = data.draw(st.sampled_from(["random", "truncate", "edit"]))
    if choice == "random":
        path.write_bytes(data.draw(st.binary(max_size=200)))
    elif choice == "truncate":
        path.write_text(VALID_YAML[:data.draw(st.integers(0, len(VALID_YAML)))])
    else:
        text = VALID_YAML
        for key in data.draw(st.lists(st.sampled_from(
                ["size: 4", "bandwidth: 50 GB/s", "latency: 500 ns", "links: 2", "size: 2"]),
                min_size=1, max_size=2)):
            name = key.split(":")[0]
            text = text.replace(key, f"{name}: {data.draw(st.sampled_from(NASTY))}", 1)
        path.write_text(text)
    try:
        topology = load_topology(path)
    except ValueError as exc:
        _one_line(exc, path)
        return
    assert topology.num_devices >= 1
    for d in topology.dimensions:
        assert 1e6 <= d.bandwidth <= 1e24 and 0 <= d.latency <= 1 and d.size >= 1


def test_the_valid_network_yaml_reads_as_written(tmp_path):
    path = tmp_path / "n.yaml"
    path.write_text(VALID_YAML)
    t = load_topology(path)
    assert [d.size for d in t.dimensions] == [4, 2] and t.dimensions[0].bandwidth == 50e9


# ------------------------------------------------------- LLMCompass folder
LLMCOMPASS = SHARED / "calibration" / "llmcompass_a100"


@pytest.mark.skipif(not LLMCOMPASS.is_dir(), reason=f"shared data not available: {LLMCOMPASS}")
@FUZZ
@given(data=st.data())
def test_llmcompass_folder_is_read_correctly_or_refused_cleanly(tmp_path_factory, data):
    from llmsim_nb.engines.measurements import load_llmcompass
    folder = tmp_path_factory.mktemp("lc") / "llmcompass"
    shutil.copytree(LLMCOMPASS, folder)
    victim = data.draw(st.sampled_from(sorted(folder.iterdir())))
    lines = victim.read_text().splitlines()
    choice = data.draw(st.sampled_from(["random", "truncate", "cell"]))
    if choice == "random":
        victim.write_bytes(data.draw(st.binary(max_size=200)))
    elif choice == "truncate":
        victim.write_text("\n".join(lines[:data.draw(st.integers(0, min(len(lines), 6)))]))
    else:
        r = data.draw(st.integers(0, min(len(lines), 20) - 1))
        cells = lines[r].split(",")
        c = data.draw(st.integers(0, len(cells) - 1))
        cells[c] = data.draw(st.sampled_from(NASTY + ["1.5", "-0.0", "1e9"]))
        lines[r] = ",".join(cells)
        victim.write_text("\n".join(lines) + "\n")
    try:
        measured = load_llmcompass(folder)
    except ValueError as exc:
        assert "\n" not in str(exc), exc
        assert victim.name in str(exc) or str(folder) in str(exc), exc
        return
    latencies = np.array([m.latency for m in measured])
    assert len(latencies) and np.isfinite(latencies).all() and (latencies > 0).all()


@pytest.mark.parametrize("text", ["08", "max_batch: 08", "a: !!int 0x10", "a: !!int abc"])
def test_the_strict_yaml_loader_reads_leading_zeros_as_decimal_and_refuses_odd_tags(text):
    """Found by the network YAML fuzz test: PyYAML's int constructor read '08' as octal
    and raised a bare ValueError."""
    import yaml

    from llmsim_nb.config.yaml_file import strict_yaml_loader
    if "!!int" in text:
        with pytest.raises(yaml.YAMLError, match="is not a plain decimal integer"):
            yaml.load(text, Loader=strict_yaml_loader())
    else:
        value = yaml.load(text, Loader=strict_yaml_loader())
        assert value in (8, {"max_batch": 8})
