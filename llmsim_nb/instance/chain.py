"""The chain shortcut: an iteration's makespan without building its graph.

On one pipeline stage running one micro-batch, without PIM units, with every
tensor-parallel rank doing the same work (heads placement) and, with more than
one rank, without congestion, an iteration's execution graph is a single chain:
the KV store and load to host, then the embedding, every layer's segments and
all-reduces, the head and the logits' all-gather, one after another.
:meth:`ChainShortcut.run` adds up the same durations in the same order as
``Network.run`` on the graph ``GraphConverter.build`` makes, so the result is
bit-identical (tested against stepping through the graph), at a fraction of
the cost. ``Instance.run`` uses it; ``Instance.step`` always builds the graph,
for its Gantt chart.
"""

from __future__ import annotations

import numpy as np

from ..graph.nodes import CollectiveType
from .usage import Usage

#: ``np.add.reduce``: what ``ndarray.sum()`` computes for a 1-d array, without
#: the method's Python-level wrapper (this runs every iteration).
_reduce = np.add.reduce


class ChainShortcut:
    """Adds up chain graphs (see the module docstring).

    Parameters
    ----------
    layout : ParallelLayout
    network : Network
    converter : GraphConverter
    has_pim : bool
        PIM units overlap the NPU, so their graphs are never chains.
    congestion : bool
        Congestion-aware links (whose flows the chain does not model).
    """

    def __init__(self, layout, network, converter, *, has_pim: bool, congestion: bool) -> None:
        self.layout = layout
        self.network = network
        self.converter = converter
        self.has_pim = has_pim
        self.congestion = congestion
        self._kv_share = converter.kv_share(0)

    def applies(self, trace) -> bool:
        """Whether the iteration timed in ``trace`` has a chain graph.

        One device with congestion is a chain too: its only transfers, the KV
        store and load, use the host link's two directions and never share.
        """
        layout = self.layout
        if self.has_pim or layout.pp > 1 or len(trace.micro_batches) > 1:
            return False
        return layout.tp == 1 or (layout.attention == "heads" and not self.congestion)

    def run(self, trace, plan, usage: Usage) -> tuple[float, float]:
        """Makespan and host-transfer time of the chain; busy time and link
        bytes go into ``usage`` as ``Network.run`` and ``Usage.add_schedule``
        would put them.

        The representative rank's KV store and load run at once from time 0;
        the embedding starts when both are done.
        """
        layout, network, conv = self.layout, self.network, self.converter
        tp = layout.tp
        transfer, host_bytes = 0.0, 0.0
        share = self._kv_share
        for moved in (plan.evicted_bytes, plan.reloaded_bytes):
            if moved:
                size = moved * share
                transfer = max(transfer, network.host_time(size))
                host_bytes += size * tp
        links: dict[str, float] = {"host": host_bytes} if host_bytes else {}
        mb = trace.micro_batches[0]
        embedding = mb.embedding_latency
        head = mb.head_latency if mb.has_head else None
        t = transfer + embedding
        busy = 0.0 + embedding
        # Segment durations as the converter takes them: differences of the
        # running sum of one layer's op latencies (from 0.0).
        template = conv.template
        num_layers = layout.stage_layers[0]
        if tp == 1 and not template.layer_kinds:  # one segment, no collectives
            a, b, _ = conv.segments[0]
            cum = [0.0, *mb.layer_op_latency.cumsum().tolist()]
            duration = cum[b] - cum[a]
            if not transfer:
                # Without a transfer t and busy start equal (0.0 + embedding;
                # transfer is never -0.0) and take the same additions, so
                # they stay equal: add once.
                for _ in range(num_layers):
                    t += duration
                if head is not None:
                    t += head
                busy = t
            else:
                for _ in range(num_layers):
                    t += duration
                    busy += duration
                if head is not None:
                    t += head
                    busy += head
            usage.device_busy[0] += busy
            if links:
                usage.add_link_bytes(links)
            return t, transfer
        reduce_size = mb.batch.num_tokens * conv.hidden * conv.dtype  # every all-reduce's
        group = range(tp)  # stage 0's devices

        def collective(kind, size) -> float:
            cost = network.collectives.cost(kind, float(size), tuple(group))
            for link, moved in cost.link_bytes.items():
                links[link] = links.get(link, 0.0) + moved
            return cost.duration

        if tp > 1:
            t += collective(CollectiveType.ALL_REDUCE, reduce_size)
        cum = [0.0, *mb.layer_op_latency.cumsum().tolist()]
        segments = [(cum[b] - cum[a], reduce_after) for a, b, reduce_after in conv.segments]
        if template.layer_kinds:  # layers of several kinds: each its own segments
            by_kind = []
            for latency, runs in zip(template.kind_latencies(mb.layer_op_latency),
                                     conv.kind_runs):
                kcum = [0.0, *np.cumsum(latency).tolist()]
                by_kind.append([(kcum[b] - kcum[a], reduce_after and runs[b - 1])
                                for a, b, reduce_after in conv.segments])
            for layer in range(num_layers):
                for duration, reduce_after in by_kind[template.kind_of(layer)]:
                    t += duration
                    busy += duration
                    if reduce_after:
                        t += collective(CollectiveType.ALL_REDUCE, reduce_size)
        else:
            for _ in range(num_layers):
                for duration, reduce_after in segments:
                    t += duration
                    busy += duration
                    if reduce_after:
                        t += collective(CollectiveType.ALL_REDUCE, reduce_size)
        if head is not None:
            t += head
            busy += head
            if tp > 1:
                rows = int(_reduce(mb.batch.num_logit_tokens))
                t += collective(CollectiveType.ALL_GATHER, rows * conv.vocab * conv.dtype)
        if tp == 1:
            usage.device_busy[0] += busy
        else:
            usage.device_busy[:tp] += busy
        usage.add_link_bytes(links)
        return t, transfer
