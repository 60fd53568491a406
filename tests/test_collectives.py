"""Collective costs against the textbook closed forms."""

import math

import pytest

from llmsim_nb.graph.nodes import CollectiveType as C
from llmsim_nb.network import (CollectiveModel, Dimension, Topology, collective_cost,
                               collective_link_bytes, collective_time, default_topology)

S = 64e6          # bytes
ALPHA = 1e-6      # s per step
B = 10e9          # B/s per link


def ring(p, links=2):
    return Topology((Dimension("Ring", p, B, ALPHA, links),))


def mesh(p, links=None):
    return Topology((Dimension("FullyConnected", p, B, ALPHA, links or p - 1),))


def switch(p):
    return Topology((Dimension("Switch", p, B, ALPHA / 2, 1),))  # alpha = 2 * latency


@pytest.mark.parametrize("p", [2, 4, 8])
def test_ring_all_reduce_closed_form(p):
    topo = ring(p)
    cost = collective_cost(topo, C.ALL_REDUCE, S, range(p))
    b_ring = 2 * B  # both directions of the ring: bandwidth * num_links
    assert cost.duration == pytest.approx(2 * (p - 1) * (ALPHA + S / (p * b_ring)))
    assert cost.bytes_per_device == pytest.approx(2 * (p - 1) / p * S)
    assert cost.steps == 2 * (p - 1)
    assert cost.link_bytes == {"dim0": pytest.approx(2 * (p - 1) / p * S * p)}


@pytest.mark.parametrize("kind", [C.REDUCE_SCATTER, C.ALL_GATHER])
def test_ring_rs_ag_is_half_an_all_reduce(kind):
    p = 8
    t = collective_time(ring(p), kind, S, range(p))
    assert t == pytest.approx((p - 1) * (ALPHA + S / (p * 2 * B)))
    assert 2 * t == pytest.approx(collective_time(ring(p), C.ALL_REDUCE, S, range(p)))


def test_direct_on_full_mesh():
    p = 8
    topo = mesh(p)                       # one link per peer
    rs = collective_cost(topo, C.REDUCE_SCATTER, S, range(p))
    assert rs.duration == pytest.approx(ALPHA + S / (p * B))
    assert rs.steps == 1
    assert rs.bytes_per_device == pytest.approx((p - 1) / p * S)
    ar = collective_cost(topo, C.ALL_REDUCE, S, range(p))
    assert ar.duration == pytest.approx(2 * (ALPHA + S / (p * B)))
    assert ar.bytes_per_device == pytest.approx(2 * (p - 1) / p * S)
    # fewer links than peers: the per-peer capacity shrinks to B * links / (p - 1)
    thin = mesh(p, links=1)
    assert collective_time(thin, C.REDUCE_SCATTER, S, range(p)) == \
        pytest.approx(ALPHA + S * (p - 1) / (p * B))


def test_direct_through_switch():
    p = 4
    t = collective_time(switch(p), C.ALL_REDUCE, S, range(p))
    assert t == pytest.approx(2 * (ALPHA + (p - 1) / p * S / B))
    # up- and down-port both carry every byte
    assert collective_link_bytes(switch(p), C.REDUCE_SCATTER, S, range(p)) == \
        {"dim0": pytest.approx((p - 1) / p * S * p * 2)}


def test_halving_doubling():
    p = 8
    topo = mesh(p)
    cost = collective_cost(topo, C.ALL_REDUCE, S, range(p), algorithm="halving_doubling")
    one_way = math.log2(p) * ALPHA + sum(S / 2 ** k for k in range(1, 4)) / B
    assert cost.duration == pytest.approx(2 * one_way)
    assert cost.steps == 2 * 3
    assert cost.bytes_per_device == pytest.approx(2 * (p - 1) / p * S)
    with pytest.raises(ValueError, match="power-of-two"):
        collective_time(mesh(6), C.ALL_REDUCE, S, range(6), algorithm="halving_doubling")


def test_all_to_all():
    p = 4
    assert collective_time(mesh(p), C.ALL_TO_ALL, S, range(p)) == \
        pytest.approx(ALPHA + S / (p * B))
    assert collective_time(ring(p), C.ALL_TO_ALL, S, range(p)) == \
        pytest.approx((p - 1) * ALPHA + (p - 1) * S / (2 * 2 * B))


def test_ring_algorithm_on_a_mesh():
    p = 4
    t = collective_time(mesh(p), C.REDUCE_SCATTER, S, range(p), algorithm="ring")
    assert t == pytest.approx((p - 1) * (ALPHA + S / (p * 2 * B)))  # two neighbour links


def test_hierarchical_is_sum_of_per_dimension_phases():
    d0 = Dimension("Ring", 4, 20e9, 1e-6, 2)
    d1 = Dimension("FullyConnected", 2, 5e9, 3e-6, 1)
    d2 = Dimension("Switch", 2, 8e9, 1e-6, 1)
    topo = Topology((d0, d1, d2))
    group = range(8)  # dims 0 and 1
    ar = collective_cost(topo, C.ALL_REDUCE, S, group)
    t0 = collective_time(Topology((d0,)), C.REDUCE_SCATTER, S, range(4))
    t1 = collective_time(Topology((d1,)), C.REDUCE_SCATTER, S / 4, range(2))
    assert [(ph.dim, ph.op) for ph in ar.phases] == [
        (0, "reduce_scatter"), (1, "reduce_scatter"), (1, "all_gather"), (0, "all_gather")]
    assert ar.duration == pytest.approx(2 * (t0 + t1))
    assert collective_time(topo, C.REDUCE_SCATTER, S, group) == pytest.approx(t0 + t1)
    assert collective_time(topo, C.ALL_GATHER, S, group) == pytest.approx(t0 + t1)
    # per-device bytes of a hierarchical all-reduce: 2 (P - 1) / P * S in total
    assert ar.bytes_per_device == pytest.approx(2 * (8 - 1) / 8 * S)
    # a group that is one row of dimension 1 only
    row = collective_cost(topo, C.ALL_REDUCE, S, [1, 5])
    assert [ph.dim for ph in row.phases] == [1, 1]
    assert row.duration == pytest.approx(
        collective_time(Topology((d1,)), C.ALL_REDUCE, S, range(2)))


def test_tensor_parallel_group_of_default_topology():
    topo = default_topology(16, 4)     # TP groups of 4 in dim 0
    stage2 = range(8, 12)
    t = collective_time(topo, C.ALL_REDUCE, S, stage2)
    assert t == pytest.approx(2 * S / (4 * 64e9))
    assert collective_time(topo, C.ALL_REDUCE, S, range(4)) == t


def test_trivial_and_invalid_groups():
    topo = default_topology(16, 4)
    assert collective_time(topo, C.ALL_REDUCE, S, [5]) == 0.0
    assert collective_cost(topo, C.ALL_REDUCE, S, [5]).bytes_per_device == 0.0
    assert collective_time(topo, C.ALL_REDUCE, 0, range(4)) == 0.0
    with pytest.raises(ValueError, match="outside topology"):
        collective_time(topo, C.ALL_REDUCE, S, [0, 16])
    with pytest.raises(ValueError, match="not aligned"):
        collective_time(topo, C.ALL_REDUCE, S, [0, 1, 4])
    with pytest.raises(ValueError, match="not aligned"):
        collective_time(topo, C.ALL_REDUCE, S, [0, 5])
    with pytest.raises(ValueError, match="repeats"):
        collective_time(topo, C.ALL_REDUCE, S, [0, 0, 1])
    with pytest.raises(ValueError, match="empty"):
        collective_time(topo, C.ALL_REDUCE, S, [])
    with pytest.raises(ValueError, match="whole rings"):
        collective_time(ring(8), C.ALL_REDUCE, S, range(4))
    with pytest.raises(ValueError, match="size"):
        collective_time(topo, C.ALL_REDUCE, -1.0, range(4))
    with pytest.raises(ValueError, match="collective kind"):
        collective_time(topo, "BROADCAST", S, range(4))


def test_partial_row_of_a_full_mesh():
    topo = mesh(8)                       # 7 links, one per peer
    t = collective_time(topo, C.ALL_REDUCE, S, range(4))
    assert t == pytest.approx(2 * (ALPHA + S / (4 * B)))


def test_algorithm_selection_and_errors():
    topo = Topology((Dimension("Ring", 4, B, ALPHA, 2), Dimension("FullyConnected", 4, B, ALPHA, 3)))
    by_dim = collective_cost(topo, C.ALL_REDUCE, S, range(16), algorithm={1: "halving_doubling"})
    assert [ph.algorithm for ph in by_dim.phases] == ["ring", "halving_doubling"] * 1 + \
        ["halving_doubling", "ring"]
    by_kind = collective_cost(topo, C.ALL_REDUCE, S, range(16),
                              algorithm={"FullyConnected": "ring"})
    assert {ph.algorithm for ph in by_kind.phases} == {"ring"}
    with pytest.raises(ValueError, match="does not run on Ring"):
        collective_time(topo, C.ALL_REDUCE, S, range(4), algorithm="direct")
    with pytest.raises(ValueError, match="not one of"):
        collective_time(topo, C.ALL_REDUCE, S, range(4), algorithm="tree")


def test_string_kinds_and_caching():
    topo = mesh(4)
    model = CollectiveModel(topo)
    a = model.cost("all_reduce", S, (0, 1, 2, 3))
    assert a is model.cost("all_reduce", S, (0, 1, 2, 3))
    assert a.duration == pytest.approx(model.time(C.ALL_REDUCE, S, (3, 2, 1, 0)))
