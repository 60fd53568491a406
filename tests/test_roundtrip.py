"""Results round-trip through netCDF with nothing lost, multi-device runs included."""

import numpy as np
import pytest
import xarray as xr

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.workload import Trace


def trace(n=10, seed=5):
    rng = np.random.default_rng(seed)
    return Trace(arrival_at=np.sort(rng.uniform(0, 0.02, n)),
                 num_prompt_tokens=rng.integers(1, 80, n),
                 num_output_tokens=rng.integers(0, 20, n), source="roundtrip")


@pytest.mark.parametrize("flags", [
    dict(npu_num=4, npu_group=2),                                    # hybrid TP x PP
    dict(npu_num=5, parallel="tensor", attention_placement="requests"),  # selective batching
    dict(npu_num=4, network="gpu_n4.json",
         congestion=True, collective="ring"),
    dict(npu_num=2, npu_group=2, npu_mem=0.27, block_size=1),        # pipeline, evicting
])
def test_multi_device_run_round_trips(tmp_path, flags):
    config = SimConfig.from_flags(model_name="gpt2", **flags)
    ds = Simulator(config, trace()).run()
    assert ds.sizes["device"] == config.system.npu_num
    assert ds.sizes["link"] >= 1 and ds.link.dtype.kind == "U"
    ds.to_netcdf(tmp_path / "run.nc")
    back = xr.load_dataset(tmp_path / "run.nc")
    xr.testing.assert_identical(back, ds)
    for name in ds.variables:
        assert back[name].attrs == ds[name].attrs, name
    assert back.attrs == ds.attrs
    assert SimConfig.from_json(back.attrs["config"]) == config


def test_step_dataset_with_graph_nodes_round_trips(tmp_path):
    sim = Simulator(SimConfig.from_flags(model_name="gpt2", npu_num=4, npu_group=2), trace())
    step = sim.step()
    assert step.sizes["node"] > 0 and step.node_type.dtype.kind == "U"
    step.to_netcdf(tmp_path / "step.nc")
    xr.testing.assert_identical(xr.load_dataset(tmp_path / "step.nc"), step)
