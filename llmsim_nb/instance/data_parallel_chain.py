"""The chain shortcut under attention data parallelism.

With one pipeline stage, one micro-batch, no PIM and no congestion, the
graph :class:`~llmsim_nb.graph.data_parallel.DataParallelGraphConverter`
builds is one chain of nodes per rank that meet at every all-to-all: a rank's
node starts when its previous one ends, and a collective starts when the last
rank arrives. :meth:`DataParallelChain.run` adds the same durations in the
same order with one clock per rank (a vector), taking the maximum at each
collective, so the makespan, busy times and link bytes are bit-identical to
``Network.run`` on the graph (tested), without building it.
"""

from __future__ import annotations

from operator import add

import numpy as np

from ..graph.data_parallel import all_to_all_buffer
from ..graph.nodes import CollectiveType
from .chain import ChainShortcut
from .usage import Usage


class DataParallelChain(ChainShortcut):
    """Adds up data-parallel graphs (see the module docstring)."""

    _kinds: list[int] | None = None
    _order: np.ndarray | None = None  # segment rows of the stage's layers, in order

    def applies(self, trace) -> bool:
        return not (self.has_pim or self.congestion or self.layout.pp > 1
                    or len(trace.micro_batches) > 1)

    def run(self, trace, plan, usage: Usage) -> tuple[float, float]:
        """Makespan and host-transfer time; busy time and link bytes go into ``usage``."""
        layout, network, conv = self.layout, self.network, self.converter
        tp = layout.tp
        mb = trace.micro_batches[0]
        group = tuple(range(tp))
        links: dict[str, float] = {}
        # KV store and load of each rank start at 0; its first node waits for both.
        transfer = 0.0
        moved = [m * self._kv_share for m in (plan.evicted_bytes, plan.reloaded_bytes) if m]
        if moved:
            # Host bytes as the graph's memory nodes add them: per class, its
            # store then its load, times the class's size.
            host = 0.0
            for members in conv._rank_classes(trace):
                for size in moved:
                    host += size * len(members)
            links["host"] = host
            transfer = max(network.host_time(size) for size in moved)
        size = all_to_all_buffer(mb.dispatch_tokens * float(conv.hidden * conv.dtype))
        cost = network.collectives.cost(CollectiveType.ALL_TO_ALL, float(size), group)

        ranks = mb.ranks
        template = conv.template
        if self._kinds is None:  # the stage's layers' kinds, in order (fixed for a run)
            self._kinds = [template.kind_of(layer) for layer in range(layout.stage_layers[0])]
        emb = [r.embedding_latency if r is not None and r.batch.num_tokens else 0.0
               for r in ranks]
        head = [r.head_latency if r is not None and r.has_head else 0.0 for r in ranks]
        # Per kind of layer: per segment, each rank's seconds (0 for a rank
        # without nodes), their maximum, and whether an all-to-all follows.
        n_ops = len(template.block)
        layers = np.array([np.zeros(n_ops) if r is None else r.layer_op_latency for r in ranks])
        by_kind, matrix = [], []
        for kind, segments in enumerate(conv.kind_segments):
            # Running sums per rank, as the converter takes them (a row of
            # zeros for a rank without nodes: zero seconds everywhere).
            latency = layers * template.kind_mask(kind) if template.layer_kinds else layers
            cums = np.concatenate((np.zeros((len(ranks), 1)), np.cumsum(latency, axis=1)),
                                  axis=1)
            rows = [cums[:, b] - cums[:, a] for a, b, _ in segments]
            matrix += rows
            by_kind.append([(row.tolist(), float(row.max()), after is not None)
                            for row, (_, _, after) in zip(rows, segments)])
        # Busy time: each rank's durations added in node order (a cumulative
        # sum adds one row after the other, as the event loop's busy sum does):
        # the segment rows in the stage's layer order, between embedding and head.
        if self._order is None:
            firsts = np.cumsum([0] + [len(k) for k in by_kind])
            self._order = np.array([firsts[kind] + j for kind in self._kinds
                                    for j in range(len(by_kind[kind]))], dtype=np.int64)
        steps = np.concatenate(([emb], np.array(matrix)[self._order], [head]))
        busy = np.cumsum(steps, axis=0)[-1]
        # Clocks: one per rank (a list), or one for all (``common``) right after
        # an all-to-all. From a common clock T a segment ending at a collective
        # needs no list: rounding is monotonic, so max_r fl(T + d_r) = fl(T + max_r d_r).
        clock = [transfer + e for e in emb]
        common = 0.0
        meetings = 0
        for kind in self._kinds:
            for row, longest, meet in by_kind[kind]:
                if meet:
                    arrive = common + longest if clock is None else max(map(add, clock, row))
                    common, clock = arrive + cost.duration, None
                    meetings += 1
                elif clock is None:
                    clock = [common + d for d in row]
                else:
                    clock = list(map(add, clock, row))
        makespan = common + max(head) if clock is None else max(map(add, clock, head))
        for _ in range(meetings):  # link bytes added collective by collective, as the graph's
            for link, moved_bytes in cost.link_bytes.items():
                links[link] = links.get(link, 0.0) + moved_bytes
        usage.device_busy[:tp] += busy
        usage.add_link_bytes(links)
        return makespan, transfer


__all__ = ["DataParallelChain"]
