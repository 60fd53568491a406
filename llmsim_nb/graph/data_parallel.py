"""The graph converter under attention data parallelism (MoE models).

Each rank of a stage runs its own requests (see
:mod:`llmsim_nb.engines.data_parallel`), so every rank gets its own chain of
nodes; per micro-batch ``j`` and stage ``s``::

    [MEM_STORE / MEM_LOAD of the rank's share of KV]
    RECV activations of the rank's tokens from stage s-1      (s > 0)
    embed (its own tokens; no collective)                     (s == 0)
    for each layer of the stage:
        dense layer:  COMP the whole layer
        MoE layer:    COMP input_norm..(op before the experts)
                      ALL_TO_ALL dispatch                     (the whole group)
                      COMP the routed experts' grouped GEMMs (the tokens it received)
                      ALL_TO_ALL combine                      (the whole group)
                      COMP the rest (the weighted combine, the residual)
    final_norm, lm_head (its own logits; no all-gather)       (last stage)
    SEND activations of the rank's tokens to stage s+1        (s < last)

A collective depends on every rank's previous node, so the group meets there:
the slowest rank sets the MoE layer's start, the rank with the most routed
rows its end. Ranks that hold no request and receive no routed token have no
COMP nodes but still take part in the collectives.

The dispatch moves uneven bytes between ranks (``dispatch_tokens[i, j]`` routed
rows of ``hidden`` elements from rank ``i`` to rank ``j``). The network prices
a uniform all-to-all of ``S`` bytes per device, in which each device sends and
receives ``(p - 1) S / p`` bytes; the node carries the ``S`` whose busiest
device moves as much as the busiest device of the real exchange
(:func:`all_to_all_buffer`). On a switch with the default ``direct`` algorithm
that is exact (a port's bytes over its bandwidth, plus one step's latency);
on a full mesh, where each pair has its own link, the busiest pair can be
slower than that, and a ring forwards; those are approximations. The combine
is the transposed exchange, so it has the same busiest device and size.

Ranks with identical work (identical timings) are one class, as elsewhere.
"""

from __future__ import annotations

import numpy as np

from ..engines.stack import IterationTrace
from .builder import GraphConverter
from .nodes import CollectiveType, ExecutionGraph, NodeType


def all_to_all_buffer(peer_bytes: np.ndarray) -> float:
    """The per-device buffer ``S`` of a uniform all-to-all whose busiest device
    sends or receives as many bytes over the network as the busiest device of
    the exchange ``peer_bytes[i, j]`` (bytes from ``i`` to ``j``; the diagonal
    stays on its device): ``S = p / (p - 1) * max(most sent, most received)``."""
    p = len(peer_bytes)
    if p < 2:
        return 0.0
    off = np.asarray(peer_bytes, dtype=np.float64).copy()
    np.fill_diagonal(off, 0.0)
    busiest = max(float(off.sum(axis=1).max()), float(off.sum(axis=0).max()))
    return busiest * p / (p - 1)


class DataParallelGraphConverter(GraphConverter):
    """Builds execution graphs from :class:`~llmsim_nb.engines.data_parallel.DataParallelStack`
    traces (see the module docstring).

    Parameters
    ----------
    layout : ParallelLayout
        ``attention="data"``.
    template : BlockTemplate
        One rank's template (whole weights but for the routed experts).
    full_graph : bool
        Nodes for every rank even when some have identical work.
    """

    def __init__(self, layout, template, *, full_graph: bool = False) -> None:
        super().__init__(layout, template, full_graph=full_graph)
        block = template.block
        experts = [i for i, t in enumerate(block) if t.num_experts]
        if not experts:
            raise ValueError(f"attention data parallelism needs routed experts; template "
                             f"{template.name!r} has none")
        first, last = experts[0], experts[-1] + 1
        n = len(block)
        # Per kind of layer: (first op, end op, all-to-all after it or None).
        self.kind_segments = []
        for runs in self.kind_runs:
            if any(runs[first:last]):
                self.kind_segments.append([(0, first, "dispatch"), (first, last, "combine"),
                                           (last, n, None)])
            else:
                self.kind_segments.append([(0, n, None)])
        self._labels = {(a, b): f"{self.names[a]}..{self.names[b - 1]}" if b - a > 1
                        else self.names[a] for segs in self.kind_segments for a, b, _ in segs}

    def _rank_classes(self, trace: IterationTrace) -> list[list[int]]:
        tp = self.layout.tp
        if self.full_graph or tp == 1:
            return [[i] for i in range(tp)]
        groups: dict[tuple, list[int]] = {}
        for i in range(tp):
            signature = tuple(None if mb.ranks[i] is None else
                              (mb.ranks[i].embedding_op_latency.tobytes(),
                               mb.ranks[i].layer_op_latency.tobytes(),
                               mb.ranks[i].head_op_latency.tobytes(),
                               mb.ranks[i].batch.num_tokens)
                              for mb in trace.micro_batches)
            groups.setdefault(signature, []).append(i)
        return sorted(groups.values())

    def build(self, trace: IterationTrace, evicted_bytes: float = 0.0,
              reloaded_bytes: float = 0.0) -> ExecutionGraph:
        layout = self.layout
        g, mem_deps = self._new_graph(trace, evicted_bytes, reloaded_bytes)
        row_bytes = self.hidden * self.dtype
        for j, mb in enumerate(trace.micro_batches):
            size = all_to_all_buffer(mb.dispatch_tokens * float(row_bytes))
            # Per rank (index in the group) and kind of layer: running sums of
            # one layer's op seconds; segment durations are differences.
            cums = {i: [np.concatenate(([0.0], np.cumsum(latency))).tolist()
                        for latency in self.template.kind_latencies(rank.layer_op_latency)]
                    for i, rank in enumerate(mb.ranks) if rank is not None}
            recv: dict[int, int] = {}
            for s in range(layout.pp):
                ranks = self.ranks(s)
                prev = {r: [*mem_deps.get(r, ())] + ([recv[r]] if r in recv else [])
                        for r in ranks}
                own = {r: mb.ranks[r - s * layout.tp] for r in ranks}
                if s == 0:
                    for r in ranks:
                        if own[r] is not None and own[r].batch.num_tokens:
                            self._comp(g, f"embed.d{r}.mb{j}", r, own[r].embedding_latency,
                                       prev, stage=0, micro_batch=j, op="embed")
                first = layout.first_layer(s)
                for layer in range(first, first + layout.stage_layers[s]):
                    kind = self.template.kind_of(layer)
                    self._rank_layer(g, j, s, layer, ranks, prev, own, cums, kind, size)
                if s == layout.pp - 1:
                    for r in ranks:
                        if own[r] is not None and own[r].has_head:
                            self._comp(g, f"lm_head.d{r}.mb{j}", r, own[r].head_latency, prev,
                                       stage=s, micro_batch=j, op="lm_head")
                else:
                    recv = self._rank_send(g, j, s, ranks, prev, own, row_bytes)
        return g

    def _rank_layer(self, g, j, s, layer, ranks, prev, own, cums, kind, size) -> None:
        tp = self.layout.tp
        tag = dict(layer=layer, stage=s, micro_batch=j)
        for a, b, after in self.kind_segments[kind]:
            label = self._labels[(a, b)]
            for r in ranks:
                if own[r] is None:
                    continue
                cum = cums[r - s * tp][kind]
                self._comp(g, f"L{layer}.{label}.d{r}.mb{j}", r, cum[b] - cum[a], prev,
                           op=label, **tag)
            if after is not None:
                self._collective(g, CollectiveType.ALL_TO_ALL, f"L{layer}.{after}.mb{j}",
                                 ranks, prev, size, s, layer=layer, micro_batch=j, op=after)

    def _rank_send(self, g, j, s, ranks, prev, own, row_bytes) -> dict[int, int]:
        """Rank i of stage s sends its own tokens' activations to rank i of stage s+1."""
        recv = {}
        for r in ranks:
            if own[r] is None or own[r].batch.num_tokens == 0:
                continue
            size = float(own[r].batch.num_tokens * row_bytes)
            peer = r + self.layout.tp
            send = g.add(NodeType.COMM_SEND, f"send.s{s}.d{r}.mb{j}", r, prev[r], size=size,
                         peer=peer, stage=s, micro_batch=j, op="activations")
            recv[peer] = g.add(NodeType.COMM_RECV, f"recv.s{s + 1}.d{peer}.mb{j}", peer,
                               [send], size=size, peer=r, stage=s + 1, micro_batch=j,
                               op="activations")
        return recv


__all__ = ["DataParallelGraphConverter", "all_to_all_buffer"]
