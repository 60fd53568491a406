"""Design-space sweeps: shape, equality with single runs, resume, failures, CLI."""

import dataclasses
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from llmsim_nb import SimConfig, Simulator, summarize, sweep
from llmsim_nb.sweeps.sweep import SUMMARY_UNITS, SweepWarning
from llmsim_nb.workload import Trace

BASE = SimConfig.from_flags(model_name="gpt2")


def trace(n=12, seed=3, rate=200.0):
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1 / rate, n))
    return Trace(arrival_at=arrivals - arrivals[0], num_prompt_tokens=rng.integers(1, 96, n),
                 num_output_tokens=rng.integers(0, 24, n), source=f"test-{seed}")


def figures(ds):
    """The simulated figures (not host wall time, not where files went)."""
    out = ds[[n for n in SUMMARY_UNITS if n != "wall_time"]]
    out.attrs = {}
    return out


def point_files(out):
    return sorted((Path(out) / "points").glob("*.nc"))


def test_local_cluster_sweep_equals_single_runs(tmp_path):
    tr = trace()
    ds = sweep(BASE, tr, out_dir=tmp_path, n_workers=2, progress=False,
               npu_num=[1, 2], scheduling=["orca", "chunked"])
    assert ds.sizes == {"npu_num": 2, "scheduling": 2}
    assert list(ds.npu_num.values) == [1, 2]
    assert list(ds.scheduling.values) == ["orca", "chunked"]
    assert (ds.status == "ok").all() and not ds.resumed.any()
    assert ds.attrs["num_failed"] == 0
    for name, (units, _) in SUMMARY_UNITS.items():
        assert ds[name].attrs["units"] == units
    # Every point equals the same simulation run directly, figure for figure,
    # and its file holds that run's full Dataset.
    for npu_num in (1, 2):
        for policy in ("orca", "chunked"):
            config = SimConfig.from_flags(model_name="gpt2", npu_num=npu_num,
                                          scheduling=policy)
            direct = Simulator(config, tr).run()
            point = ds.sel(npu_num=npu_num, scheduling=policy)
            direct_summary = summarize(direct)
            for name in SUMMARY_UNITS:  # the figures a sweep keeps
                if name != "wall_time":
                    np.testing.assert_equal(float(point[name]), direct_summary[name],
                                            err_msg=name)
            saved = xr.load_dataset(str(point.result_path.values))
            xr.testing.assert_identical(saved.drop_vars("wall_time"),
                                        direct.drop_vars("wall_time"))
            assert SimConfig.from_json(str(point.config.values)) == config
    # Two devices halve the per-token work of gpt2: lower TPOT.
    assert (ds.tpot_p50.sel(npu_num=2) < ds.tpot_p50.sel(npu_num=1)).all()
    # The sweep Dataset is saved beside the points and round-trips.
    xr.testing.assert_identical(xr.load_dataset(tmp_path / "sweep.nc"), ds)
    assert len(point_files(tmp_path)) == 4


def test_serial_equals_dask_and_a_users_client_is_used_and_kept(tmp_path):
    from distributed import Client, LocalCluster

    tr = trace(8)
    serial = sweep(BASE, tr, client="serial", out_dir=tmp_path / "s", progress=False,
                   max_batch=[0, 2], block_size=[8, 32])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dask = sweep(BASE, tr, client=client, out_dir=tmp_path / "d", progress=False,
                     max_batch=[0, 2], block_size=[8, 32])
        assert client.status == "running"  # the sweep did not close the user's client
        assert client.run_on_scheduler(lambda: True)
    xr.testing.assert_identical(figures(serial), figures(dask))
    # A batch limit of 2 splits the burst into more, smaller iterations.
    assert (serial.num_iterations.sel(max_batch=2) > serial.num_iterations.sel(max_batch=0)).all()


def test_interrupted_sweep_resumes_where_it_stopped(tmp_path):
    tr = trace()
    # A first sweep covers half the points (as if it was interrupted)...
    first = sweep(BASE, tr, client="serial", out_dir=tmp_path, progress=False, npu_num=[1])
    assert len(point_files(tmp_path)) == 1
    # ...the full sweep loads that point and runs only the others.
    full = sweep(BASE, tr, client="serial", out_dir=tmp_path, progress=False, npu_num=[1, 2])
    assert list(full.resumed.values) == [True, False]
    xr.testing.assert_identical(figures(full.sel(npu_num=1)).drop_vars("npu_num"),
                                figures(first.sel(npu_num=1)).drop_vars("npu_num"))
    # A lost file is run again; resume=False runs everything.
    lost = Path(str(full.result_path.sel(npu_num=2).values))
    lost.unlink()
    again = sweep(BASE, tr, client="serial", out_dir=tmp_path, progress=False, npu_num=[1, 2])
    assert list(again.resumed.values) == [True, False] and lost.is_file()
    fresh = sweep(BASE, tr, client="serial", out_dir=tmp_path, progress=False,
                  resume=False, npu_num=[1, 2])
    assert not fresh.resumed.any()
    xr.testing.assert_identical(figures(fresh), figures(again))
    # A file cut short (a disk that filled up) is not trusted: the point reruns.
    lost.write_bytes(lost.read_bytes()[:100])
    cut = sweep(BASE, tr, client="serial", out_dir=tmp_path, progress=False, npu_num=[1, 2])
    assert list(cut.resumed.values) == [True, False]
    xr.testing.assert_identical(figures(cut), figures(fresh))


def test_invalid_points_are_reported_before_any_work(tmp_path):
    with pytest.raises(ValueError) as err:
        sweep(BASE, trace(), client="serial", out_dir=tmp_path, progress=False,
              npu_num=[2, 5, 7], attention_placement=["heads"])  # 1 would warn: no effect
    text = str(err.value)
    assert text.startswith("2 of 3 sweep points are invalid, nothing was run")
    assert "[npu_num=5, attention_placement='heads']" in text
    assert "[npu_num=7, attention_placement='heads']" in text
    assert point_files(tmp_path) == []
    # A model that does not fit is caught by building the point, not by running it.
    with pytest.raises(ValueError, match=r"\[model_name='gpt3-30b'\].*55\.\d\d GiB of weights"):
        sweep(BASE, trace(), client="serial", out_dir=tmp_path, progress=False,
              model_name=["gpt2", "gpt3-30b"])
    # So is a request longer than a point's KV cache.
    long = Trace(arrival_at=[0.0, 0.1], num_prompt_tokens=[10, 60_000],
                 num_output_tokens=[5, 1], source="long")
    with pytest.raises(ValueError, match=r"2 of 2 .*1 of 2 requests are longer than "
                       r"max_model_len=1024"):
        sweep(BASE, long, client="serial", out_dir=tmp_path, progress=False,
              npu_mem=[0.3, 8])
    served = dataclasses.replace(BASE, scheduler=dataclasses.replace(BASE.scheduler,
                                                                     max_model_len=70_000))
    with pytest.raises(ValueError, match=r"1 of 2 .*\[npu_mem=0\.3\].*could never run"):
        sweep(served, long, client="serial", out_dir=tmp_path, progress=False,
              npu_mem=[0.3, 8])
    assert point_files(tmp_path) == []


def test_a_crashing_point_is_reported_and_the_others_complete(tmp_path):
    # validate=False lets a bad point reach a worker, where it raises.
    with pytest.warns(SweepWarning, match=r"1 of 3 sweep points failed.*"
                      r"\[model_name='gpt3-30b'\] ValueError: model 'gpt3-30b' does not fit"):
        ds = sweep(BASE, trace(), out_dir=tmp_path, n_workers=2, progress=False,
                   validate=False, model_name=["gpt2", "gpt3-30b", "opt-125m"])
    assert list(ds.status.values) == ["ok", "failed", "ok"]
    bad = ds.sel(model_name="gpt3-30b")
    assert "does not fit" in str(bad.error.values)
    assert SimConfig.from_json(str(bad.config.values)).model == "gpt3-30b"
    assert np.isnan(float(bad.ttft_p50)) and str(bad.result_path.values) == ""
    assert int(ds.num_finished.sel(model_name="opt-125m")) == 12
    assert ds.attrs["num_failed"] == 1 and len(point_files(tmp_path)) == 2


def test_points_list_and_trace_axis(tmp_path):
    slow, fast = trace(rate=20.0), trace(rate=2000.0)
    ds = sweep(BASE, {"slow": slow, "fast": fast}, client="serial", out_dir=tmp_path,
               progress=False, npu_num=[1, 2])
    assert ds.sizes == {"npu_num": 2, "trace": 2}
    assert list(ds.trace.values) == ["slow", "fast"]
    # Faster arrivals queue more: higher TTFT at every device count.
    assert (ds.ttft_mean.sel(trace="fast") > ds.ttft_mean.sel(trace="slow")).all()
    pts = sweep(BASE, trace(), client="serial", out_dir=tmp_path, progress=False,
                points=[{"npu_num": 1}, {"npu_num": 4, "npu_group": 2},
                        {"npu_num": 2, "parallel": "pipeline"}])
    assert pts.sizes == {"point": 3}
    assert list(pts.npu_num.values) == [1, 4, 2]
    assert list(pts.npu_group.values) == [1, 2, 1]
    assert list(pts.parallel.values) == ["hybrid", "hybrid", "pipeline"]
    assert (pts.status == "ok").all()


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "llmsim_nb.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_cli_sweep(tmp_path):
    tr = tmp_path / "t.tsv"
    from llmsim_nb.workload import save_trace
    save_trace(trace(6), tr)
    cfg = tmp_path / "sweep.yaml"
    cfg.write_text(f"base:\n  model_name: gpt2\n  dataset: {tr}\naxes:\n  npu_num: [1, 2]\n"
                   f"out_dir: {tmp_path / 'out'}\n")
    result = run_cli("sweep", "--config", str(cfg), "--serial")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("point") and "gen tok/s" in lines[0]
    assert lines[1].startswith("npu_num=1") and lines[2].startswith("npu_num=2")
    assert "2 points, 0 failed" in lines[3]
    ds = xr.load_dataset(tmp_path / "out" / "sweep.nc")
    assert (ds.num_finished == 6).all()
    # A point that crashes: exit 1, the point named on stderr, the others done.
    cfg.write_text(f"base:\n  model_name: gpt2\n  dataset: {tr}\nvalidate: false\n"
                   f"axes:\n  model_name: [gpt2, gpt3-30b]\nout_dir: {tmp_path / 'out'}\n")
    result = run_cli("sweep", "--config", str(cfg), "--serial", "--quiet")
    assert result.returncode == 1
    assert result.stderr.strip() == ("llmsim: point failed [model_name=gpt3-30b]: "
                                     + result.stderr.split("]: ", 1)[1].strip())
    assert "does not fit" in result.stderr and "Traceback" not in result.stderr


def test_sweep_warning_lists_nothing_when_all_ok(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", SweepWarning)
        sweep(BASE, trace(4), client="serial", out_dir=tmp_path, progress=False, seed=[0])
