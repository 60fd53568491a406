"""Plots of simulation results (matplotlib is imported lazily, inside each function).

Every function takes the results (a Dataset, or the part it needs) and an
optional matplotlib ``ax``, and returns the Axes it drew on::

    from llmsim_nb import viz
    ds = sim.run()
    viz.plot_throughput(ds)            # prompt / generation tokens/s, buckets sized to the run
    viz.plot_latency_cdf(ds)           # TTFT, TPOT, E2E
    viz.plot_kv_usage(ds)              # KV usage and evictions over time
    viz.plot_prefix_hit_rate(ds)       # prefix-cache hit rate (prefix caching on)
    viz.plot_batch_composition(ds)     # prefill vs decode tokens per iteration
    viz.plot_power(ds)                 # watts per device over time (power on)
    viz.plot_block_table(sim.kv_cache) # which request holds which block
    viz.plot_gantt(sim.step())         # one iteration per device and link
    viz.plot_npu_pim_overlap(sim.step())  # NPU vs PIM busy time (PIM on)
    viz.plot_execution_graph(sim.last_graph)
    viz.plot_roofline(viz.roofline_points(engine, block))

The interactive :class:`~llmsim_nb.viz.dashboard.Dashboard` (ipywidgets) is in
:mod:`llmsim_nb.viz.dashboard`.

matplotlib is the ``notebooks`` extra: without it every plot function raises
``ImportError("... needs matplotlib: pip install 'llmsim_nb[notebooks]'")``
(:mod:`._axes`); the functions that only compute (``latency_cdf``,
``roofline_points``, ``gantt_rows``, ``prefix_hit_rate_over_time``,
``throughput_interval``...) work without it.

Figures made here use constrained layout, put legends outside the data, label
linear time and rate axes with SI prefixes (``2 ms``, ``150 k``: no detached
offset text), and draw Gantt bars at least a few pixels wide (docs/plots.md).
"""

from ._axes import needs_matplotlib
from .batch import plot_batch_composition
from .curves import plot_curves as _plot_curves
from .gantt import gantt_rows, plot_gantt, time_unit_for
from .graph import graph_layout, plot_execution_graph
from .kv import block_owner_grid, plot_block_table, plot_kv_usage
from .latency import latency_cdf, plot_latency_cdf
from .overlap import npu_pim_intervals, overlap_fraction, plot_npu_pim_overlap
from .power import plot_power, power_over_time
from .prefix import plot_prefix_hit_rate, prefix_hit_rate_over_time
from .roofline import plot_roofline, roofline_points
from .throughput import plot_throughput, throughput_interval

# plot_curves imports pyplot itself rather than through _axes.get_axes
plot_curves = needs_matplotlib(_plot_curves)

__all__ = ["block_owner_grid", "gantt_rows", "graph_layout", "latency_cdf",
           "plot_batch_composition", "plot_curves", "plot_block_table", "plot_execution_graph",
           "plot_gantt", "plot_kv_usage", "plot_latency_cdf", "plot_npu_pim_overlap",
           "plot_prefix_hit_rate", "plot_power", "power_over_time", "plot_roofline",
           "plot_throughput", "prefix_hit_rate_over_time", "roofline_points", "npu_pim_intervals",
           "overlap_fraction", "throughput_interval", "time_unit_for"]
