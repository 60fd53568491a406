"""The link-model seam of graph execution: one event loop, two ways to share links."""

import random

import numpy as np
import pytest

from llmsim_nb.graph.nodes import CollectiveType as C
from llmsim_nb.graph.nodes import ExecutionGraph
from llmsim_nb.graph.nodes import NodeType as T
from llmsim_nb.network import (Dimension, FairShareLinks, LinkModel, Network, Topology,
                               UnloadedLinks, default_topology)
from llmsim_nb.network.link_model import STAGE_END

BW = 10e9


def fc(p=4, latency=0.0):
    return Topology((Dimension("FullyConnected", p, BW, latency, p - 1),))


def test_network_picks_the_link_model_from_congestion():
    assert Network(fc()).link_model is UnloadedLinks
    assert Network(fc(), congestion=True).link_model is FairShareLinks
    assert not UnloadedLinks.congestion and FairShareLinks.congestion
    net = Network(fc())
    net.congestion = True             # read at every run, as before
    assert net.link_model is FairShareLinks
    with pytest.raises(TypeError):
        LinkModel(net, {}, [])        # abstract


def _sequential_graph():
    """Every transfer runs alone: each node depends on the one before."""
    g = ExecutionGraph(num_devices=8)
    prev = [g.add(T.COMP, "c0", 0, duration=1e-3)]
    prev = [g.add(T.COMM_SEND, "s", 0, deps=prev, size=3e6, peer=5)]     # two dimensions
    prev = [g.add(T.COMM_RECV, "r", 5, deps=prev, size=3e6, peer=0)]
    prev = [g.add(T.COMP, "c1", 5, deps=prev, duration=2e-4)]
    prev = [g.add(T.COMM_COLL, "ar", 4, deps=prev, size=8e6, collective=C.ALL_REDUCE,
                  group=tuple(range(8)))]                                  # two-dim phases
    prev = [g.add(T.MEM_LOAD, "ld", 4, deps=prev, size=5e6)]
    prev = [g.add(T.MEM_STORE, "st", 4, deps=prev, size=5e6)]
    g.add(T.COMM_COLL, "ag", 0, deps=prev, size=1e6, collective=C.ALL_GATHER, group=(0, 1, 2, 3))
    return g


def test_models_agree_when_no_transfers_overlap():
    topo = default_topology(8, 2)
    g = _sequential_graph()
    a = Network(topo).run(g)
    b = Network(topo, congestion=True).run(g)
    assert not a.congestion and b.congestion
    # Same schedule; only the order of the additions differs (the fair-share
    # model adds latency and transfer time to the clock one after the other).
    assert b.start_at == pytest.approx(a.start_at, rel=1e-12, abs=0)
    assert b.end_at == pytest.approx(a.end_at, rel=1e-12, abs=0)
    assert a.link_bytes == b.link_bytes and a.device_busy == b.device_busy


def test_two_concurrent_flows_on_one_link_get_half_the_bandwidth_each():
    g = ExecutionGraph(num_devices=4)
    g.add(T.COMM_SEND, "a", 0, size=1e9, peer=1)
    g.add(T.COMM_SEND, "b", 0, size=1e9, peer=1)
    s = Network(fc(), congestion=True).run(g)
    # both share the 0->1 link from t = 0: 1e9 B at 10e9 / 2 B/s = 0.2 s
    assert list(s.end_at) == [0.2, 0.2]
    assert list(Network(fc()).run(g).end_at) == [0.1, 0.1]


def test_fair_share_rates_follow_flows_starting_and_ending():
    g = ExecutionGraph(num_devices=4)
    g.add(T.COMM_SEND, "long", 0, size=1.5e9, peer=1)
    c = g.add(T.COMP, "c", 2, duration=0.05)
    g.add(T.COMM_SEND, "short", 0, deps=[c], size=0.5e9, peer=1)
    s = Network(fc(), congestion=True).run(g)
    # 0 .. 0.05: "long" alone at 10 GB/s moves 0.5e9 B (1e9 left);
    # 0.05 .. 0.15: both at 5 GB/s, "short" moves its 0.5e9 B, "long" 0.5e9 B;
    # 0.15 .. 0.2: "long" alone again moves its last 0.5e9 B.
    assert s.start_at[2] == 0.05
    assert s.end_at[2] == pytest.approx(0.15, rel=1e-12)
    assert s.end_at[0] == pytest.approx(0.2, rel=1e-12)
    unloaded = Network(fc()).run(g)
    assert unloaded.end_at[0] == pytest.approx(0.15) and unloaded.end_at[2] == pytest.approx(0.1)


def test_latency_is_paid_before_bandwidth_is_shared():
    topo = fc(latency=1e-3)
    g = ExecutionGraph(num_devices=4)
    g.add(T.COMM_SEND, "a", 0, size=1e9, peer=1)
    g.add(T.COMM_SEND, "b", 0, size=1e9, peer=1)
    s = Network(topo, congestion=True).run(g)
    assert list(s.end_at) == [1e-3 + 1e9 / (BW / 2)] * 2


class _CheckedFairShare(FairShareLinks):
    """FairShareLinks that checks it never schedules an event in the past."""

    def begin(self, node, t, heap):
        super().begin(node, t, heap)
        assert heap[0][0] >= t

    def on_event(self, tag, node, version, t, heap):
        done = super().on_event(tag, node, version, t, heap)
        assert not heap or heap[0][0] >= t
        return done


class _CheckedNetwork(Network):
    @property
    def link_model(self):
        return _CheckedFairShare if self.congestion else UnloadedLinks


def _random_graph(rng, topo, size):
    n = topo.num_devices
    rows = [tuple(range(b, b + topo.dimensions[0].size)) for b in range(0, n,
                                                                         topo.dimensions[0].size)]
    g = ExecutionGraph(num_devices=n)
    ids = []
    for _ in range(size):
        deps = rng.sample(ids, min(len(ids), rng.choice([0, 1, 1, 2])))
        dev, r = rng.randrange(n), rng.random()
        nbytes = rng.choice([0.0, 1e5, rng.uniform(0, 1e8)])
        if r < 0.4:
            i = g.add(T.COMP, "c", dev, deps=deps, duration=rng.uniform(0, 1e-3))
        elif r < 0.65:
            i = g.add(T.COMM_SEND, "s", dev, deps=deps, size=nbytes, peer=rng.randrange(n))
        elif r < 0.85:
            grp = rng.choice(rows + [tuple(range(n))])
            i = g.add(T.COMM_COLL, "x", grp[0], deps=deps, size=nbytes,
                      collective=rng.choice(list(C)), group=grp)
        else:
            i = g.add(rng.choice([T.MEM_LOAD, T.MEM_STORE]), "m", dev, deps=deps, size=nbytes)
        ids.append(i)
    return g


@pytest.mark.parametrize("congestion", [False, True])
def test_clocks_never_go_back(congestion):
    rng = random.Random(7)
    topo = default_topology(8, 2)
    net = _CheckedNetwork(topo, congestion=congestion)
    for _ in range(30):
        g = _random_graph(rng, topo, 40)
        s = net.run(g)
        assert np.all(s.start_at >= 0) and np.all(s.end_at >= s.start_at)
        for node in g.nodes:
            for d in node.data_deps:
                assert s.start_at[node.id] >= s.end_at[d]
        assert s.makespan == s.end_at.max()


def test_congestion_never_beats_unloaded_times():
    rng = random.Random(11)
    topo = default_topology(8, 2)
    for _ in range(20):
        g = _random_graph(rng, topo, 40)
        fast, shared = Network(topo).run(g), Network(topo, congestion=True).run(g)
        assert np.all(shared.durations >= fast.durations * (1 - 1e-9))


class _FixedSecond(LinkModel):
    """A toy model: every transfer it is told about takes exactly one second."""

    congestion = True

    def __init__(self, network, transfers, device):
        self.claims = transfers

    def begin(self, node, t, heap):
        import heapq
        heapq.heappush(heap, (t + 1.0, STAGE_END, node, 0))

    def on_event(self, tag, node, version, t, heap):
        return True


def test_a_custom_link_model_plugs_into_the_same_loop():
    class Net(Network):
        link_model = _FixedSecond

    g = ExecutionGraph(num_devices=4)
    s = g.add(T.COMM_SEND, "s", 0, size=1e3, peer=1)
    r = g.add(T.COMM_RECV, "r", 1, deps=[s], size=1e3, peer=0)
    c = g.add(T.COMP, "c", 1, deps=[r], duration=0.5)
    sched = Net(fc()).run(g)
    assert list(sched.end_at) == [1.0, 1.0, 1.5] and sched.start_at[c] == 1.0
