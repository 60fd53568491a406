"""Attention data parallelism for MoE models: dispatch, combine, ranks, memory.

Exact values come by hand from a routing that sends every token to experts
0 .. top_k-1, so the dispatch matrix is known; whole runs check that the
chain shortcut equals stepping through the graph, the invariants and
determinism.
"""

from __future__ import annotations

import numpy as np
import pytest

from llmsim_nb import SimConfig, Simulator
from llmsim_nb.graph.data_parallel import DataParallelGraphConverter, all_to_all_buffer
from llmsim_nb.graph.nodes import CollectiveType, NodeType
from llmsim_nb.instance import Instance
from llmsim_nb.models import BatchShape
from llmsim_nb.models.catalog import get_model, register_model
from llmsim_nb.parallel.layout import subset
from llmsim_nb.system import build_instance
from llmsim_nb.testing import tiny_moe
from llmsim_nb.workload.trace import Trace


class FirstExperts:
    """Every token picks experts 0 .. top_k - 1 (a routing known by hand)."""

    def __init__(self, num_experts: int, top_k: int) -> None:
        self.num_experts, self.top_k = num_experts, top_k

    def draw(self, num_tokens, num_layers, rng):
        counts = np.zeros((num_layers, self.num_experts), dtype=np.int64)
        counts[:, :self.top_k] = num_tokens
        return counts


def _config(seed=0, **flags):
    spec = register_model(tiny_moe("tiny-moe-dp"), overwrite=True)
    flags = {"hardware": "h100-sxm", "npu_num": 4, "enable_expert_parallel": True,
             "attention_placement": "data", **flags}
    return SimConfig.from_flags(model_name=spec.name, seed=seed, **flags)


def _trace(n=30, seed=5):
    rng = np.random.default_rng(seed)
    return Trace(np.sort(rng.uniform(0, 0.05, n)), rng.integers(5, 60, n),
                 rng.integers(1, 20, n))


# Requests 0..5 with these query tokens sit on ranks id % 4: rank 0 holds 0
# and 4 (3 + 1 tokens), rank 1 holds 1 and 5 (2), rank 2 holds 2 (1), rank 3 holds 3 (2).
BATCH = BatchShape.from_lists([3, 1, 1, 2, 1, 1], [0, 10, 20, 0, 5, 7])


def _parts():
    parts = build_instance(_config())
    parts.stack.routing = FirstExperts(8, 2)
    return parts


def test_the_buffer_of_an_uneven_all_to_all_matches_its_busiest_device():
    # Two ranks: 0 sends 3 B to 1, 1 sends 1 B to 0: the busiest port moves 3 B,
    # as a uniform all-to-all of S = 6 B per device (each sends S/2 = 3).
    assert all_to_all_buffer(np.array([[5.0, 3.0], [1.0, 9.0]])) == 6.0
    # Three ranks: rank 2 receives 4 + 2 = 6 B, more than anyone sends (4):
    # S = 3/2 * 6 = 9 (each sends 2/3 S = 6).
    peer = np.array([[0.0, 0.0, 4.0], [1.0, 0.0, 2.0], [0.0, 0.0, 7.0]])
    assert all_to_all_buffer(peer) == 9.0
    assert all_to_all_buffer(peer.T) == 9.0        # the combine: same busiest device
    assert all_to_all_buffer(np.array([[4.0]])) == 0.0


def test_each_rank_routes_its_own_tokens_to_the_ranks_holding_the_experts():
    parts = _parts()
    trace = parts.stack.simulate(BATCH)
    (mb,) = trace.micro_batches
    # Experts 0 and 1 live on rank 0 (contiguous, 2 per rank); two copies per token.
    assert mb.dispatch_tokens.tolist() == [[8, 0, 0, 0], [4, 0, 0, 0], [2, 0, 0, 0],
                                           [4, 0, 0, 0]]
    assert parts.stack.iteration_rank_tokens.tolist() == [18, 0, 0, 0]
    assert parts.stack.iteration_expert_tokens.tolist() == [9, 9, 0, 0, 0, 0, 0, 0]
    # The rows that leave their rank (10), 64 bf16 activations each, at the one MoE layer.
    assert parts.stack.iteration_dispatch_bytes == 10 * 64 * 2 * 1


def test_a_rank_times_its_requests_with_whole_weights_and_its_experts_received_rows():
    parts = _parts()
    stack, engine = parts.stack, parts.engine
    (mb,) = stack.simulate(BATCH).micro_batches
    full = parts.template  # no op is split but the routed experts
    assert [t.weight_n for t in stack.sharded.block if not t.num_experts] == \
        [t.weight_n for t in full.block if not t.num_experts]
    owner = BATCH.request_ids % 4
    experts = [i for i, t in enumerate(stack.sharded.block) if t.num_experts]
    dense = [i for i in range(len(stack.sharded.block)) if i not in experts]
    for rank in range(4):
        mine = subset(BATCH, owner == rank)
        timing = mb.ranks[rank]
        assert timing.batch.request_ids.tolist() == mine.request_ids.tolist()
        want = engine.op_totals(tuple(stack.sharded.block[i] for i in dense), mine, 2)
        assert timing.layer_op_latency[dense].tolist() == want.tolist()
        received = np.array([9, 9, 0, 0, 0, 0, 0, 0]) if rank == 0 else np.zeros(8, int)
        carrier = BatchShape(mine.request_ids, mine.num_query_tokens, mine.num_context_tokens,
                             mine.num_logit_tokens, expert_tokens=received)
        want = engine.op_totals(tuple(stack.sharded.block[i] for i in experts), carrier, 2)
        assert timing.layer_op_latency[experts].tolist() == want.tolist()
        assert timing.embedding_op_latency.tolist() == \
            engine.op_totals(stack.sharded.embedding, mine, 2).tolist()


def test_the_graph_has_a_dispatch_and_a_combine_per_moe_layer_and_its_makespan_by_hand():
    parts = _parts()
    trace = parts.stack.simulate(BATCH)
    graph = parts.converter.build(trace)
    colls = [n for n in graph.nodes if n.type is NodeType.COMM_COLL]
    # tiny-moe: layer 0 dense (no collective: the ranks do not meet), layer 1 MoE.
    assert [(n.op, n.layer, n.collective) for n in colls] == \
        [("dispatch", 1, CollectiveType.ALL_TO_ALL), ("combine", 1, CollectiveType.ALL_TO_ALL)]
    size = 10 * 64 * 2 * 4 / 3   # rank 0 receives 10 rows of 128 B from the others
    assert [n.size for n in colls] == [pytest.approx(size, rel=1e-15)] * 2
    assert all(n.group == (0, 1, 2, 3) for n in colls)
    # By hand: every rank runs embed + layer 0 + layer 1 up to the router, the
    # group meets, rank 0 runs the experts, the group meets, then the rest + head.
    mb = trace.micro_batches[0]
    template = parts.converter.template
    names = [t.name for t in template.block]
    first = names.index("expert_up")
    last = names.index("expert_down") + 1
    dense_kind, moe_kind = template.kind_of(0), template.kind_of(1)
    cost = parts.network.collectives.cost(CollectiveType.ALL_TO_ALL, colls[0].size,
                                          (0, 1, 2, 3)).duration
    pre, experts, post = [], [], []
    for rank in mb.ranks:
        layer0 = template.kind_latencies(rank.layer_op_latency)[dense_kind]
        layer1 = template.kind_latencies(rank.layer_op_latency)[moe_kind]
        pre.append(rank.embedding_latency + layer0.sum() + layer1[:first].sum())
        experts.append(layer1[first:last].sum())
        post.append(layer1[last:].sum() + rank.head_latency)
    meet = max(pre) + cost
    meet = max(meet + e for e in experts) + cost
    expected = max(meet + p for p in post)
    assert parts.network.run(graph).makespan == pytest.approx(expected, rel=1e-12)
    full = DataParallelGraphConverter(parts.layout, parts.stack.sharded, full_graph=True)
    assert parts.network.run(full.build(trace)).makespan == parts.network.run(graph).makespan


def test_the_run_equals_stepping_through_the_graph_bit_for_bit():
    config, trace = _config(), _trace()
    ran = Simulator(config, trace).run()
    inst = Instance(build_instance(config))
    for request in trace:
        inst.submit(request)
    ends = []
    while not inst.is_finished:
        ends.append(float(inst.step().t_end.values[0]))
    stepped = inst.results()
    assert ends == ran.t_end.values.tolist()
    assert stepped.device_busy_time.values.tolist() == ran.device_busy_time.values.tolist()
    assert stepped.link_bytes.values.tolist() == ran.link_bytes.values.tolist()
    assert (ran.dispatch_bytes.values > 0).any()


def test_a_data_parallel_run_keeps_the_invariants_and_repeats_under_its_seed():
    trace = _trace()
    first = Simulator(_config(), trace).run()
    again = Simulator(_config(), trace).run()
    assert np.isfinite(first.finished_at.values).all()
    assert first.num_finished.values.sum() == len(trace)
    assert first.num_generated_tokens.values.sum() == trace.num_output_tokens.sum()
    assert (np.diff(first.t_end.values) > 0).all()
    assert (first.num_used_blocks.values <= first.attrs["num_kv_blocks"]).all()
    for name in ("t_end", "dispatch_bytes", "device_busy_time", "max_rank_expert_tokens"):
        assert np.array_equal(first[name].values, again[name].values)
    # Each iteration's routed tokens are top-2 copies of its tokens.
    tokens = first.num_prefill_tokens.values + first.num_decode_tokens.values
    assert (first.max_rank_expert_tokens.values <= 2 * tokens).all()


@pytest.mark.parametrize("flags", [dict(npu_num=4, npu_group=2, parallel="hybrid"),
                                   dict(micro_batches=2)])
def test_pipelines_and_micro_batches_run_on_the_graph(flags):
    trace = _trace(12)
    ds = Simulator(_config(**flags), trace).run()
    assert ds.num_finished.values.sum() == len(trace)
    assert np.isfinite(ds.t_end.values).all()


def test_memory_holds_whole_dense_weights_per_rank_and_a_request_kv_on_its_rank():
    spec = register_model(tiny_moe("tiny-moe-dp"), overwrite=True)
    params = spec.parameters()
    data = build_instance(_config()).memory
    # Every weight on each rank but 3/4 of the routed experts (bf16).
    assert data.weight_bytes == (params.weight_bytes - params.routed_experts * 2 * 3 // 4,)
    # 2 layers x 2 KV heads x 32 x (K and V) x 2 bytes, over 4 ranks.
    assert data.kv_bytes_per_token == (2 * 2 * 2 * 32 * 2 / 4,)
    # DeepSeek-V3: the 576-element latent of 61 layers, on the request's rank only.
    ds = build_instance(SimConfig.from_flags(model_name="deepseek-v3", hardware="h200",
                                             npu_num=8, enable_expert_parallel=True,
                                             attention_placement="data")).memory
    assert get_model("deepseek-v3").mla.kv_elements_per_token == 576
    assert ds.kv_bytes_per_token == (61 * 576 * 2 / 8,)


@pytest.mark.parametrize("flags, match", [
    (dict(model_name="gpt2"), r"attention_placement='data' \(attention data parallelism\) "
                              r"needs a mixture-of-experts model; 'gpt2'"),
    (dict(enable_expert_parallel=False), r"attention_placement='data' needs "
                                         r"enable_expert_parallel=True"),
    (dict(npu_num=3), r"do not split evenly over 3 ranks"),
    (dict(pim_type="local", hardware="npu-128x128"),
     r"attention_placement='data' is not modelled on the NPU \+ PIM stack"),
])
def test_bad_data_parallel_setups_are_refused(flags, match):
    spec = register_model(tiny_moe("tiny-moe-dp"), overwrite=True)
    given = {"model_name": spec.name, "hardware": "h100-sxm", "npu_num": 4,
             "enable_expert_parallel": True, "attention_placement": "data", **flags}
    if not given["enable_expert_parallel"]:
        del given["enable_expert_parallel"]
    with pytest.raises(ValueError, match=match):
        build_instance(SimConfig.from_flags(**given))


def test_the_command_line_runs_it_and_names_the_layout(capsys):
    from llmsim_nb.cli.main import main
    spec = register_model(tiny_moe("tiny-moe-dp"), overwrite=True)
    assert main(["run", "--model_name", spec.name, "--hardware", "h100-sxm", "--npu_num", "4",
                 "--enable_expert_parallel", "--attention_placement", "data",
                 "--num_requests", "6", "--lengths", "fixed:20,4"]) == 0
    out = capsys.readouterr().out
    assert "layout              DP 4 (attention) + EP 4 x PP 1, network " in out
    assert "requests finished   6 / 6" in out
