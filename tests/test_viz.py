"""Plots: each draws what the Dataset says (checked on the artists), on the Agg backend."""

import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from llmsim_nb import SimConfig, Simulator  # noqa: E402
from llmsim_nb.models.ops import BatchShape, OpKind  # noqa: E402
from llmsim_nb.results.files import throughput_over_time  # noqa: E402
from llmsim_nb.workload import Trace  # noqa: E402
from llmsim_nb import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _trace(n=12, prompt=64, output=24, gap=0.004):
    return Trace(arrival_at=np.arange(n) * gap, num_prompt_tokens=np.full(n, prompt),
                 num_output_tokens=np.full(n, output), source="test")


@pytest.fixture(scope="module")
def run():
    sim = Simulator(SimConfig.from_flags(model_name="gpt2"), _trace())
    return sim, sim.run()


@pytest.fixture(scope="module")
def evicting_run():
    rng = np.random.default_rng(0)
    trace = Trace(arrival_at=np.zeros(30), num_prompt_tokens=rng.integers(100, 300, 30),
                  num_output_tokens=rng.integers(100, 300, 30), source="pressure")
    ds = Simulator(SimConfig.from_flags(model_name="gpt2", npu_mem=0.3), trace).run()
    assert int(ds.num_evicted.sum()) > 0
    return ds


def test_importing_viz_does_not_import_matplotlib():
    code = ("import sys, llmsim_nb.viz, llmsim_nb.viz.dashboard, llmsim_nb.viz.controls; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_every_plot_draws_on_the_axes_it_is_given(run):
    sim, ds = run
    step_sim = Simulator(SimConfig.from_flags(model_name="gpt2"), _trace())
    step = step_sim.step()
    block = sim.template.instantiate(BatchShape.from_lists([1] * 4, [100] * 4))[1]
    calls = [lambda ax: viz.plot_throughput(ds, ax), lambda ax: viz.plot_latency_cdf(ds, ax),
             lambda ax: viz.plot_kv_usage(ds, ax), lambda ax: viz.plot_batch_composition(ds, ax),
             lambda ax: viz.plot_block_table(step_sim.kv_cache, ax=ax),
             lambda ax: viz.plot_gantt(step, ax),
             lambda ax: viz.plot_execution_graph(step_sim.last_graph, ax),
             lambda ax: viz.plot_roofline(viz.roofline_points(sim.engine, block), ax)]
    for call in calls:
        fig, ax = plt.subplots()
        assert call(ax) is ax
        assert ax.has_data()
    # Without an Axes each makes its own figure.
    assert viz.plot_throughput(ds).figure is not ax.figure


def test_throughput_plot_is_the_output_buckets(run):
    _, ds = run
    ax = viz.plot_throughput(ds, interval=0.5)  # the files' width (the default follows the run)
    ends, prompt, generation = throughput_over_time(ds)
    p, g = ax.patches
    np.testing.assert_array_equal(p.get_data().values, prompt)
    np.testing.assert_array_equal(g.get_data().values, generation)
    np.testing.assert_allclose(p.get_data().edges, np.concatenate([[0.0], ends]))
    # Tokens are conserved: area under the curves = all prompt / decode tokens.
    assert np.sum(p.get_data().values) * 0.5 == pytest.approx(float(ds.num_prefill_tokens.sum()))
    assert np.sum(g.get_data().values) * 0.5 == pytest.approx(float(ds.num_decode_tokens.sum()))


def test_latency_cdf_lines_are_sorted_finite_values(run):
    _, ds = run
    ax = viz.plot_latency_cdf(ds)
    assert [l.get_label().split()[0] for l in ax.lines] == ["TTFT", "TPOT", "E2E"]
    for line, name in zip(ax.lines, ("ttft", "tpot", "e2e_latency")):
        x, y = line.get_data()
        np.testing.assert_array_equal(x, np.sort(ds[name].values))
        assert y[-1] == 1.0 and np.all(np.diff(y) > 0)
    assert ax.get_xscale() == "log"
    # Requests without a value (NaN: not finished) are left out of the CDF.
    x, y = viz.latency_cdf(np.array([3.0, np.nan, 1.0, 2.0]))
    np.testing.assert_array_equal(x, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(y, [1 / 3, 2 / 3, 1.0])


def test_kv_usage_marks_evicting_iterations(evicting_run):
    ds = evicting_run
    ax = viz.plot_kv_usage(ds)
    t, usage = ax.lines[0].get_data()
    np.testing.assert_array_equal(usage, ds.kv_usage.values)
    marked_t, _ = ax.lines[1].get_data()
    np.testing.assert_array_equal(marked_t, ds.t_end.values[ds.num_evicted.values > 0])
    twin = [a for a in ax.figure.axes if a is not ax][0]
    assert twin.lines[0].get_data()[1][-1] == int(ds.num_evicted.sum())


def test_batch_composition_stacks_decode_on_prefill(run):
    _, ds = run
    ax = viz.plot_batch_composition(ds)
    prefill, total = (p.get_data() for p in ax.patches)
    np.testing.assert_array_equal(prefill.values, ds.num_prefill_tokens.values)
    np.testing.assert_array_equal(total.baseline, ds.num_prefill_tokens.values)
    np.testing.assert_array_equal(total.values - total.baseline, ds.num_decode_tokens.values)
    assert len(total.edges) == ds.sizes["iteration"] + 1


def test_block_owner_grid_places_each_block_at_its_id():
    table = {7: [0, 1, 5], 3: [2]}
    grid = viz.block_owner_grid(table, num_blocks=10, width=4)
    assert grid.shape == (3, 4)
    assert grid.flat[0] == 7 and grid.flat[1] == 7 and grid.flat[5] == 7 and grid.flat[2] == 3
    assert (grid.flat[[3, 4, 6, 7, 8, 9, 10, 11]] == -1).all()  # free, then padding
    with pytest.raises(ValueError, match="another request"):
        viz.block_owner_grid({1: [0], 2: [0]}, num_blocks=4)
    with pytest.raises(ValueError, match="outside 0..3"):
        viz.block_owner_grid({1: [4]}, num_blocks=4)
    with pytest.raises(ValueError, match="num_blocks"):
        viz.block_owner_grid({}, num_blocks=0)
    with pytest.raises(ValueError, match="needs num_blocks"):
        viz.plot_block_table({1: [0]})


def test_block_table_heat_map_matches_the_live_cache():
    sim = Simulator(SimConfig.from_flags(model_name="gpt2", npu_mem=0.3), _trace())
    for _ in range(5):
        sim.step()
    table = sim.kv_cache.block_table()
    ax = viz.plot_block_table(sim.kv_cache)
    image = ax.images[0].get_array()
    width = image.shape[1]
    held = {b for ids in table.values() for b in ids}
    assert len(held) == sim.kv_cache.num_used_blocks > 0
    for rid, ids in table.items():
        for b in ids:
            assert image[b // width, b % width] == rid % 20
    assert int((~np.ma.getmaskarray(image)).sum()) == len(held)
    # A pool larger than max_blocks shows its first blocks and says so.
    ax = viz.plot_block_table(table, num_blocks=10_000, max_blocks=100)
    assert ax.images[0].get_array().size == 100 and "first 100 blocks" in ax.get_title()


def test_gantt_has_a_row_per_device_and_link_and_the_node_times():
    config = SimConfig.from_flags(model_name="gpt2", npu_num=4, npu_group=2)
    sim = Simulator(config, _trace())
    step = sim.step()
    rows = viz.gantt_rows(step)
    devices = sorted({d for d, _ in rows})
    assert devices == sorted(set(step.node_device.values.tolist()))
    assert (devices[0], "compute") in rows and (devices[0], "network") in rows
    ax = viz.plot_gantt(step, time_unit="s")
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"NPU {d} {k}" for d, k in rows]
    # Compute bars on device 0 span exactly its COMP nodes' durations, each widened to
    # the minimum visible width where shorter.
    comp0 = (step.node_type.values == "COMP_NODE") & (step.node_device.values == 0)
    min_width = viz.gantt.MIN_BAR_FRACTION * float(step.node_end_at.max())
    expected = float(np.maximum((step.node_end_at - step.node_start_at).values[comp0],
                                min_width).sum())
    drawn = 0.0
    for coll in ax.collections:
        for path in coll.get_paths():
            xs, ys = path.vertices[:, 0], path.vertices[:, 1]
            if abs(ys.mean() - rows.index((0, "compute"))) < 0.5:
                drawn += xs.max() - xs.min()
    assert drawn == pytest.approx(expected, rel=1e-9)
    with pytest.raises(ValueError, match="Simulator.step"):
        viz.plot_gantt(sim.results())
    with pytest.raises(ValueError, match="time_unit"):
        viz.plot_gantt(step, time_unit="h")


def test_execution_graph_layout_puts_edges_forward():
    sim = Simulator(SimConfig.from_flags(model_name="gpt2", npu_num=2, parallel="pipeline"),
                    _trace())
    sim.step()
    graph = sim.last_graph
    pos = viz.graph_layout(graph)
    assert all(pos[d][0] < pos[n.id][0] for n in graph.nodes for d in n.data_deps)
    ax = viz.plot_execution_graph(graph)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "NPU 0 compute" in labels and "NPU 1 compute" in labels


def test_roofline_points_classify_prefill_and_decode():
    sim = Simulator(SimConfig.from_flags(model_name="gpt3-6.7b"), _trace())
    decode = sim.template.instantiate(BatchShape.from_lists([1] * 8, [512] * 8))[1]
    prefill = sim.template.instantiate(BatchShape.from_lists([2048], [0]))[1]
    d = viz.roofline_points(sim.engine, decode)
    p = viz.roofline_points(sim.engine, prefill)
    # Decode streams every weight for 8 rows: memory-bound; a 2048-row prefill GEMM is not.
    assert bool(d.memory_bound.sel(op="qkv_proj")) and not bool(p.memory_bound.sel(op="qkv_proj"))
    assert float(p.intensity.sel(op="ffn_up")) > 10 * float(d.intensity.sel(op="ffn_up"))
    # Nothing beats its roof: attained <= min(peak, intensity * bandwidth), except that a
    # GEMM's bias adds (T*N of its 2*T*K*N + T*N FLOPs) are done by the accumulators, not
    # the MAC array, so a biased GEMM may exceed the array's peak by up to 1/(2K).
    for pts, block in ((d, decode), (p, prefill)):
        matmul = np.array([OpKind(k).is_matmul for k in pts.kind.values])
        peak = np.where(matmul, pts.attrs["peak_matmul_flops"],
                        pts.attrs["peak_vector_flops"])
        roof = np.minimum(peak, pts.intensity.values * pts.attrs["memory_bandwidth"])
        slack = np.array([1 / (2 * op.k[0]) if op.kind == OpKind.GEMM else 0.0
                          for op in block.ops]) + 1e-9
        work = pts.flops.values > 0
        assert (pts.attained.values[work] <= (roof * (1 + slack))[work]).all()
    # The points agree with the engine's own roofline helper.
    inner = sim.engine.inner if hasattr(sim.engine, "inner") else sim.engine
    for op in prefill.ops:
        assert float(p.intensity.sel(op=op.name)) == pytest.approx(inner.roofline(op)[0])
    ax = viz.plot_roofline(p)
    filled, hollow = ax.collections[:2]
    assert len(filled.get_offsets()) == int((~p.memory_bound.values & (p.flops.values > 0)).sum())
    assert len(hollow.get_offsets()) == int((p.memory_bound.values & (p.flops.values > 0)).sum())


def _pim_step(sub_batch):
    """One decode iteration of 16 requests with local PIM, with or without interleaving."""
    trace = Trace(arrival_at=np.zeros(16), num_prompt_tokens=np.full(16, 256),
                  num_output_tokens=np.ones(16, dtype=np.int64), source="16 x 256")
    cfg = SimConfig.from_flags(model_name="gpt3-6.7b", npu_num=2, npu_mem=40, gen=True,
                               pim_type="local", sub_batch=sub_batch)
    return Simulator(cfg, trace).step()


def test_npu_pim_overlap_needs_sub_batch_interleaving():
    serial = viz.npu_pim_intervals(_pim_step(False))
    interleaved = viz.npu_pim_intervals(_pim_step(True))
    for spans in (serial, interleaved):
        assert len(spans["npu"]) and len(spans["pim"])
        for key in ("npu", "pim", "both"):  # sorted, disjoint, positive length
            iv = spans[key]
            assert (iv[:, 1] > iv[:, 0]).all()
            assert (iv[1:, 0] >= iv[:-1, 1]).all()
    # without interleaving the NPU waits for PIM: they never run at once
    assert len(serial["both"]) == 0 and viz.overlap_fraction(serial) == 0.0
    # with it, most PIM time is hidden behind NPU work, and "both" lies inside each
    assert viz.overlap_fraction(interleaved) > 0.5
    both = interleaved["both"]
    for key in ("npu", "pim"):
        iv = interleaved[key]
        inside = [((iv[:, 0] <= a) & (b <= iv[:, 1])).any() for a, b in both]
        assert all(inside)


def test_npu_pim_overlap_plot_draws_the_intervals():
    ds = _pim_step(True)
    spans = viz.npu_pim_intervals(ds)
    _, ax = plt.subplots()
    assert viz.plot_npu_pim_overlap(ds, ax=ax, time_unit="us") is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == ["NPU", "PIM", "both"]
    for coll, key in zip(ax.collections, ("npu", "pim", "both")):
        assert len(coll.get_paths()) == len(spans[key])
    with pytest.raises(ValueError, match="device=7"):
        viz.npu_pim_intervals(ds, device=7)
    with pytest.raises(ValueError, match="node_unit"):
        viz.npu_pim_intervals(ds.drop_vars("node_unit"))
