"""Sweeps keep every figure of summarize, sweep the vllm-v1 flags, and pass SLOs on.

The shared-prefix trace (2 system prompts of 64 tokens, 4 requests each, a
16-token question each, 16-token blocks) has, by hand, the prefix hit rate
``6 * 64 / (8 * 80) = 0.6``: every request looks up its 80 prompt tokens and
all but the first of each group find the 4 system-prompt blocks cached.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from llmsim_nb import SimConfig, Simulator, summarize, sweep
from llmsim_nb.results.metrics import METRIC_UNITS
from llmsim_nb.sweeps.sweep import SUMMARY_UNITS
from llmsim_nb.workload.shared_prefix import shared_prefix_trace

V1 = SimConfig.from_flags(model_name="gpt2", scheduling="vllm-v1", block_size=16)


def shared(groups=2, per_group=4, system=64, question=16, output=4):
    return shared_prefix_trace(groups, per_group, system, question, output, rate=200.0,
                               rng=np.random.default_rng(0))


def point_files(out):
    return sorted((Path(out) / "points").glob("*.nc"))


def same(a, b):
    return a == b or (math.isnan(a) and math.isnan(b))


def test_summary_units_are_every_summarize_key_plus_wall_time():
    assert list(SUMMARY_UNITS) == [*METRIC_UNITS, "wall_time"]
    for key, (units, long_name) in METRIC_UNITS.items():
        assert SUMMARY_UNITS[key] == (units, long_name)
    for key in ("prefix_hit_rate", "goodput", "itl_p99", "num_host_cached_tokens",
                "host_stored_bytes", "host_loaded_bytes"):
        assert key in SUMMARY_UNITS, key
    assert SUMMARY_UNITS["wall_time"][0] == "s"


def test_sweeping_prefix_caching_on_vllm_v1_gives_a_hit_rate_per_point(tmp_path):
    tr = shared()
    ds = sweep(V1, tr, client="serial", out_dir=tmp_path, progress=False,
               enable_prefix_caching=["on", "off"])
    assert ds.sizes == {"enable_prefix_caching": 2}
    assert list(ds.enable_prefix_caching.values) == ["on", "off"]
    assert (ds.status == "ok").all()
    assert float(ds.prefix_hit_rate.sel(enable_prefix_caching="on")) == 0.6
    assert math.isnan(float(ds.prefix_hit_rate.sel(enable_prefix_caching="off")))  # no lookups
    assert list(ds.num_cached_tokens.values) == [6 * 64, 0]
    for name, (units, long_name) in SUMMARY_UNITS.items():
        assert ds[name].attrs == {"units": units, "long_name": long_name}, name
    # Each point is the run made directly, figure for figure (the new ones included).
    for value, flag in (("on", True), ("off", False)):
        config = SimConfig.from_flags(**{**V1.to_flags(), "enable_prefix_caching": flag})
        direct = summarize(Simulator(config, tr).run())
        point = ds.sel(enable_prefix_caching=value)
        for name in METRIC_UNITS:
            assert same(float(point[name]), float(direct[name])), (value, name)
    # Prompt tokens computed: the cached ones are not (640 - 384 = 256 of 8 * 80).
    computed = (ds.prompt_throughput * ds.simulated_time).values
    np.testing.assert_allclose(computed, [8 * 80 - 6 * 64, 8 * 80], rtol=1e-12)


def test_scheduling_axis_with_vllm_v1(tmp_path):
    base = SimConfig.from_flags(model_name="gpt2", block_size=16)
    ds = sweep(base, shared(), client="serial", out_dir=tmp_path, progress=False,
               scheduling=["chunked", "vllm-v1"])
    assert (ds.status == "ok").all()
    assert math.isnan(float(ds.prefix_hit_rate.sel(scheduling="chunked")))
    assert float(ds.prefix_hit_rate.sel(scheduling="vllm-v1")) == 0.6


def test_host_tier_axis(tmp_path):
    # 64 device blocks for 4 groups of 6 requests with 256-token system prompts: cached
    # blocks the device evicts are copied to the host tier and hit there.
    tr = shared(groups=4, per_group=6, system=256, question=32)
    base = SimConfig.from_flags(**{**V1.to_flags(), "num_kv_blocks": 64})
    ds = sweep(base, tr, client="serial", out_dir=tmp_path, progress=False,
               kv_offload_gib=[0.0, 1.0])
    off, on = ds.sel(kv_offload_gib=0.0), ds.sel(kv_offload_gib=1.0)
    assert float(off.host_loaded_bytes) == float(off.host_stored_bytes) == 0.0
    assert int(off.num_host_cached_tokens) == 0
    assert float(on.host_loaded_bytes) > 0 and int(on.num_host_cached_tokens) > 0
    assert float(on.prefix_hit_rate) > float(off.prefix_hit_rate)


def test_slos_reach_every_point_and_a_resume_resummarizes(tmp_path):
    tr = shared()
    axis = {"enable_prefix_caching": ["on", "off"]}
    plain = sweep(V1, tr, client="serial", out_dir=tmp_path, progress=False, **axis)
    assert np.isnan(plain.goodput.values).all() and np.isnan(plain.goodput_fraction).all()
    assert json.loads(plain.attrs["slos"]) == {"slo_ttft": None, "slo_tpot": None}
    # An SLO at the median TTFT of the uncached point: some requests meet it, not all.
    slos = {"slo_ttft": float(plain.ttft_p50.sel(enable_prefix_caching="off")),
            "slo_tpot": 1.0}
    # The same points under SLOs: loaded from the files (not run again), summarized anew.
    slo = sweep(V1, tr, client="serial", out_dir=tmp_path, progress=False, **slos, **axis)
    assert slo.resumed.all()
    assert json.loads(slo.attrs["slos"]) == slos
    for value, flag in (("on", True), ("off", False)):
        config = SimConfig.from_flags(**{**V1.to_flags(), "enable_prefix_caching": flag})
        direct = summarize(Simulator(config, tr).run(), **slos)
        point = slo.sel(enable_prefix_caching=value)
        for name in ("goodput", "goodput_fraction", "request_throughput"):
            assert float(point[name]) == direct[name], (value, name)
    assert 0 < float(slo.goodput_fraction.sel(enable_prefix_caching="off")) < 1
    # Cached prefixes cut TTFT: at least as many requests meet the SLO.
    assert float(slo.goodput_fraction.sel(enable_prefix_caching="on")) >= \
        float(slo.goodput_fraction.sel(enable_prefix_caching="off"))
    # Everything but the goodput figures is the same as without SLOs.
    for name in set(METRIC_UNITS) - {"goodput", "goodput_fraction"}:
        np.testing.assert_array_equal(slo[name].values, plain[name].values, err_msg=name)


@pytest.mark.parametrize("name", ["slo_ttft", "slo_tpot"])
@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, "1", True])
def test_bad_slos_are_refused_before_any_run(tmp_path, name, value):
    with pytest.raises(ValueError, match=rf"^{name} must be a finite number of seconds > 0 "
                                         rf"or None, got "):
        sweep(V1, shared(), client="serial", out_dir=tmp_path, progress=False,
              max_batch=[0], **{name: value})
    assert point_files(tmp_path) == []
