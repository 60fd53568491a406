"""Graph execution: dependencies, compute units, overlap, pipelines, congestion."""

import numpy as np
import pytest

from llmsim_nb.graph.nodes import CollectiveType as C
from llmsim_nb.graph.nodes import ExecutionGraph
from llmsim_nb.graph.nodes import NodeType as T
from llmsim_nb.network import (Dimension, GraphSchedule, Network, Topology, collective_time,
                               default_topology)

BW = 10e9


def fc(p=4, latency=0.0):
    return Topology((Dimension("FullyConnected", p, BW, latency, p - 1),))


def both_modes(topology, **kw):
    return [Network(topology, congestion=False, **kw), Network(topology, congestion=True, **kw)]


def test_empty_graph():
    for net in both_modes(fc()):
        s = net.run(ExecutionGraph())
        assert isinstance(s, GraphSchedule)
        assert s.makespan == 0.0 and len(s.start_at) == 0 and s.link_bytes == {}


def test_chain_on_one_device_sums_durations():
    g = ExecutionGraph(num_devices=4)
    prev = []
    for d in (1.0, 2.0, 0.5, 0.25):
        prev = [g.add(T.COMP, "c", 0, deps=prev, duration=d)]
    for net in both_modes(fc()):
        s = net.run(g)
        assert s.makespan == pytest.approx(3.75)
        assert list(s.start_at) == pytest.approx([0, 1, 3, 3.5])
        assert s.device_busy == {0: pytest.approx(3.75)}


def test_independent_comp_serializes_on_one_device_overlaps_on_two():
    same = ExecutionGraph(num_devices=4)
    same.add(T.COMP, "a", 0, duration=1.0)
    same.add(T.COMP, "b", 0, duration=2.0)
    s = Network(fc()).run(same)
    assert s.makespan == pytest.approx(3.0)
    assert list(s.start_at) == [0.0, 1.0]        # tie broken by lower id
    apart = ExecutionGraph(num_devices=4)
    apart.add(T.COMP, "a", 0, duration=1.0)
    apart.add(T.COMP, "b", 1, duration=2.0)
    assert Network(fc()).run(apart).makespan == pytest.approx(2.0)


def test_ready_order_decides_not_id():
    g = ExecutionGraph(num_devices=4)
    a = g.add(T.COMP, "a", 1, duration=1.0)
    g.add(T.COMP, "late", 0, deps=[a], duration=1.0)   # ready at 1
    g.add(T.COMP, "long", 0, duration=5.0)             # ready at 0
    s = Network(fc()).run(g)
    assert s.start_at[2] == 0.0 and s.start_at[1] == 5.0


def test_compute_overlaps_communication():
    g = ExecutionGraph(num_devices=4)
    size = 1e9                                           # 0.1 s at 10 GB/s
    snd = g.add(T.COMM_SEND, "s", 0, size=size, peer=1)
    g.add(T.COMM_RECV, "r", 1, deps=[snd], size=size, peer=0)
    g.add(T.COMP, "c", 0, duration=0.1)
    ld = g.add(T.MEM_LOAD, "kv", 0, size=0.0)
    for net in both_modes(fc()):
        s = net.run(g)
        assert s.makespan == pytest.approx(0.1)
        assert s.end_at[1] == pytest.approx(s.end_at[0])  # RECV ends with its SEND
        assert s.end_at[ld] == pytest.approx(1e-6)


def test_send_time_includes_latency_and_bottleneck():
    topo = Topology((Dimension("Ring", 4, BW, 1e-6, 2), Dimension("FullyConnected", 2, 2e9, 5e-6, 1)))
    g = ExecutionGraph(num_devices=8)
    g.add(T.COMM_SEND, "s", 0, size=1e6, peer=6)       # 2 ring hops + 1 mesh hop
    s = Network(topo).run(g)
    assert s.makespan == pytest.approx(2e-6 + 5e-6 + 1e6 / 2e9)
    assert s.link_bytes == {"dim0": pytest.approx(2e6), "dim1": pytest.approx(1e6)}


def _pipeline(stages, mbs, stage_time, size):
    g = ExecutionGraph(num_devices=stages)
    for m in range(mbs):
        dep = []
        for s in range(stages):
            if s > 0:
                snd = g.add(T.COMM_SEND, f"s{m}.{s}", s - 1, deps=dep, size=size, peer=s)
                dep = [g.add(T.COMM_RECV, f"r{m}.{s}", s, deps=[snd], size=size, peer=s - 1)]
            dep = [g.add(T.COMP, f"c{m}.{s}", s, deps=dep, duration=stage_time, stage=s,
                         micro_batch=m)]
    return g


def test_pipeline_closed_form_with_free_transfers():
    stages, mbs, t = 4, 4, 1e-3
    g = _pipeline(stages, mbs, t, size=0.0)
    for net in both_modes(fc(4)):
        s = net.run(g)
        assert s.makespan == pytest.approx((stages + mbs - 1) * t)
        assert s.makespan < stages * mbs * t


def test_pipeline_with_transfers():
    stages, mbs, t, size = 4, 4, 1e-3, 1e6
    hop = size / BW
    s = Network(fc(4)).run(_pipeline(stages, mbs, t, size))
    # the critical path crosses 3 transfers; compute dominates, so each costs once
    assert s.makespan == pytest.approx((stages + mbs - 1) * t + (stages - 1) * hop)


def test_collective_node_duration_equals_collective_time():
    topo = default_topology(8, 2)
    g = ExecutionGraph(num_devices=8)
    c = [g.add(T.COMP, "c", d, duration=1e-3) for d in range(4)]
    ar = g.add(T.COMM_COLL, "ar", 0, deps=c, size=8e6, collective=C.ALL_REDUCE,
               group=(0, 1, 2, 3))
    for net in both_modes(topo):
        s = net.run(g)
        assert s.end_at[ar] - s.start_at[ar] == pytest.approx(
            collective_time(topo, C.ALL_REDUCE, 8e6, range(4)))
        assert s.link_bytes["dim0"] == pytest.approx(2 * 3 / 4 * 8e6 * 4)


def test_collective_errors_name_the_node():
    g = ExecutionGraph(num_devices=8)
    g.add(T.COMM_COLL, "bad", 0, size=1.0, collective=C.ALL_REDUCE, group=(0, 1, 4))
    with pytest.raises(ValueError, match="'bad'.*not aligned"):
        Network(default_topology(8, 2)).run(g)


def test_memory_nodes():
    g = ExecutionGraph(num_devices=2)
    g.add(T.MEM_LOAD, "load", 0, size=512e6)
    g.add(T.MEM_STORE, "store", 0, size=512e6)
    g.add(T.MEM_LOAD, "load2", 0, size=512e6)
    expect = 512e6 / 512e9 + 1e-6
    s = Network(fc(2)).run(g)
    assert list(s.durations) == pytest.approx([expect] * 3)
    assert s.link_bytes == {"host": pytest.approx(3 * 512e6)}
    # congestion: the two loads share the load direction, the store has its own
    s = Network(fc(2), congestion=True).run(g)
    assert s.durations[1] == pytest.approx(expect)
    assert s.durations[0] == pytest.approx(1e-6 + 2 * 512e6 / 512e9)
    custom = Network(fc(2), host_bandwidth=1e9, host_latency=0.0).run(g)
    assert custom.durations[0] == pytest.approx(0.512)


def _two_sends(pairs, size=1e9):
    g = ExecutionGraph(num_devices=4)
    for src, dst in pairs:
        g.add(T.COMM_SEND, "s", src, size=size, peer=dst)
    return g


def test_congestion_shared_link_halves_bandwidth():
    t1 = 1e9 / BW
    shared = _two_sends([(0, 1), (0, 1)])
    disjoint = _two_sends([(0, 1), (2, 3)])
    assert Network(fc()).run(shared).makespan == pytest.approx(t1)
    assert Network(fc(), congestion=True).run(shared).makespan == pytest.approx(2 * t1)
    assert Network(fc(), congestion=True).run(disjoint).makespan == pytest.approx(t1)
    assert Network(fc(), congestion=True).run(_two_sends([(0, 1)])).makespan == pytest.approx(t1)


def test_congestion_partial_overlap_on_a_ring():
    topo = Topology((Dimension("Ring", 8, BW, 0.0, 2),))
    g = ExecutionGraph(num_devices=8)
    g.add(T.COMM_SEND, "long", 0, size=1e9, peer=2)   # links 0->1, 1->2
    g.add(T.COMM_SEND, "short", 1, size=0.5e9, peer=2)  # link 1->2
    s = Network(topo, congestion=True).run(g)
    # both at BW/2 until the short one ends at 0.1 s (0.5 GB moved); the long one
    # has 0.5 GB left at full speed: 0.05 s more
    assert s.end_at[1] == pytest.approx(0.1)
    assert s.end_at[0] == pytest.approx(0.15)


def test_congestion_between_collectives():
    topo = default_topology(8, 2)   # rows 0-3 and 4-7 of dim 0
    t = collective_time(topo, C.ALL_REDUCE, 8e6, range(4))

    def graph(groups):
        g = ExecutionGraph(num_devices=8)
        for grp in groups:
            g.add(T.COMM_COLL, "ar", grp[0], size=8e6, collective=C.ALL_REDUCE, group=grp)
        return g

    same = graph([(0, 1, 2, 3), (0, 1, 2, 3)])
    apart = graph([(0, 1, 2, 3), (4, 5, 6, 7)])
    assert Network(topo).run(same).makespan == pytest.approx(t)
    assert Network(topo, congestion=True).run(same).makespan == pytest.approx(2 * t)
    assert Network(topo, congestion=True).run(apart).makespan == pytest.approx(t)


def test_send_and_collective_share_a_row():
    topo = fc(4)
    t_ar = collective_time(topo, C.ALL_REDUCE, 8e9, range(4))
    g = ExecutionGraph(num_devices=4)
    g.add(T.COMM_COLL, "ar", 0, size=8e9, collective=C.ALL_REDUCE, group=(0, 1, 2, 3))
    g.add(T.COMM_SEND, "s", 0, size=1e9, peer=1)
    s = Network(topo, congestion=True).run(g)
    assert s.end_at[0] > t_ar and s.end_at[1] > 1e9 / BW


def test_reduced_graph_matches_full_graph():
    topo = default_topology(8, 2)   # 2 stages of TP 4

    def build(reduced):
        g = ExecutionGraph(num_devices=8)
        ranks = {0: [0] if reduced else [0, 1, 2, 3], 1: [4] if reduced else [4, 5, 6, 7]}
        prev = {}
        for stage in (0, 1):
            deps = {}
            for r in ranks[stage]:
                if stage:
                    snd = g.add(T.COMM_SEND, "s", r - 4, deps=[prev[r - 4]], size=4e6, peer=r)
                    deps[r] = [g.add(T.COMM_RECV, "r", r, deps=[snd], size=4e6, peer=r - 4)]
                else:
                    deps[r] = []
            c = [g.add(T.COMP, "c", r, deps=deps[r], duration=1e-3) for r in ranks[stage]]
            grp = tuple(range(4 * stage, 4 * stage + 4))
            ar = g.add(T.COMM_COLL, "ar", grp[0], deps=c, size=4e6, collective=C.ALL_REDUCE,
                       group=grp)
            for r in ranks[stage]:
                prev[r] = g.add(T.COMP, "c2", r, deps=[ar], duration=1e-3)
        if reduced:
            g.multiplicity = {0: 4, 4: 4}
        return g

    for congestion in (False, True):
        net = Network(topo, congestion=congestion)
        full, red = net.run(build(False)), net.run(build(True))
        assert red.makespan == pytest.approx(full.makespan)
        assert red.link_bytes == pytest.approx(full.link_bytes)


def test_deterministic_and_read_only():
    g = _pipeline(4, 6, 1e-3, 1e6)
    a = Network(fc(4), congestion=True).run(g)
    b = Network(fc(4), congestion=True).run(g)
    assert np.array_equal(a.start_at, b.start_at) and np.array_equal(a.end_at, b.end_at)
    with pytest.raises(ValueError):
        a.end_at[0] = 1.0


def test_invalid_inputs():
    g = ExecutionGraph(num_devices=8)
    g.add(T.COMP, "c", 7, duration=1.0)
    with pytest.raises(ValueError, match="device 7, outside"):
        Network(fc(4)).run(g)
    g = ExecutionGraph(num_devices=4)
    g.add(T.COMP, "c", 0, duration=-1.0)
    with pytest.raises(ValueError, match="duration"):
        Network(fc(4)).run(g)
    g = ExecutionGraph(num_devices=4)
    g.add(T.COMM_SEND, "s", 0, size=1.0, peer=9)
    with pytest.raises(ValueError, match="peer=9"):
        Network(fc(4)).run(g)
    with pytest.raises(ValueError, match="host_bandwidth"):
        Network(fc(4), host_bandwidth=0)
    with pytest.raises(ValueError, match="congestion"):
        Network(fc(4), congestion="yes")


def test_network_from_preset_name():
    net = Network("gpu_n4.json")
    g = ExecutionGraph(num_devices=4)
    g.add(T.COMM_SEND, "s", 0, size=64e6, peer=3)
    assert net.run(g).makespan == pytest.approx(100e-6 + 64e6 / 64e9)
