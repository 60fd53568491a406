"""Topologies: loading seed files and presets, numbering, routing, defaults, errors."""

import json
import re
from pathlib import Path

import pytest

from llmsim_nb.network import (Dimension, Topology, default_topology, list_network_presets,
                               load_topology)

SEED_NETWORK = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "seed_configs" / "network"


def _seed_files():
    if not SEED_NETWORK.is_dir():
        return []
    return sorted(SEED_NETWORK.glob("*.json"))


@pytest.fixture
def seed_dir():
    if not SEED_NETWORK.is_dir():
        pytest.skip(f"{SEED_NETWORK} is not available")
    return SEED_NETWORK


def _write(tmp_path, data, name="net.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data) if name.endswith(".json") else data)
    return path


GOOD = {
    "topology-name": "Hierarchical",
    "topologies-per-dim": ["Ring", "FullyConnected"],
    "dimension-type": ["N", "P"],
    "dimensions-count": 2,
    "units-count": [4, 2],
    "links-count": [2, 1],
    "link-latency": [500, 100],
    "link-bandwidth": [25, 12.5],
    "nic-latency": [0, 0],
    "router-latency": [0, 0],
    "hbm-latency": [500, 500],
    "hbm-bandwidth": [370, 370],
    "hbm-scale": [0, 0],
}


# ---------------------------------------------------------------- seed files and presets
def test_every_seed_file_loads_and_matches_its_preset(seed_dir):
    files = _seed_files()
    assert files
    presets = set(list_network_presets())
    for path in files:
        from_file = load_topology(path)
        assert path.stem in presets, path.stem
        for name in (path.name, path.stem):
            from_preset = load_topology(name)
            assert from_preset.dimensions == from_file.dimensions, name
            assert from_preset.notes == from_file.notes, name
            assert from_preset.hbm_bandwidth == from_file.hbm_bandwidth, name
            assert from_preset.hbm_latency == from_file.hbm_latency, name
        raw = json.loads(path.read_text())
        n = raw["dimensions-count"]
        assert from_file.num_devices == pytest.approx(
            __import__("math").prod(raw["units-count"][:n]))
        for i, d in enumerate(from_file.dimensions):
            assert d.kind == raw["topologies-per-dim"][i]
            assert d.size == raw["units-count"][i]
            assert d.num_links == raw["links-count"][i]
            assert d.bandwidth == raw["link-bandwidth"][i] * 1e9
            assert d.latency == pytest.approx(raw["link-latency"][i] * 1e-9)


def test_presets_cover_exactly_the_seed_files(seed_dir):
    assert set(list_network_presets()) == {p.stem for p in _seed_files()}


def test_long_lists_are_cut_and_noted(seed_dir):
    topo = load_topology(SEED_NETWORK / "fully_connected_2d_64.json")
    assert len(topo.dimensions) == 2
    assert any("link-latency" in note and "3 values" in note for note in topo.notes)
    assert load_topology("gpu_n4").notes == ()


def test_known_seed_figures():
    gpu = load_topology("gpu_n4.json")
    assert gpu.num_devices == 4
    assert gpu.dimensions[0].latency == pytest.approx(100e-6)
    assert gpu.dimensions[0].bandwidth == 64e9
    sw = load_topology("sample_Switch")
    assert sw.dimensions[0].router_latency == pytest.approx(10e-9)
    neu = load_topology("neupims_(4,2).json")
    assert neu.num_devices == 64
    assert neu.dimensions[0].bandwidth == 1e21


def test_unknown_preset_lists_known_names():
    with pytest.raises(ValueError, match=r"known presets: .*gpu_n4"):
        load_topology("no_such_network.json")


def test_missing_file_path():
    with pytest.raises(ValueError, match="does not exist"):
        load_topology("some/dir/missing.json")


# ---------------------------------------------------------------- numbering
def test_mixed_radix_round_trip():
    topo = Topology((Dimension("Ring", 3, 1e9, 0.0, 2), Dimension("FullyConnected", 4, 1e9, 0.0, 3),
                     Dimension("Switch", 2, 1e9, 0.0, 1)))
    assert topo.num_devices == 24
    assert topo.strides == (1, 3, 12)
    for dev in range(topo.num_devices):
        c = topo.coords(dev)
        assert dev == c[0] + 3 * (c[1] + 4 * c[2])
        assert topo.device_at(c) == dev
    with pytest.raises(ValueError, match="outside"):
        topo.coords(24)
    with pytest.raises(ValueError, match=r"coords\[1\]"):
        topo.device_at((0, 4, 0))


def test_dims_spanned():
    topo = default_topology(16, 4)  # [4, 2, 2]
    assert topo.dims_spanned(range(4)) == (0,)
    assert topo.dims_spanned(range(8)) == (0, 1)
    assert topo.dims_spanned([0, 4, 8, 12]) == (1, 2)
    assert topo.dims_spanned([5]) == ()


# ---------------------------------------------------------------- routing
def test_ring_path_takes_shorter_way():
    topo = Topology((Dimension("Ring", 8, 10e9, 1e-6, 2),))
    assert topo.path(0, 2) == ((0, 0, 1), (0, 1, 2))
    assert topo.path(0, 7) == ((0, 0, 7),)           # wrap-around, one hop
    assert topo.path(1, 6) == ((0, 1, 0), (0, 0, 7), (0, 7, 6))
    assert topo.hops(0, 4) == 4
    assert topo.path(3, 3) == ()
    # 2 links per device, one per direction: a neighbour link carries one link's bandwidth
    assert topo.link_bandwidth((0, 0, 1)) == 10e9
    assert topo.path_latency(0, 3) == pytest.approx(3e-6)


def test_fully_connected_and_switch_paths():
    fc = Topology((Dimension("FullyConnected", 4, 64e9, 1e-7, 3),))
    assert fc.path(1, 3) == ((0, 1, 3),)
    assert fc.link_bandwidth((0, 1, 3)) == 64e9
    sw = Topology((Dimension("Switch", 4, 25e9, 500e-9, 1, router_latency=10e-9),))
    assert sw.path(0, 3) == ((0, 0, "up"), (0, 3, "down"))
    assert sw.hops(0, 3) == 2
    assert sw.path_latency(0, 3) == pytest.approx(1010e-9)
    assert sw.link_class((0, 0, "up")) == "dim0"


def test_dimension_order_routing():
    topo = default_topology(16, 4)  # FC[4] x FC[2] x FC[2]
    # 1 -> 14: coords (1,0,0) -> (2,1,1); fix dim 0, then 1, then 2
    assert topo.path(1, 14) == ((0, 1, 2), (1, 2, 6), (2, 6, 14))
    assert topo.path_bandwidth(1, 14) == 64e9


def test_lazy_links_on_a_large_mesh():
    topo = load_topology("fully_connected_1d_2048")
    assert topo.path(0, 2047) == ((0, 0, 2047),)
    assert topo.link_bandwidth((0, 5, 9)) == 64e9


# ---------------------------------------------------------------- default topology
def test_default_topology_matches_seed_fully_connected_files(seed_dir):
    checked = 0
    for path in _seed_files():
        m = re.fullmatch(r"fully_connected_(\d)d_(\d+)", path.stem)
        if not m:
            continue
        k, npu_num = int(m.group(1)), int(m.group(2))
        seed = load_topology(path)
        made = default_topology(npu_num, 2 ** (k - 1))
        assert made.name == path.stem
        for a, b in zip(made.dimensions, seed.dimensions, strict=True):
            assert (a.kind, a.size, a.num_links, a.bandwidth, a.dim_type) == \
                   (b.kind, b.size, b.num_links, b.bandwidth, b.dim_type), path.stem
        checked += 1
    assert checked >= 20


def test_default_topology_shape_and_errors():
    topo = default_topology(16, 4)
    assert [d.size for d in topo.dimensions] == [4, 2, 2]
    assert [d.dim_type for d in topo.dimensions] == ["N", "T", "P"]
    assert all(d.latency == 0 for d in topo.dimensions)
    assert default_topology(1).num_devices == 1
    with pytest.raises(ValueError, match="power of two"):
        default_topology(12, 3)
    with pytest.raises(ValueError, match="power of two"):
        default_topology(4, 8)


# ---------------------------------------------------------------- malformed files
@pytest.mark.parametrize("change, message", [
    ({"units-count": None}, "missing key 'units-count'"),
    ({"topologies-per-dim": ["Ring", "Mesh"]}, "kind='Mesh'"),
    ({"links-count": [2]}, "links-count has 1 entries, fewer than dimensions-count=2"),
    ({"units-count": [0, 2]}, "size must be an integer >= 1"),
    ({"link-bandwidth": [25, -1]}, "bandwidth must be > 0"),
    ({"dimensions-count": 3}, "topologies-per-dim"),
    ({"dimension-type": ["N", "Z"]}, "dim_type='Z'"),
])
def test_malformed_json(tmp_path, change, message):
    data = dict(GOOD)
    for key, value in change.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    path = _write(tmp_path, data)
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        load_topology(path)
    assert str(path) in str(err.value)


def test_good_json_and_truncation_note(tmp_path):
    data = dict(GOOD, **{"link-latency": [500, 100, 7]})
    topo = load_topology(_write(tmp_path, data))
    assert [d.kind for d in topo.dimensions] == ["Ring", "FullyConnected"]
    assert topo.dimensions[1].bandwidth == 12.5e9
    assert topo.dimensions[1].latency == pytest.approx(100e-9)
    assert topo.hbm_bandwidth == (370e9, 370e9)
    assert len(topo.notes) == 1 and "ignored [7]" in topo.notes[0]


def test_invalid_json_text(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_topology(path)


def test_yaml_format(tmp_path):
    path = _write(tmp_path, """
dimensions:
  - {kind: FullyConnected, size: 4, bandwidth: 64 GB/s, latency: 100 ns, links: 3}
  - {kind: Switch, size: 2, bandwidth: 25e9, latency: 1 us, links: 1, type: P,
     router_latency: 10 ns}
""", "mine.yaml")
    topo = load_topology(path)
    assert topo.num_devices == 8
    assert topo.dimensions[0].bandwidth == 64e9
    assert topo.dimensions[0].latency == pytest.approx(1e-7)
    assert topo.dimensions[1].latency == pytest.approx(1e-6)
    assert topo.dimensions[1].router_latency == pytest.approx(1e-8)
    assert topo.name == "mine"


@pytest.mark.parametrize("text, message", [
    ("dimensions: []\n", "missing key 'dimensions'"),
    ("dimensions:\n  - {kind: Ring, size: 4, latency: 1 ns, links: 2}\n", "missing key 'bandwidth'"),
    ("dimensions:\n  - {kind: Ring, size: 4, bandwidth: 10 GHz, links: 2}\n", "bandwidth='10 GHz'"),
    ("dimensions:\n  - {kind: Ring, size: 4, bandwidth: 1 GB/s, latency: 5 GB, links: 2}\n",
     "latency='5 GB'"),
    ("dimensions:\n  - {kind: Torus, size: 4, bandwidth: 1 GB/s, links: 2}\n", "kind='Torus'"),
    ("dimensions:\n  - {kind: Ring, size: 4, bandwidth: 1 GB/s, links: 2, speed: 3}\n",
     "unknown keys ['speed']"),
    ("topology: x\n", "unknown keys ['topology']"),
])
def test_malformed_yaml(tmp_path, text, message):
    path = _write(tmp_path, text, "bad.yaml")
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        load_topology(path)
    assert str(path) in str(err.value)


def test_dimension_and_topology_validation():
    with pytest.raises(ValueError, match="Dimension.num_links"):
        Dimension("Ring", 4, 1e9, 0.0, 0)
    with pytest.raises(ValueError, match="Dimension.latency"):
        Dimension("Ring", 4, 1e9, -1.0, 2)
    with pytest.raises(ValueError, match="Dimension.bandwidth"):
        Dimension("Ring", 4, float("inf"), 0.0, 2)
    with pytest.raises(ValueError, match="Topology.dimensions"):
        Topology(())
