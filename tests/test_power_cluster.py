"""A cluster's energy: the sum of its instances', each idling when it runs nothing.

Exact comparisons against the instances' own results: a cluster run with
power on carries every iteration's energy and every request's, and
``summarize`` adds each instance's idle power over the time that instance
ran no iteration, up to the cluster's end.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from llmsim_nb import SimConfig
from llmsim_nb.cluster import Cluster, ClusterConfig, InstanceGroup
from llmsim_nb.results.dataset import summarize
from llmsim_nb.workload.trace import Trace

GPT2 = dict(model_name="gpt2", hardware="a100-80gb")


def _trace(n=20, seed=3, rate=300.0):
    rng = np.random.default_rng(seed)
    return Trace(np.cumsum(rng.exponential(1 / rate, n)), rng.integers(8, 200, n),
                 rng.integers(1, 30, n))


def _run(groups, **extra):
    cluster = Cluster(ClusterConfig(groups, **extra))
    cluster.submit_trace(_trace())
    return cluster, cluster.run()


def test_a_clusters_energy_is_its_instances_energy_with_their_idle_time():
    on = SimConfig.from_flags(**GPT2, power=True)
    cluster, ds = _run((InstanceGroup("a", on, 2),))
    parts = [inst.results() for inst in cluster.instances]
    duration = float(ds.t_end.values.max())
    expected = 0.0
    for part in parts:
        busy = float(part.latency.values.sum())
        expected += float(part.iteration_energy.values.sum()) \
            + part.attrs["power_idle_w"] * (duration - busy)
    summary = summarize(ds)
    assert summary["energy"] == pytest.approx(expected, rel=1e-12)
    # Every iteration's energy is in, every request's energy is its instance's.
    assert math.isclose(float(ds.iteration_energy.sum()),
                        sum(float(p.iteration_energy.sum()) for p in parts), rel_tol=1e-12)
    for k, part in enumerate(parts):
        mine = ds.request_instance.values == k
        assert np.array_equal(ds.request_energy.values[mine], part.request_energy.values)
    assert ds.instance_idle_power.attrs["units"] == "W"
    price = sum(p.attrs["price_per_hour"] for p in parts)
    assert summary["cost"] == pytest.approx(price * duration / 3600.0, rel=1e-12)


def test_a_cluster_with_an_instance_without_power_reports_no_energy():
    on = SimConfig.from_flags(**GPT2, power=True)
    off = SimConfig.from_flags(**GPT2)
    _, ds = _run((InstanceGroup("on", on, 1), InstanceGroup("off", off, 1)))
    assert "iteration_energy" not in ds
    assert math.isnan(summarize(ds)["energy"])


def test_a_disaggregated_requests_energy_counts_both_sides():
    flags = dict(model_name="llama-3.1-8b", hardware="h100-sxm", scheduling="vllm-v1",
                 power=True)
    config = SimConfig.from_flags(**flags)
    cluster, ds = _run((InstanceGroup("p", config, 1, "prefill"),
                        InstanceGroup("d", config, 1, "decode")), kv_link="ib-ndr400")
    prefill, decode = (inst.results() for inst in cluster.instances)
    total = float(prefill.request_energy.sum()) + float(decode.request_energy.sum())
    assert float(ds.request_energy.sum()) == pytest.approx(total, rel=1e-12)
    assert (ds.request_energy.values > 0).all()
