"""The graph converter: shapes of TP, PP and hybrid graphs, sharding, export."""

import json
from collections import Counter

import numpy as np
import pytest

from llmsim_nb.config import SystemConfig
from llmsim_nb.engines.hardware import make_engine
from llmsim_nb.engines.stack import ExecutionStack
from llmsim_nb.graph import CollectiveType, GraphConverter, NodeType, graph_to_dict
from llmsim_nb.models import BatchShape, ModelSpec, decoder_template
from llmsim_nb.parallel.sharding import shard_template
from llmsim_nb.parallel.layout import ParallelLayout

TINY = ModelSpec("tiny-8l", num_layers=8, hidden_size=256, num_heads=8, num_kv_heads=8,
                 ffn_hidden_size=1024, vocab_size=1000)
TINY_GQA = ModelSpec("tiny-gqa", num_layers=4, hidden_size=256, num_heads=8, num_kv_heads=2,
                     ffn_hidden_size=704, vocab_size=1000, activation="swiglu", norm="rmsnorm",
                     position="rope", bias=False, tied_embeddings=False)
BATCH = BatchShape.from_lists([64, 1, 1, 1, 32, 1], [0, 10, 20, 30, 0, 5])


def build(spec=TINY, batch=BATCH, evicted=0.0, reloaded=0.0, full=False, **system):
    layout = ParallelLayout.from_config(SystemConfig(**system), spec.num_layers)
    stack = ExecutionStack(make_engine("npu-128x128"), decoder_template(spec), layout)
    trace = stack.simulate(batch)
    graph = GraphConverter(layout, stack.sharded, full_graph=full).build(trace, evicted, reloaded)
    return layout, trace, graph


def kinds(graph):
    return Counter((n.type, n.collective) for n in graph.nodes)


def test_single_device_is_a_chain_of_layers():
    _, trace, g = build()
    c = kinds(g)
    assert c[(NodeType.COMP, None)] == 1 + TINY.num_layers + 1   # embed, layers, head
    assert len(g) == c[(NodeType.COMP, None)]
    assert sum(n.duration for n in g.nodes) == pytest.approx(trace.compute_latency)
    assert all(n.data_deps == ((n.id - 1,) if n.id else ()) for n in g.nodes)


def test_tensor_parallel_all_reduces_after_out_proj_and_ffn_down():
    _, _, g = build(npu_num=4, parallel="tensor")
    c = kinds(g)
    # Two per layer plus the vocab-parallel embedding; logits are all-gathered.
    assert c[(NodeType.COMM_COLL, CollectiveType.ALL_REDUCE)] == 2 * TINY.num_layers + 1
    assert c[(NodeType.COMM_COLL, CollectiveType.ALL_GATHER)] == 1
    reduce_ops = {n.op for n in g.nodes if n.collective is CollectiveType.ALL_REDUCE}
    assert reduce_ops == {"out_proj", "ffn_down", "embed"}
    ar = next(n for n in g.nodes if n.op == "out_proj")
    assert ar.group == (0, 1, 2, 3) and ar.size == BATCH.num_tokens * 256 * 2
    # Symmetric ranks: one representative stands for the group.
    assert g.multiplicity == {0: 4} and {n.device for n in g.nodes} == {0}


def test_pipeline_sends_between_stages_per_micro_batch():
    layout, trace, g = build(npu_num=4, npu_group=4, parallel="pipeline")
    assert layout.tp == 1 and layout.pp == 4 and layout.stage_layers == (2, 2, 2, 2)
    m = len(trace.micro_batches)
    assert m == 4
    c = kinds(g)
    assert c[(NodeType.COMM_SEND, None)] == c[(NodeType.COMM_RECV, None)] == 3 * m
    assert c[(NodeType.COMM_COLL, CollectiveType.ALL_REDUCE)] == 0
    sends = [n for n in g.nodes if n.type is NodeType.COMM_SEND]
    assert sorted({(n.device, n.peer) for n in sends}) == [(0, 1), (1, 2), (2, 3)]
    for recv in (n for n in g.nodes if n.type is NodeType.COMM_RECV):
        send = g.nodes[recv.data_deps[0]]
        assert send.type is NodeType.COMM_SEND and send.peer == recv.device
    layer_devices = {n.layer: n.device for n in g.nodes if n.layer >= 0}
    assert layer_devices == {0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 2, 6: 3, 7: 3}
    # Embedding on the first stage, LM head on the last.
    assert next(n for n in g.nodes if n.op == "embed").device == 0
    assert next(n for n in g.nodes if n.op == "lm_head").device == 3


def test_hybrid_groups_and_stages():
    layout, trace, g = build(npu_num=8, npu_group=2, parallel="hybrid")
    assert (layout.tp, layout.pp) == (4, 2)
    groups = {n.group for n in g.nodes if n.type is NodeType.COMM_COLL}
    assert groups == {(0, 1, 2, 3), (4, 5, 6, 7)}
    assert g.multiplicity == {0: 4, 4: 4}
    m = len(trace.micro_batches)
    assert kinds(g)[(NodeType.COMM_SEND, None)] == m


def test_full_graph_has_a_node_per_rank():
    _, _, reduced = build(npu_num=4, parallel="tensor")
    _, _, full = build(npu_num=4, parallel="tensor", full=True)
    comp = lambda g: [n for n in g.nodes if n.type is NodeType.COMP]
    assert len(comp(full)) == 4 * len(comp(reduced))
    assert full.multiplicity == {0: 1, 1: 1, 2: 1, 3: 1}
    coll = [n for n in full.nodes if n.type is NodeType.COMM_COLL]
    assert all(len(n.data_deps) == 4 for n in coll[1:])  # waits for every rank


def test_selective_batching_places_requests_on_ranks():
    _, trace, g = build(npu_num=4, parallel="tensor", attention_placement="requests")
    attn = [n for n in g.nodes if n.name.startswith("L0.attention")]
    assert [n.device for n in attn] == [0, 1, 2, 3]
    assert [n.request_ids for n in attn] == [(0, 4), (1, 5), (2,), (3,)]
    assert kinds(g)[(NodeType.COMM_COLL, CollectiveType.ALL_TO_ALL)] == 2 * TINY.num_layers
    # The rank with the 64-token prefill does the most attention work.
    assert attn[0].duration == max(n.duration for n in attn)


def test_kv_eviction_becomes_store_and_load_nodes():
    _, _, g = build(npu_num=4, npu_group=2, parallel="hybrid", evicted=8e6, reloaded=4e6)
    stores = [n for n in g.nodes if n.type is NodeType.MEM_STORE]
    loads = [n for n in g.nodes if n.type is NodeType.MEM_LOAD]
    assert [n.device for n in stores] == [0, 2] and [n.device for n in loads] == [0, 2]
    # Each device holds half the layers and half the heads: a quarter of the bytes.
    assert stores[0].size == pytest.approx(8e6 / 4) and loads[1].size == pytest.approx(1e6)
    first_comp = next(n for n in g.nodes if n.type is NodeType.COMP)
    assert set(first_comp.data_deps) == {stores[0].id, loads[0].id}


def test_sharding_divides_weights_and_heads():
    full = decoder_template(TINY_GQA)
    shard = shard_template(full, 4)
    by_name = {t.name: t for t in shard.block}
    assert by_name["attn_score"].num_heads == 2 and by_name["attn_score"].num_kv_heads == 1
    # q: 2 heads, k and v: 1 (replicated) head each, head_dim 32.
    assert by_name["qkv_proj"].weight_n == (2 + 2) * 32
    assert by_name["out_proj"].weight_k == 256 // 4 and by_name["out_proj"].weight_n == 256
    assert by_name["ffn_up"].weight_n == 2 * 704 // 4
    assert by_name["ffn_down"].weight_k == 704 // 4
    assert by_name["input_norm"] == next(t for t in full.block if t.name == "input_norm")
    assert shard.head[-1].weight_n == 250


@pytest.mark.parametrize("system,message", [
    (dict(npu_num=3, parallel="tensor"), "must divide the 8 attention heads"),
    (dict(npu_num=16, npu_group=16, parallel="pipeline"), "16 pipeline stages exceed"),
    (dict(npu_num=4, npu_group=2, parallel="tensor"), "npu_group=2 needs"),
])
def test_configs_that_do_not_fit_are_refused(system, message):
    with pytest.raises(ValueError, match=message):
        build(**system)


def test_micro_batches_are_balanced_and_cover_the_batch():
    layout = ParallelLayout(1, 4, (2, 2, 2, 2), 4)
    batch = BatchShape.from_lists([100, 1, 1, 1, 50, 1, 1, 200], [0] * 8)
    parts = layout.split(batch)
    assert [p.request_ids.tolist() for p in parts] == [[0], [1, 2, 3, 4, 5], [6], [7]]
    assert np.concatenate([p.request_ids for p in parts]).tolist() == list(range(8))
    assert len(layout.split(BatchShape.from_lists([5, 5], [0, 0]))) == 2


def test_json_export_follows_chakra_names(tmp_path):
    _, _, g = build(npu_num=4, npu_group=2, parallel="hybrid", evicted=1e6)
    doc = json.loads(json.dumps(graph_to_dict(g)))
    assert doc["schema"] == "llmsim_nb.execution_graph" and doc["num_devices"] == 4
    types = {n["type"] for n in doc["nodes"]}
    assert types == {"COMP_NODE", "COMM_COLL_NODE", "COMM_SEND_NODE", "COMM_RECV_NODE",
                     "MEM_STORE_NODE"}
    coll = next(n for n in doc["nodes"] if n["type"] == "COMM_COLL_NODE")
    assert coll["comm_type"] == "ALL_REDUCE" and coll["comm_group"] == [0, 1]
    assert all(d < n["id"] for n in doc["nodes"] for d in n["data_deps"])
