"""Scale-out end to end: parallel runs, symmetry reduction, the seed's command lines."""

import numpy as np
import pytest
import xarray as xr

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.config import SystemConfig
from llmsim_nb.config.fields import ConfigWarning
from llmsim_nb.engines.hardware import make_engine
from llmsim_nb.engines.stack import ExecutionStack
from llmsim_nb.graph import GraphConverter, NodeType
from llmsim_nb.models import BatchShape, get_model, decoder_template
from llmsim_nb.network import Network, default_topology, load_topology
from llmsim_nb.parallel.layout import ParallelLayout
from llmsim_nb.workload import Trace

from .test_simulator import check_invariants, small_trace

MIXED = BatchShape.from_lists([128, 1, 1, 1, 64, 1, 1, 1, 300, 1, 1, 1],
                              [0, 100, 200, 300, 0, 50, 50, 50, 0, 900, 10, 10])


def schedules(batch, congestion=False, evicted=0.0, **system):
    """Makespan of the reduced and of the full graph of one iteration."""
    model = get_model("gpt3-6.7b")
    sys_cfg = SystemConfig(**system)
    layout = ParallelLayout.from_config(sys_cfg, model.num_layers, model.num_heads)
    stack = ExecutionStack(make_engine("npu-128x128"), decoder_template(model), layout)
    trace = stack.simulate(batch)
    network = Network(default_topology(sys_cfg.npu_num, sys_cfg.npu_group), congestion=congestion)
    out = []
    for full in (False, True):
        graph = GraphConverter(layout, stack.sharded, full_graph=full).build(trace, evicted, evicted)
        out.append((graph, network.run(graph)))
    return out


@pytest.mark.parametrize("congestion", [False, True])
@pytest.mark.parametrize("system", [
    dict(npu_num=4, parallel="tensor"),
    dict(npu_num=8, npu_group=2, parallel="hybrid"),
    dict(npu_num=4, npu_group=4, parallel="pipeline"),
    dict(npu_num=4, parallel="tensor", attention_placement="requests"),
    dict(npu_num=8, npu_group=2, parallel="hybrid", attention_placement="requests"),
])
def test_reduced_graph_gives_the_full_graphs_makespan(system, congestion):
    (reduced, r), (full, f) = schedules(MIXED, congestion=congestion, evicted=1e7, **system)
    assert len(reduced) <= len(full)
    assert r.makespan == pytest.approx(f.makespan, rel=1e-12)
    # Every device's busy time: a representative's equals each of its class's.
    for rep, members in reduced.classes.items():
        for d in members:
            assert f.device_busy[d] == pytest.approx(r.device_busy[rep], rel=1e-12)


def test_symmetric_ranks_collapse_to_one_per_stage():
    (reduced, _), (full, _) = schedules(MIXED, npu_num=8, npu_group=2, parallel="hybrid")
    assert reduced.classes == {0: (0, 1, 2, 3), 4: (4, 5, 6, 7)}
    comp = lambda g: sum(n.type is NodeType.COMP for n in g.nodes)
    assert comp(full) == 4 * comp(reduced)


def test_requests_without_attention_share_a_class():
    batch = BatchShape.from_lists([1] * 4, [1024] * 4)
    with pytest.warns(ConfigWarning, match="does not divide the 32 attention heads"):
        (reduced, _), _ = schedules(batch, npu_num=64, parallel="tensor")
    # 32 heads do not divide 64 ranks: auto placement is by request (and says so). Four ranks
    # hold one identical request each, the other 60 none: two classes.
    assert sorted(len(c) for c in reduced.classes.values()) == [4, 60]


def test_pipeline_overlaps_micro_batches():
    batch = BatchShape.from_lists([256] * 4, [0] * 4)
    (graph, sched), _ = schedules(batch, npu_num=4, npu_group=4, parallel="pipeline")
    stage_time = sched.device_busy[0] / 4          # one micro-batch on one stage
    serial = 4 * 4 * stage_time
    assert sched.makespan < 0.6 * serial
    assert sched.makespan >= (4 + 4 - 1) * stage_time * 0.95


def test_tensor_parallel_speeds_up_and_pays_for_collectives():
    trace = small_trace(12, max_prompt=200, rate=100.0)
    one = Simulator(SimConfig.from_flags(model_name="gpt3-6.7b"), trace).run()
    four = Simulator(SimConfig.from_flags(model_name="gpt3-6.7b", npu_num=4,
                                          parallel="tensor"), trace).run()
    check_invariants(four, trace)
    assert float(four.t_end[-1]) < float(one.t_end[-1])
    # Four devices are not four times faster: all-reduces and replicated norms cost.
    assert float(four.latency.sum()) > float(one.latency.sum()) / 4
    assert (four.latency >= four.compute_latency - 1e-12).all()
    assert four.sizes["device"] == 4 and "dim0" in four.link.values
    busy = four.device_busy_time.values
    np.testing.assert_allclose(busy, busy[0])


@pytest.mark.parametrize("flags", [
    dict(npu_num=4, npu_group=2, parallel="hybrid"),
    dict(npu_num=4, npu_group=4, parallel="pipeline", micro_batches=2),
    dict(npu_num=4, parallel="tensor", attention_placement="requests", congestion=True),
])
def test_parallel_runs_keep_every_invariant(flags):
    trace = small_trace(20, max_prompt=300, max_output=40, rate=200.0)
    ds = Simulator(SimConfig.from_flags(model_name="gpt3-6.7b", **flags), trace).run()
    check_invariants(ds, trace)


def test_eviction_on_many_devices_moves_kv_over_host_links():
    trace = Trace(arrival_at=np.zeros(24), num_prompt_tokens=np.full(24, 400),
                  num_output_tokens=np.full(24, 300), source="pressure")
    sim = Simulator(SimConfig.from_flags(model_name="gpt3-6.7b", npu_num=2, npu_group=2,
                                         parallel="pipeline", npu_mem=7.5), trace)
    ds = sim.run()
    check_invariants(ds, trace)
    assert int(ds.num_evicted.sum()) > 0
    assert float(ds.link_bytes.sel(link="host")) > 0


def test_step_dataset_has_a_gantt_of_the_iteration():
    sim = Simulator(SimConfig.from_flags(model_name="gpt3-6.7b", npu_num=4, npu_group=2),
                    small_trace(6))
    ds = sim.step()
    assert ds.sizes["node"] == len(sim.last_graph)
    assert float(ds.node_end_at.max()) == pytest.approx(float(ds.latency[0]))
    assert set(ds.node_type.values) >= {"COMP_NODE", "COMM_COLL_NODE", "COMM_SEND_NODE"}
    assert (ds.node_end_at >= ds.node_start_at).all()


def test_run_is_deterministic_with_networks():
    trace = small_trace(10)
    config = SimConfig.from_flags(model_name="gpt3-6.7b", npu_num=8, npu_group=2,
                                  congestion=True)
    a = Simulator(config, trace).run().drop_vars("wall_time")
    b = Simulator(config, trace).run().drop_vars("wall_time")
    xr.testing.assert_identical(a, b)


def test_seed_network_files_drive_the_run(shared_data):
    path = shared_data / "seed_configs" / "network" / "gpu_n4.json"
    trace = small_trace(8)
    by_name = Simulator(SimConfig.from_flags(model_name="gpt3-30b", npu_num=4,
                                             network="gpu_n4.json"), trace).run()
    by_path = Simulator(SimConfig.from_flags(model_name="gpt3-30b", npu_num=4,
                                             network=str(path)), trace).run()
    xr.testing.assert_allclose(by_name.latency, by_path.latency)
    assert load_topology(str(path)).num_devices == 4
    # gpu_n4's links have 100 us latency: every all-reduce pays for it.
    default = Simulator(SimConfig.from_flags(model_name="gpt3-30b", npu_num=4), trace).run()
    assert float(by_name.latency.sum()) > float(default.latency.sum())


@pytest.mark.parametrize("flags,message", [
    (dict(npu_num=3, attention_placement="heads"), "must divide the 32 attention heads"),
    (dict(npu_num=64, npu_group=64, parallel="pipeline"), "64 pipeline stages exceed"),
    (dict(npu_num=8, network="gpu_n4.json"), "has 4 devices but npu_num=8"),
    (dict(npu_num=2, npu_mem=4.0), "does not fit"),
])
def test_configs_that_cannot_run_are_refused(flags, message):
    with pytest.raises(ValueError, match=message):
        Simulator(SimConfig.from_flags(model_name="gpt3-6.7b", **flags), small_trace(2))


def test_collective_algorithm_is_selectable():
    trace = small_trace(6)
    lat = {alg: float(Simulator(SimConfig.from_flags(model_name="gpt3-6.7b", npu_num=4,
                                                     network="gpu_n4.json", collective=alg),
                                trace).run().latency.sum())
           for alg in ("direct", "ring", "halving_doubling")}
    # gpu_n4's links cost 100 us per step: a 4-way ring all-reduce takes 6 steps,
    # halving-doubling 4, direct 2.
    assert lat["direct"] < lat["halving_doubling"] < lat["ring"]
    with pytest.raises(ValueError, match="collective='tree'"):
        SimConfig.from_flags(collective="tree")
