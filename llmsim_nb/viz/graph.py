"""Drawing an execution graph: nodes by device lane, in dependency order."""

from __future__ import annotations

from ._axes import get_axes, legend_outside
from .gantt import _COLOURS, _KIND_ORDER, _LABELS, ROW_KINDS


def graph_layout(graph) -> dict[int, tuple[float, float]]:
    """Positions for drawing ``graph``: x = dependency depth, y = (device, row kind) lane.

    The depth of a node is one more than its deepest dependency, so every edge
    points right; nodes of one device share a band, compute above network
    above host link.
    """
    depth: dict[int, int] = {}
    for n in graph.nodes:  # ids are topological (every dependency id is smaller)
        depth[n.id] = 1 + max((depth[d] for d in n.data_deps), default=-1)
    lanes = sorted({(n.device, ROW_KINDS[n.type.value]) for n in graph.nodes},
                   key=lambda p: (p[0], _KIND_ORDER.index(p[1])))
    lane = {p: i for i, p in enumerate(lanes)}
    return {n.id: (float(depth[n.id]), -float(lane[(n.device, ROW_KINDS[n.type.value])]))
            for n in graph.nodes}


def plot_execution_graph(graph, ax=None, node_size: float = 30.0):
    """Draw an :class:`~llmsim_nb.graph.nodes.ExecutionGraph` (``sim.last_graph``).

    Parameters
    ----------
    graph : ExecutionGraph
    ax : matplotlib Axes, optional
    node_size : float
        Marker area in points^2.

    Returns
    -------
    matplotlib Axes
        Nodes coloured by type as in :func:`~llmsim_nb.viz.plot_gantt`, edges
        for data dependencies, one lane per (device, compute / network / host
        link) labelled on the y axis.
    """
    import networkx as nx

    g = graph.to_networkx()
    pos = graph_layout(graph)
    ax = get_axes(ax, figsize=(9.0, 1.2 + 0.5 * len({p[1] for p in pos.values()})))
    nx.draw_networkx_edges(g, pos, ax=ax, width=0.4, alpha=0.5, arrowsize=5,
                           node_size=node_size)
    for t, colour in _COLOURS.items():
        ids = [n for n, data in g.nodes(data=True) if data["type"] == t]
        if ids:
            nx.draw_networkx_nodes(g, pos, nodelist=ids, node_color=colour, ax=ax,
                                   node_size=node_size, label=_LABELS[t])
    lanes = sorted({(n.device, ROW_KINDS[n.type.value]) for n in graph.nodes},
                   key=lambda p: (p[0], _KIND_ORDER.index(p[1])))
    ax.set_yticks([-i for i in range(len(lanes))], [f"NPU {d} {k}" for d, k in lanes])
    ax.tick_params(left=True, labelleft=True, bottom=True, labelbottom=True)
    ax.set_xlabel("dependency depth")
    ax.set_title(f"Execution graph: {len(graph)} nodes on {len(graph.devices)} devices"
                 + (" (symmetric devices simulated once)" if graph.is_reduced else ""))
    legend_outside(ax)
    return ax
