"""Sweeps over cluster shapes: equality with direct cluster runs, resume, refusals,
the JSON description a point travels as, Dask workers, the sweep YAML file."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from llmsim_nb import SimConfig
from llmsim_nb.cluster import (Cluster, ClusterConfig, InstanceGroup,
                               cluster_config_from_description)
from llmsim_nb.cluster import cluster as cluster_module
from llmsim_nb.results.dataset import summarize
from llmsim_nb.sweeps import cluster_sweep
from llmsim_nb.sweeps.execution import SUMMARY_UNITS, SweepWarning
from llmsim_nb.workload.generators import synthetic_trace

FLAGS = dict(model_name="llama-3.1-8b", hardware="h100-sxm", scheduling="vllm-v1")
FIGURES = [n for n in SUMMARY_UNITS if n != "wall_time"]


def pd(prefill=1, decode=1, **extra):
    config = SimConfig.from_flags(**FLAGS)
    return ClusterConfig((InstanceGroup("prefill", config, prefill, "prefill"),
                          InstanceGroup("decode", config, decode, "decode")), **extra)


def trace(n=20):
    return synthetic_trace(np.random.default_rng(0), n, 20.0)


def run(config, tr):
    cluster = Cluster(config)
    cluster.submit_trace(tr)
    return cluster.run()


def figures(ds):
    """The simulated figures (not host wall time, not where files went)."""
    out = ds[FIGURES]
    out.attrs = {}
    return out


def point_files(out):
    return sorted((Path(out) / "points").glob("*.nc"))


def test_each_point_is_the_cluster_run_directly(tmp_path):
    tr = trace()
    ds = cluster_sweep(pd(), tr, out_dir=tmp_path, serial=True, progress=False,
                       router=["round_robin", "least_outstanding"], decode_count=[1, 2])
    assert ds.sizes == {"router": 2, "decode_count": 2}
    assert ds.router.values.tolist() == ["round_robin", "least_outstanding"]
    assert ds.decode_count.values.tolist() == [1, 2]
    assert (ds.status == "ok").all() and not ds.resumed.any() and ds.attrs["num_failed"] == 0
    for name, (units, long_name) in SUMMARY_UNITS.items():
        assert ds[name].attrs == {"units": units, "long_name": long_name}
    assert ds.num_instances.values.tolist() == [[2, 3], [2, 3]]
    assert ds.num_instances.attrs["units"] == "1"
    assert cluster_config_from_description(ds.attrs["base_cluster"]) == pd()
    assert ds.attrs["trace_source"] == tr.source
    assert ds.attrs["llmsim_nb_version"] and json.loads(ds.attrs["dims"]) == list(ds.dims)
    for router in ("round_robin", "least_outstanding"):
        for decode in (1, 2):
            config = pd(decode=decode, router=router)
            direct = run(config, tr)
            point = ds.sel(router=router, decode_count=decode)
            expected = summarize(direct)
            for name in FIGURES:
                np.testing.assert_equal(float(point[name]), expected[name], err_msg=name)
            assert float(point.wall_time) > 0
            saved = xr.load_dataset(str(point.result_path.values))
            xr.testing.assert_identical(saved.drop_vars("wall_time"), direct)
            assert cluster_config_from_description(str(point.cluster.values)) == config
    assert int(ds.num_finished.min()) == 20
    xr.testing.assert_identical(xr.load_dataset(tmp_path / "sweep.nc"), ds)
    assert len(point_files(tmp_path)) == 4


def test_a_second_sweep_loads_the_points_instead_of_running_them(tmp_path, monkeypatch):
    runs = []
    real = cluster_module.Cluster.run

    def counted(self):
        runs.append(self.config.groups[1].count)
        return real(self)

    monkeypatch.setattr(cluster_module.Cluster, "run", counted)
    tr = trace()
    first = cluster_sweep(pd(), tr, out_dir=tmp_path, serial=True, progress=False,
                          decode_count=[1])
    assert runs == [1]
    stamps = {p: p.stat().st_mtime_ns for p in point_files(tmp_path)}
    full = cluster_sweep(pd(), tr, out_dir=tmp_path, serial=True, progress=False,
                         decode_count=[1, 2], slo_ttft=0.05)
    assert runs == [1, 2]                                  # only the new point ran
    assert full.resumed.values.tolist() == [True, False]
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    for name in FIGURES:
        if not name.startswith("goodput"):
            np.testing.assert_equal(float(full[name].sel(decode_count=1)),
                                    float(first[name].sel(decode_count=1)), err_msg=name)
    # A resumed point is summarized under the SLOs given now.
    assert np.isnan(float(first.goodput_fraction[0]))
    assert 0 <= float(full.goodput_fraction.sel(decode_count=1)) <= 1
    again = cluster_sweep(pd(), tr, out_dir=tmp_path, serial=True, progress=False,
                          decode_count=[1, 2])
    assert runs == [1, 2] and again.resumed.all()
    fresh = cluster_sweep(pd(), tr, out_dir=tmp_path, serial=True, progress=False,
                          resume=False, decode_count=[1, 2])
    assert runs == [1, 2, 1, 2] and not fresh.resumed.any()
    xr.testing.assert_identical(figures(fresh), figures(again))
    # Another trace is another point.
    cluster_sweep(pd(), trace(10), out_dir=tmp_path, serial=True, progress=False,
                  decode_count=[1])
    assert runs == [1, 2, 1, 2, 1] and len(point_files(tmp_path)) == 3


@pytest.mark.parametrize("axes, message", [
    (dict(decode_cnt=[1]), r"^cluster sweep axis 'decode_cnt' is not a cluster field, group "
     r"count or group flag; allowed: \['router', 'decode_router', 'router_staleness', "
     r"'kv_link', 'prefill_count', 'decode_count'\] or <group>_<flag> .*did you mean "
     r"'decode_count'"),
    (dict(rooter=["random"]), r"axis 'rooter' is not .*did you mean 'router'\?$"),
    (dict(decode_max_batchh=[8]), r"did you mean 'decode_max_batch'"),
    (dict(prefill_dataset=["a.tsv"]), r"axis 'prefill_dataset': every point serves the "
     r"sweep's trace"),
    (dict(decode_count=3), r"axis 'decode_count' must be a list of values, got 3"),
    (dict(decode_count=[1, 1.0]), r"axis 'decode_count' has the values 1 and 1.0"),
    (dict(decode_enable_prefix_caching=["on", True]), r"'decode_enable_prefix_caching' has "
     r"the values 'on' and True, which are the same setting once read"),
    (dict(decode_count=[0, 2]), r"^1 of 2 cluster sweep points are invalid, nothing was run: "
     r"\[decode_count=0\] instance group 'decode': count=0 must be an integer >= 1$"),
    (dict(router=["round_robin", "nope"]), r"1 of 2 .*\[router='nope'\] router='nope' is not "
     r"a registered router"),
    (dict(decode_scheduling=["vllm-v1", "orca"]), r"1 of 2 .*\[decode_scheduling='orca'\] "
     r"instance 'decode-0': prefill/decode disaggregation needs scheduling='vllm-v1'"),
    (dict(router_staleness=[0.0, -1.0]), r"\[router_staleness=-1.0\] router_staleness=-1.0 "
     r"must be a finite number"),
    (dict(kv_link=["nvlink4", "carrier-pigeon"]), r"\[kv_link='carrier-pigeon'\]"),
    (dict(decode_npu_num=["two"]), r"\[decode_npu_num='two'\] instance group 'decode': "),
    ({}, r"a cluster sweep needs at least one axis"),
])
def test_unknown_axes_and_invalid_points_are_refused_before_anything_runs(tmp_path, axes,
                                                                          message):
    with pytest.raises(ValueError, match=message) as err:
        cluster_sweep(pd(), trace(4), out_dir=tmp_path / "out", serial=True, progress=False,
                      **axes)
    assert len(str(err.value).splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_bad_bases_and_options_are_refused(tmp_path):
    kw = dict(out_dir=tmp_path, progress=False, decode_count=[1])
    with pytest.raises(ValueError, match="needs a ClusterConfig base, got SimConfig"):
        cluster_sweep(SimConfig(), trace(4), serial=True, **kw)
    with pytest.raises(ValueError, match="router is a callable"):
        cluster_sweep(pd(router=lambda request, states: 0), trace(4), serial=True, **kw)
    # A field no flag sets would be lost on the way to a worker.
    config = SimConfig.from_flags(**FLAGS)
    odd = dataclasses.replace(config, memory=dataclasses.replace(config.memory,
                                                                 activation_reserve=0.1))
    base = ClusterConfig((InstanceGroup("prefill", config, 1, "prefill"),
                          InstanceGroup("decode", odd, 1, "decode")))
    with pytest.raises(ValueError, match=r"the config of group\(s\) \['decode'\] sets fields "
                                         r"no llmsim run flag sets"):
        cluster_sweep(base, trace(4), serial=True, **kw)
    with pytest.raises(ValueError, match="workers sizes the LocalCluster"):
        cluster_sweep(pd(), trace(4), serial=True, workers=2, **kw)
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        cluster_sweep(pd(), trace(4), workers=0, **kw)
    with pytest.raises(ValueError, match="client='serial': give a distributed.Client"):
        cluster_sweep(pd(), trace(4), client="serial", **kw)
    with pytest.raises(ValueError, match="slo_ttft"):
        cluster_sweep(pd(), trace(4), serial=True, slo_ttft=-1, **kw)
    assert point_files(tmp_path) == []


def test_a_description_round_trips_exactly():
    h100 = SimConfig.from_flags(**FLAGS)
    tp2 = SimConfig.from_flags(**FLAGS, npu_num=2, max_batch=64, npu_mem=80.5, seed=3)
    configs = [
        pd(),
        ClusterConfig((InstanceGroup("p", tp2, 2, "prefill"),
                       InstanceGroup("d", h100, 3, "decode")),
                      router="prefix_aware", router_params={"load_cap": 4},
                      router_staleness=0.25, seed=7, decode_router="least_kv",
                      kv_link="nvlink4"),
        ClusterConfig((InstanceGroup("h100", h100, 4),
                       InstanceGroup("a100", SimConfig.from_flags(model_name="gpt2",
                                                                  hardware="a100-80gb"))),
                      router="least_outstanding"),
    ]
    for config in configs:
        description = config.to_dict()
        assert cluster_config_from_description(description) == config
        text = json.dumps(description, sort_keys=True)
        rebuilt = cluster_config_from_description(text)
        assert rebuilt == config and json.dumps(rebuilt.to_dict(), sort_keys=True) == text
    # Keys left out take their defaults; a wrong one is named.
    short = {"groups": [{"name": "a", "flags": {"model_name": "gpt2"}}]}
    assert cluster_config_from_description(short) == ClusterConfig(
        (InstanceGroup("a", SimConfig.from_flags(model_name="gpt2")),))
    for bad, message in [
        ("{", r"^cluster description is not valid JSON: "),
        ([1], r"must be a mapping with keys \['groups', "),
        ({"groups": []}, r"groups must be a non-empty list"),
        ({**short, "routr": "x"}, r"unknown key 'routr'; allowed: \['groups'"),
        ({"groups": [{"name": "a", "flags": {"npus": 2}}]},
         r"instance group 'a': unknown flag\(s\) \['npus'\]"),
        ({**short, "router_staleness": -1}, r"^cluster description: router_staleness=-1"),
        ({"groups": [{"name": "a", "cnt": 2}]}, r"groups\[0\]: unknown key 'cnt'"),
    ]:
        with pytest.raises(ValueError, match=message):
            cluster_config_from_description(bad)


def test_a_failing_point_is_recorded_and_the_others_run(tmp_path, monkeypatch):
    real = cluster_module.Cluster.run

    def run(self):
        if self.config.groups[1].count == 2:
            raise RuntimeError("out of luck\nsecond line")
        return real(self)

    monkeypatch.setattr(cluster_module.Cluster, "run", run)
    with pytest.warns(SweepWarning, match=r"1 of 2 sweep points failed .*see ds.error and "
                                          r"ds.cluster\): \[decode_count=2\] RuntimeError: "
                                          r"out of luck$"):
        ds = cluster_sweep(pd(), trace(), out_dir=tmp_path, serial=True, progress=False,
                           decode_count=[1, 2])
    assert ds.status.values.tolist() == ["ok", "failed"]
    assert str(ds.error.values[1]) == "RuntimeError: out of luck"
    assert np.isnan(float(ds.ttft_p50[1])) and np.isfinite(float(ds.ttft_p50[0]))
    assert ds.num_instances.values.tolist() == [2, 3] and ds.attrs["num_failed"] == 1
    assert len(point_files(tmp_path)) == 1
    xr.testing.assert_identical(xr.load_dataset(tmp_path / "sweep.nc"), ds)


def test_dask_workers_give_the_serial_figures(tmp_path):
    tr = trace()
    serial = cluster_sweep(pd(), tr, out_dir=tmp_path / "s", serial=True, progress=False,
                           decode_count=[1, 2], decode_max_batch=[0, 4])
    dask = cluster_sweep(pd(), tr, out_dir=tmp_path / "d", workers=2, progress=False,
                         decode_count=[1, 2], decode_max_batch=[0, 4])
    assert (dask.status == "ok").all()
    xr.testing.assert_identical(figures(dask), figures(serial))
    assert dask.cluster.values.tolist() == serial.cluster.values.tolist()
    # A batch of at most 4 on the decode side makes requests wait for a decode slot.
    assert (serial.tpot_p50.sel(decode_max_batch=4) != serial.tpot_p50.sel(
        decode_max_batch=0)).any()


def test_cli_sweep_runs_a_cluster_file(tmp_path):
    from llmsim_nb.workload import save_trace

    save_trace(trace(8), tmp_path / "t.tsv")
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(
        "cluster:\n"
        f"  base: {{model_name: llama-3.1-8b, hardware: h100-sxm, scheduling: vllm-v1, "
        f"dataset: {tmp_path / 't.tsv'}}}\n"
        "  instances:\n"
        "    - {name: prefill, count: 1, role: prefill}\n"
        "    - {name: decode, count: 1, role: decode}\n"
        "axes:\n  router: [round_robin, least_outstanding]\n  decode_count: [1, 2]\n"
        f"out_dir: {tmp_path / 'out'}\n")
    result = subprocess.run([sys.executable, "-m", "llmsim_nb.cli", "sweep", "--config",
                             str(cfg), "--serial"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("point") and "gen tok/s" in lines[0]
    assert lines[1].startswith("router=round_robin, decode_count=1")
    assert lines[4].startswith("router=least_outstanding, decode_count=2")
    assert "4 points, 0 failed" in lines[5]
    ds = xr.load_dataset(tmp_path / "out" / "sweep.nc")
    assert (ds.num_finished == 8).all() and ds.num_instances.values.tolist() == [[2, 3]] * 2
    # The file's errors name it; a cluster file takes no base and checks its axes.
    cfg.write_text(cfg.read_text().replace("decode_count:", "decode_cont:"))
    result = subprocess.run([sys.executable, "-m", "llmsim_nb.cli", "sweep", "--config",
                             str(cfg), "--serial"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert "axis 'decode_cont' is not a cluster field" in result.stderr
    assert "did you mean 'decode_count'" in result.stderr
    from llmsim_nb.sweeps.spec import read_sweep_yaml

    cfg.write_text("cluster:\n  instances: [{name: a}]\nbase: {npu_num: 2}\naxes: {a_count: [1]}\n")
    with pytest.raises(ValueError, match=r"a cluster sweep starts from 'cluster' and sweeps "
                                         r"its axes; 'base' does not apply"):
        read_sweep_yaml(cfg)
    cfg.write_text("cluster:\n  instances: [{name: a, cuont: 2}]\naxes: {a_count: [1]}\n")
    with pytest.raises(ValueError, match=r"sweep.yaml': cluster: instances\[0\]: unknown key "
                                         r"'cuont'"):
        read_sweep_yaml(cfg)
    cfg.write_text("cluster:\n  instances: [{name: a}]\n")
    with pytest.raises(ValueError, match="a cluster sweep needs axes"):
        read_sweep_yaml(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg.write_text("cluster:\n  instances: [{name: a}]\naxes: {a_count: [1, 2]}\n")
        assert read_sweep_yaml(cfg)["cluster"].groups[0].name == "a"
