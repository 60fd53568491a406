"""Every public plot draws something readable, on a short run and on an hour-long one.

Rendered on the Agg backend: each figure must hold data artists, tick labels of
one axis must not overlap each other (their bounding boxes, computed by the
renderer), no axis may carry a detached offset / ``1e-6`` multiplier text, and a
legend must lie outside the axes (not over the data), inside the figure, and
clear of the title; titles and axis labels must lie inside the figure. Run
plots (throughput, latency, KV usage, batch, prefix hit rate, power, curves)
are drawn for a short run and for a run spanning an hour of simulated time
(few requests at a low rate: fast). Per-iteration plots (Gantt,
NPU/PIM overlap, execution graph, roofline, block table) are drawn for a small
iteration and for a large one (many requests in the batch).
"""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from llmsim_nb import SimConfig, Simulator, viz  # noqa: E402
from llmsim_nb.fidelity.throughput_curve import simulated_curve  # noqa: E402
from llmsim_nb.models.ops import BatchShape  # noqa: E402
from llmsim_nb.viz.gantt import MIN_BAR_FRACTION  # noqa: E402
from llmsim_nb.viz.throughput import MAX_PLOT_BUCKETS, nice_step  # noqa: E402
from llmsim_nb.workload import Trace  # noqa: E402
from llmsim_nb.workload.shared_prefix import shared_prefix_trace  # noqa: E402

HOUR = 3600.0


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _trace(n, span, prompt=64, output=16, seed=0):
    """``n`` requests arriving uniformly at random over ``0 .. span`` s."""
    rng = np.random.default_rng(seed)
    arrivals = np.sort(rng.uniform(0.0, span, n))
    arrivals[0] = 0.0
    return Trace(arrival_at=arrivals, num_prompt_tokens=rng.integers(prompt // 2, prompt, n),
                 num_output_tokens=rng.integers(output // 2, output, n), source="images")


def _prefix_trace(rate, seed=0):
    return shared_prefix_trace(2, 6, 256, 32, 8, rate=rate, rng=np.random.default_rng(seed))


PREFIX = dict(model_name="gpt2", scheduling="vllm-v1", enable_prefix_caching=True)


@pytest.fixture(scope="module")
def runs():
    """name -> (run Dataset, prefix-caching run Dataset): a short run and an hour-long one."""
    base = SimConfig.from_flags(model_name="gpt2", power=True)  # power on for plot_power
    short = Simulator(base, _trace(12, 0.05)).run()
    long = Simulator(base, _trace(40, HOUR)).run()
    prefix_short = Simulator(SimConfig.from_flags(**PREFIX), _prefix_trace(200.0)).run()
    prefix_long = Simulator(SimConfig.from_flags(**PREFIX), _prefix_trace(12 / HOUR)).run()
    assert float(long.t_end.max()) > HOUR * 0.9
    return {"short": (short, prefix_short), "long": (long, prefix_long)}


@pytest.fixture(scope="module")
def steps():
    """name -> (TP x PP step Dataset, PIM step Dataset, Simulator after the step)."""
    out = {}
    for name, n, prompt in (("short", 2, 32), ("long", 64, 512)):
        trace = Trace(arrival_at=np.zeros(n), num_prompt_tokens=np.full(n, prompt),
                      num_output_tokens=np.full(n, 4), source=f"{n} x {prompt}")
        sim = Simulator(SimConfig.from_flags(model_name="gpt2", npu_num=4, npu_group=2), trace)
        step = sim.step()
        pim_trace = Trace(arrival_at=np.zeros(n), num_prompt_tokens=np.full(n, prompt),
                          num_output_tokens=np.ones(n, dtype=np.int64), source="pim")
        pim = Simulator(SimConfig.from_flags(model_name="gpt3-6.7b", npu_num=2, npu_mem=40,
                                             gen=True, pim_type="local", sub_batch=True),
                        pim_trace).step()
        out[name] = (step, pim, sim)
    return out


# ------------------------------------------------------------------- the checks
def _has_data(ax) -> bool:
    return (any(len(line.get_xdata()) for line in ax.lines) or bool(ax.patches)
            or any(len(c.get_paths()) or len(c.get_offsets()) for c in ax.collections)
            or bool(ax.images))


def _visible_tick_labels(axis, renderer):
    """(text, bbox) of the drawn tick labels of ``axis``: visible, non-empty, in view."""
    lo, hi = sorted(axis.get_view_interval())
    out = []
    for locs, labels in ((axis.get_majorticklocs(), axis.get_majorticklabels()),
                         (axis.get_minorticklocs(), axis.get_minorticklabels())):
        for loc, label in zip(locs, labels):
            tol = 1e-9 * max(abs(lo), abs(hi), 1e-300)
            if label.get_visible() and label.get_text() and lo - tol <= loc <= hi + tol:
                out.append((label.get_text(), label.get_window_extent(renderer)))
    return out


def _overlap(a, b, slack=0.5) -> bool:
    """Whether two display-space boxes overlap by more than ``slack`` pixels."""
    return (min(a.x1, b.x1) - max(a.x0, b.x0) > slack
            and min(a.y1, b.y1) - max(a.y0, b.y0) > slack)


def _inside(box, page) -> bool:
    return (page.x0 - 1 <= box.x0 and box.x1 <= page.x1 + 1
            and page.y0 - 1 <= box.y0 and box.y1 <= page.y1 + 1)


def check_readable(fig) -> None:
    """The assertions every figure passes (see the module docstring)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert any(_has_data(ax) for ax in fig.axes), "nothing drawn"
    page = fig.bbox
    for ax in fig.axes:
        for text in (ax.title, ax.xaxis.label, ax.yaxis.label):
            if text.get_text():
                assert _inside(text.get_window_extent(renderer), page), \
                    f"{text.get_text()!r} is cut off"
        for axis in (ax.xaxis, ax.yaxis):
            assert axis.get_offset_text().get_text() == "", \
                f"offset text {axis.get_offset_text().get_text()!r} on {ax.get_title()!r}"
            labels = _visible_tick_labels(axis, renderer)
            for i, (text_a, box_a) in enumerate(labels):
                for text_b, box_b in labels[i + 1:]:
                    assert not _overlap(box_a, box_b), \
                        f"tick labels {text_a!r} and {text_b!r} overlap on {ax.get_title()!r}"
        legend = ax.get_legend()
        if legend is not None and fig.get_layout_engine() is not None:
            box = legend.get_window_extent(renderer)
            assert not _overlap(box, ax.get_window_extent(renderer)), "legend over the data"
            assert _inside(box, page), "legend cut off"
            if ax.get_title():
                assert not _overlap(box, ax.title.get_window_extent(renderer)), \
                    "legend over the title"


# -------------------------------------------------------------- every plot, twice
def _run_plots(ds, prefix):
    return {"plot_throughput": lambda: viz.plot_throughput(ds),
            "plot_latency_cdf": lambda: viz.plot_latency_cdf(ds),
            "plot_kv_usage": lambda: viz.plot_kv_usage(ds),
            "plot_batch_composition": lambda: viz.plot_batch_composition(ds),
            "plot_prefix_hit_rate": lambda: viz.plot_prefix_hit_rate(prefix),
            "plot_power": lambda: viz.plot_power(ds),
            "plot_curves": lambda: viz.plot_curves(simulated_curve(ds, 2 * viz.throughput_interval(
                ds)), simulated_curve(ds, 2 * viz.throughput_interval(ds)))}


def _step_plots(step, pim, sim):
    def roofline():
        block = sim.template.instantiate(BatchShape.from_lists([1] * 8, [256] * 8))[1]
        return viz.plot_roofline(viz.roofline_points(sim.engine, block))

    return {"plot_gantt": lambda: viz.plot_gantt(step),
            "plot_npu_pim_overlap": lambda: viz.plot_npu_pim_overlap(pim),
            "plot_execution_graph": lambda: viz.plot_execution_graph(sim.last_graph),
            "plot_roofline": roofline,
            "plot_block_table": lambda: viz.plot_block_table(sim.kv_cache)}


def test_the_image_tests_cover_every_public_plot():
    plots = {name for name in viz.__all__ if name.startswith("plot_")}
    covered = set(_run_plots(None, None)) | set(_step_plots(None, None, None))
    assert covered == plots


@pytest.mark.parametrize("length", ["short", "long"])
@pytest.mark.parametrize("name", sorted(_run_plots(None, None)))
def test_run_plots_are_readable(runs, name, length):
    ds, prefix = runs[length]
    out = _run_plots(ds, prefix)[name]()
    ax = out[0] if isinstance(out, (list, tuple, np.ndarray)) else out
    check_readable(ax.figure)


@pytest.mark.parametrize("length", ["short", "long"])
@pytest.mark.parametrize("name", sorted(_step_plots(None, None, None)))
def test_iteration_plots_are_readable(steps, name, length):
    ax = _step_plots(*steps[length])[name]()
    check_readable(ax.figure)


# ----------------------------------------------------------- what the plots choose
def test_an_hour_gets_a_few_hundred_buckets_not_thousands(runs):
    ds, _ = runs["long"]
    span = float(ds.t_end.max())
    interval = viz.throughput_interval(ds)
    # span / 200 is ~18 s: the next 1-2-5 step is 20 s, so 181 buckets instead of 7,201.
    assert interval == nice_step(span / MAX_PLOT_BUCKETS) == 20.0
    prompt, _ = viz.plot_throughput(ds).patches
    assert len(prompt.get_data().values) == math.ceil(span / interval)
    assert 50 <= len(prompt.get_data().values) <= MAX_PLOT_BUCKETS
    # An explicit width is honoured.
    prompt, _ = viz.plot_throughput(ds, interval=0.5).patches
    assert len(prompt.get_data().values) == math.ceil(span / 0.5)


def test_a_short_run_buckets_span_a_few_iterations(runs):
    ds, _ = runs["short"]
    busy = (ds.t_end - ds.t_start).values
    expected = nice_step(max(float(ds.t_end.max()) / MAX_PLOT_BUCKETS,
                             4 * float(np.median(busy[busy > 0]))))
    assert viz.throughput_interval(ds) == expected
    assert f"{expected:g} s buckets" in viz.plot_throughput(ds).get_title()


def test_nice_step_is_the_next_1_2_5_value():
    assert [nice_step(x) for x in (0.3, 0.5, 1.0, 1.01, 18.0, 7e-5, 3.0, 600.0)] == \
        [0.5, 0.5, 1.0, 2.0, 20.0, 1e-4, 5.0, 1000.0]
    with pytest.raises(ValueError, match="finite number > 0"):
        nice_step(0.0)
    with pytest.raises(ValueError, match="max_buckets must be an integer >= 1, got 0"):
        viz.throughput_interval(xr.Dataset({"t_end": ("iteration", [1.0])}), max_buckets=0)


def test_gantt_bars_have_a_minimum_width_and_collectives_are_drawn(steps):
    step, _, _ = steps["long"]
    ax = viz.plot_gantt(step)
    unit = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}[ax.get_xlabel().split("[")[1][:-1]]
    span = float(step.node_end_at.max()) / unit
    assert 1.0 <= span < 1000.0  # the automatic unit
    widths = [np.ptp(p.vertices[:, 0]) for c in ax.collections for p in c.get_paths()]
    assert min(widths) >= MIN_BAR_FRACTION * span * (1 - 1e-9)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "collective" in labels
    num_coll = int((step.node_type.values == "COMM_COLL_NODE").sum())
    drawn = sum(len(c.get_paths()) for c in ax.collections if c.get_label() == "collective")
    assert num_coll > 0 and drawn > 0
