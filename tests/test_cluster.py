"""A cluster of instances behind a router: one clock, routing, results.

Exact comparisons against single-instance runs (one instance behind any
router; N equal instances with round robin and a trace that splits evenly),
invariants over whole runs, stepping vs running, staleness, bad configs.
"""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.cli.main import main
from llmsim_nb.cluster import (Cluster, ClusterConfig, InstanceGroup, cluster_config_from_dict,
                               load_cluster_config)
from llmsim_nb.instance.instance import SimulationFinished
from llmsim_nb.results.dataset import ITERATION_VARS, summarize
from llmsim_nb.workload.shared_prefix import shared_prefix_trace
from llmsim_nb.workload.trace import Trace

GPT2 = dict(model_name="gpt2", hardware="a100-80gb")
REQUEST_VARS = ("arrival_at", "admitted_at", "first_token_at", "finished_at", "ttft", "tpot",
                "num_prompt_tokens", "num_output_tokens", "num_cached_tokens")


def _trace(n=24, seed=2, rate=400.0):
    rng = np.random.default_rng(seed)
    return Trace(np.cumsum(rng.exponential(1 / rate, n)), rng.integers(8, 200, n),
                 rng.integers(1, 40, n))


def _cluster(count=1, router="round_robin", **extra):
    group = InstanceGroup("a100", SimConfig.from_flags(**GPT2), count)
    return Cluster(ClusterConfig((group,), router=router, **extra))


def _same(a, b, names):
    for name in names:
        assert np.array_equal(a[name].values, b[name].values, equal_nan=True), name


@pytest.mark.parametrize("router", ["round_robin", "random", "least_outstanding", "least_kv",
                                    "prefix_aware"])
def test_one_instance_behind_any_router_is_the_single_instance_run(router):
    trace = _trace()
    alone = Simulator(SimConfig.from_flags(**GPT2), trace).run()
    cluster = _cluster(router=router)
    cluster.submit_trace(trace)
    ds = cluster.run()
    _same(ds, alone, ITERATION_VARS + REQUEST_VARS)
    assert (ds.request_instance.values == 0).all()
    assert ds.instance.values.tolist() == ["a100-0"]
    assert ds.instance_num_requests.values.tolist() == [len(trace)]


def test_equal_instances_with_round_robin_are_separate_runs_of_their_shares():
    trace = _trace(30)
    cluster = _cluster(3)
    cluster.submit_trace(trace)
    ds = cluster.run()
    for k in range(3):
        share = Trace(trace.arrival_at[k::3], trace.num_prompt_tokens[k::3],
                      trace.num_output_tokens[k::3])
        alone = Simulator(SimConfig.from_flags(**GPT2), share).run()
        mine = ds.request_instance.values == k
        assert mine.tolist() == [i % 3 == k for i in range(30)]
        for name in REQUEST_VARS:
            assert np.array_equal(ds[name].values[mine], alone[name].values, equal_nan=True)
        theirs = ds.iteration_instance.values == k
        assert np.array_equal(ds.t_end.values[theirs], alone.t_end.values)


def test_a_run_finishes_every_request_once_and_keeps_the_clocks_forward():
    trace = _trace(40, rate=2000.0)
    cluster = _cluster(2, router="least_outstanding")
    cluster.submit_trace(trace)
    ds = cluster.run()
    assert np.isfinite(ds.finished_at.values).all()
    assert ds.num_finished.values.sum() == len(trace)
    assert sorted(ds.instance_num_requests.values.tolist()) != [0, 40]   # both serve
    assert ds.num_generated_tokens.values.sum() == trace.num_output_tokens.sum()
    assert (np.diff(ds.t_start.values) >= 0).all()                       # start-time order
    for k in range(2):
        ends = ds.t_end.values[ds.iteration_instance.values == k]
        assert (np.diff(ends) > 0).all()                                  # each clock forward
    assert (ds.ttft.values >= 0).all() and (ds.first_token_at >= ds.arrival_at).all()
    s = summarize(ds)
    assert s["num_finished"] == len(trace)


def test_stepping_gives_the_run_and_steps_in_time_order():
    trace = _trace(20, rate=1500.0)
    ran = _cluster(2, router="least_outstanding")
    ran.submit_trace(trace)
    ds = ran.run()
    stepped = _cluster(2, router="least_outstanding")
    stepped.submit_trace(trace)
    starts = []
    while True:
        try:
            step = stepped.step()
        except SimulationFinished:
            break
        assert step.iteration_instance.values.tolist() == [stepped.names.index(
            step.attrs["instance"])]
        starts.append(float(step.t_start.values[0]))
    assert starts == sorted(starts)
    assert stepped.request_instance == ran.request_instance
    again = stepped.results()
    _same(again, ds, ITERATION_VARS + REQUEST_VARS)


def test_a_stale_router_sees_the_past():
    trace = _trace(16, rate=2000.0)
    blind = _cluster(2, router="least_outstanding", router_staleness=1e6)
    blind.submit_trace(trace)
    blind.run()
    # Every instance looks empty a million seconds ago: ties go to instance 0.
    assert blind.request_instance == [0] * 16
    live = _cluster(2, router="least_outstanding")
    live.submit_trace(trace)
    live.run()
    assert live.request_instance[:2] == [0, 1]


def test_the_random_router_repeats_under_its_seed():
    trace = _trace(30)
    runs = []
    for seed in (0, 0, 1):
        c = _cluster(3, router="random", seed=seed)
        c.submit_trace(trace)
        runs.append((c.request_instance, c.run().t_end.values))
    assert runs[0][0] == runs[1][0] and np.array_equal(runs[0][1], runs[1][1])
    assert runs[0][0] != runs[2][0]


def test_prefix_aware_routing_keeps_groups_together_and_hits_the_cache_more():
    trace = shared_prefix_trace(4, 8, 256, 32, 4, rate=200.0, rng=np.random.default_rng(0))
    base = SimConfig.from_flags(model_name="llama-3.1-8b", hardware="h100-sxm",
                                scheduling="vllm-v1")
    rates = {}
    for router in ("round_robin", "prefix_aware"):
        c = Cluster(ClusterConfig((InstanceGroup("h100", base, 2),), router=router,
                                  router_params={"load_cap": 4} if router == "prefix_aware"
                                  else {}))
        c.submit_trace(trace)
        ds = c.run()
        rates[router] = summarize(ds)["prefix_hit_rate"]
    assert rates["prefix_aware"] > rates["round_robin"]


def test_instances_may_differ():
    groups = (InstanceGroup("a100", SimConfig.from_flags(**GPT2), 1),
              InstanceGroup("h100", SimConfig.from_flags(model_name="gpt2",
                                                         hardware="h100-sxm"), 1))
    c = Cluster(ClusterConfig(groups))
    trace = _trace(10)
    c.submit_trace(trace)
    ds = c.run()
    assert ds.instance.values.tolist() == ["a100-0", "h100-0"]
    assert ds.instance_num_requests.values.tolist() == [5, 5]
    assert c.instances[1].attrs()["hardware"] == "h100-sxm"


def test_a_yaml_file_describes_the_cluster_and_the_cli_runs_it(tmp_path, capsys):
    path = tmp_path / "cluster.yaml"
    path.write_text("base: {model_name: gpt2, hardware: a100-80gb}\n"
                    "instances:\n  - {name: small, count: 2}\n"
                    "  - {name: big, count: 1, flags: {hardware: h100-sxm}}\n"
                    "router: least_outstanding\nrouter_staleness: 0.001\n")
    config = load_cluster_config(path)
    assert config.instance_names() == ["small-0", "small-1", "big-0"]
    assert config.groups[1].config.hardware == "h100-sxm"
    assert config.router_staleness == 0.001
    assert main(["cluster", "--config", str(path), "--num_requests", "12", "--rate", "50",
                 "--lengths", "fixed:32,4"]) == 0
    out = capsys.readouterr().out
    assert "cluster: 3 instances, router least_outstanding" in out
    assert "requests finished   12 / 12" in out
    assert "big-0" in out
    assert main(["cluster", "--config", str(path), "--num_requests", "4", "--router",
                 "round_robin", "--router_staleness", "0.5", "--lengths", "fixed:8,2"]) == 0
    assert "router round_robin (staleness 0.5 s)" in capsys.readouterr().out
    assert main(["cluster", "--config", str(path), "--router_staleness", "-1",
                 "--num_requests", "4"]) == 2
    assert "router_staleness=-1.0 must be a finite number" in capsys.readouterr().err


@pytest.mark.parametrize("doc, match", [
    ({"instances": []}, r"instances must be a non-empty list"),
    ({"instances": [{"name": "a", "count": 0}]}, r"instance group 'a': count=0 must be an "
                                                 r"integer >= 1"),
    ({"instances": [{"name": "a", "flags": {"npu_nun": 2}}]},
     r"instance group 'a': .*npu_nun.*did you mean 'npu_num'"),
    ({"instances": [{"name": "a"}, {"name": "a"}]}, r"\['a'\] appear more than once"),
    ({"instances": [{"name": "a", "size": 2}]}, r"unknown key 'size'"),
    ({"instances": [{"name": "a"}], "routr": "x"}, r"unknown key 'routr'"),
    ({"instances": [{"name": "a"}], "router_staleness": -1}, r"router_staleness=-1"),
])
def test_bad_cluster_descriptions_are_refused_before_anything_runs(doc, match):
    with pytest.raises(ValueError, match=match):
        cluster_config_from_dict(doc)


def test_an_unknown_router_and_an_instance_that_cannot_hold_its_model_are_refused():
    group = InstanceGroup("a100", SimConfig.from_flags(**GPT2), 1)
    with pytest.raises(ValueError, match=r"least_outstandin.*did you mean 'least_outstanding'"):
        Cluster(ClusterConfig((group,), router="least_outstandin"))
    tiny = InstanceGroup("tiny", SimConfig.from_flags(model_name="llama-3.1-70b",
                                                      hardware="rtx4090"), 1)
    with pytest.raises(ValueError, match=r"instance 'tiny-0': model 'llama-3.1-70b' does not "
                                         r"fit"):
        Cluster(ClusterConfig((group, tiny)))


def test_a_group_is_changed_by_name():
    from llmsim_nb.cluster.spec import replace_group
    base = ClusterConfig((InstanceGroup("a100", SimConfig.from_flags(**GPT2), 1),))
    h100 = SimConfig.from_flags(model_name="gpt2", hardware="h100-sxm")
    changed = replace_group(base, "a100", count=3, config=h100)
    assert changed.instance_names() == ["a100-0", "a100-1", "a100-2"]
    assert changed.groups[0].config.hardware == "h100-sxm" and base.groups[0].count == 1
    with pytest.raises(ValueError, match=r"no instance group 'b'; groups: \['a100'\]"):
        replace_group(base, "b", count=2)


def test_the_run_and_its_instances_hold_the_gaps_once():
    trace = _trace(30, rate=1500.0)
    cluster = _cluster(3, router="round_robin")
    cluster.submit_trace(trace)
    for _ in range(12):
        cluster.step()
    early = cluster.results()
    gaps = early.inter_token_latency.values
    assert not gaps.flags.writeable
    assert all(np.shares_memory(inst.token_times.shared_gaps(), gaps)
               for inst in cluster.instances if inst.token_times.num_gaps)
    before = gaps.copy()
    ds = cluster.run()  # the rest, into new chunks: the early results do not change
    assert np.array_equal(early.inter_token_latency.values, before)
    separate = [inst.results().inter_token_latency.values for inst in cluster.instances]
    assert sorted(ds.inter_token_latency.values.tolist()) == sorted(
        np.concatenate(separate).tolist())
    assert ds.inter_token_latency.size == int(
        (ds.num_output_tokens.values - 1).clip(min=0).sum())
