"""The graph converter: an iteration's timings -> an execution graph.

For every pipeline stage ``s`` and micro-batch ``j`` the converter lays out,
in order, on the stage's devices::

    [MEM_STORE / MEM_LOAD of KV blocks]          (first micro-batch's deps)
    RECV activations from stage s-1              (s > 0)
    embed -> ALL_REDUCE                          (s == 0; vocab-parallel)
    for each layer of the stage:
        COMP input_norm..out_proj -> ALL_REDUCE  (tensor parallel only)
        COMP attn_residual..ffn_down -> ALL_REDUCE
        COMP ffn_residual
    final_norm, lm_head -> ALL_GATHER logits     (last stage)
    SEND activations to stage s+1                (s < last)

Consecutive operators between two collectives are one COMP node (the
per-operator times stay in the results' ``op_latency``); with no tensor
parallelism a whole layer is one node. A collective is one node whose
dependencies are every participating rank's previous node, so it starts when
the slowest rank arrives.

Symmetry: ranks of a stage that do identical work form an equivalence class,
and only the class's first device gets nodes (``ExecutionGraph.classes`` and
``multiplicity`` record whom it stands for; collectives keep the whole group,
so their cost is the real one). With ``attention="heads"`` all ranks of a
stage are one class. With ``attention="requests"`` (selective batching) a
rank's attention covers its own requests: ``... qkv_proj -> ALL_TO_ALL ->
attention of the rank's requests -> ALL_TO_ALL -> out_proj ...``, the attention
COMP node lists its requests, and ranks are grouped by their attention times
in every micro-batch (e.g. the ranks holding no request are one class). Every
stage has the same classes (request ``r`` sits on rank ``r % tp`` of every
stage), so rank ``i`` of stage ``s`` sends to rank ``i`` of stage ``s + 1``.
"""

from __future__ import annotations

import numpy as np

from ..engines.stack import IterationTrace, MicroBatchTiming
from ..models.ops import OpKind
from ..models.template import BlockTemplate
from ..parallel.layout import ParallelLayout
from ..parallel.sharding import row_parallel_ops
from .nodes import CollectiveType, ExecutionGraph, NodeType


class GraphConverter:
    """Builds one :class:`ExecutionGraph` per iteration.

    Parameters
    ----------
    layout : ParallelLayout
    template : BlockTemplate
        The per-device (sharded) template the trace was timed with.
    full_graph : bool
        Build nodes for every device even when ranks are symmetric (for
        checking the reduced graph; slower).
    """

    def __init__(self, layout: ParallelLayout, template: BlockTemplate, *,
                 full_graph: bool = False, kv_replication: int = 1) -> None:
        self.layout = layout
        self.template = template
        self.kv_replication = kv_replication
        self.full_graph = full_graph
        block = template.block
        self.dtype = template.dtype_bytes
        rows = row_parallel_ops(template)
        self.hidden = next((t.weight_n for t in block if t.name in rows),
                           max(t.width for t in block))
        # Segments: op index ranges of one layer ending at an all-reduce point.
        cuts = [i + 1 for i, t in enumerate(block) if t.name in rows] if layout.tp > 1 else []
        bounds = [0, *[c for c in cuts if c < len(block)], len(block)]
        self.segments = [(a, b, b in cuts) for a, b in zip(bounds[:-1], bounds[1:])]
        self.attn = [i for i, t in enumerate(block) if t.kind.is_attention]
        qkv = next((t for t in reversed(block[:self.attn[0]]) if t.kind is OpKind.GEMM), None) \
            if self.attn else None
        self.qkv_width = qkv.weight_n if qkv else self.hidden
        self.vocab = sum(t.weight_n for t in template.head if t.kind is OpKind.GEMM) * layout.tp
        self._classes: list[list[int]] = [[i] for i in range(layout.tp)]
        self.names = [t.name for t in block]
        # Per segment, the label of the ops it covers ("input_norm..out_proj").
        self._spans = [f"{self.names[a]}..{self.names[b - 1]}" if b - a > 1 else self.names[a]
                       for a, b, _ in self.segments]
        self._groups = [tuple(layout.stage_devices(s)) for s in range(layout.pp)]
        # Per kind of layer, which block ops it runs (an all-reduce follows an
        # op only in the layers that run it).
        self.kind_runs = [(template.kind_mask(k) > 0).tolist() for k in range(template.num_kinds)]

    def _rank_classes(self, trace: IterationTrace) -> list[list[int]]:
        """Rank indices grouped into classes of identical work (first = representative)."""
        tp = self.layout.tp
        if self.full_graph:
            return [[i] for i in range(tp)]
        if self.layout.attention == "heads" or tp == 1:
            return [list(range(tp))]
        groups: dict[tuple, list[int]] = {}
        for i in range(tp):
            signature = tuple(-1.0 if mb.attention_by_rank[i] is None
                              else mb.attention_by_rank[i]
                              for mb in trace.micro_batches)
            groups.setdefault(signature, []).append(i)
        return sorted(groups.values())

    def ranks(self, stage: int) -> list[int]:
        """Representative devices of the stage (one per class)."""
        base = stage * self.layout.tp
        return [base + c[0] for c in self._classes]

    # ----------------------------------------------------------------- build
    def _new_graph(self, trace: IterationTrace, evicted_bytes: float, reloaded_bytes: float
                   ) -> tuple[ExecutionGraph, dict[int, list[int]]]:
        """An empty graph with the iteration's rank classes (every stage has
        the same) and each representative's KV store / load nodes."""
        layout = self.layout
        g = ExecutionGraph(num_devices=layout.num_devices)
        self._classes = self._rank_classes(trace)
        for s in range(layout.pp):
            base = s * layout.tp
            for c in self._classes:
                g.classes[base + c[0]] = tuple(base + i for i in c)
                g.multiplicity[base + c[0]] = len(c)
        return g, self._memory_nodes(g, evicted_bytes, reloaded_bytes)

    def build(self, trace: IterationTrace, evicted_bytes: float = 0.0,
              reloaded_bytes: float = 0.0) -> ExecutionGraph:
        layout = self.layout
        g, mem_deps = self._new_graph(trace, evicted_bytes, reloaded_bytes)
        for j, mb in enumerate(trace.micro_batches):
            # Cumulative op times of one layer (per kind of layer: the ops it
            # runs): segment durations are differences.
            cums = [np.concatenate(([0.0], np.cumsum(latency))).tolist()
                    for latency in self.template.kind_latencies(mb.layer_op_latency)]
            recv: dict[int, int] = {}
            for s in range(layout.pp):
                ranks = self.ranks(s)
                prev = {r: [*mem_deps.get(r, ())] + ([recv[r]] if r in recv else [])
                        for r in ranks}
                if s == 0:
                    self._embedding(g, mb, j, ranks, prev)
                first = layout.first_layer(s)
                for layer in range(first, first + layout.stage_layers[s]):
                    kind = self.template.kind_of(layer)
                    self._layer(g, mb, j, s, layer, ranks, prev, cums[kind],
                                self.kind_runs[kind])
                if s == layout.pp - 1:
                    self._head(g, mb, j, s, ranks, prev)
                else:
                    recv = self._send(g, mb, j, s, ranks, prev)
        return g

    def kv_share(self, stage: int) -> float:
        """Fraction of the KV bytes moved to or from host that one rank of
        ``stage`` stores or loads (its layers' share, split over TP ranks, times
        ``kv_replication``: the ranks that hold the same KV heads, all of them
        for MLA's one latent, ``tp / num_kv_heads`` for GQA with fewer KV heads
        than ranks)."""
        layout = self.layout
        return (layout.stage_layers[stage] / sum(layout.stage_layers) / layout.tp
                * self.kv_replication)

    def _memory_nodes(self, g: ExecutionGraph, evicted: float, reloaded: float
                      ) -> dict[int, list[int]]:
        """KV bytes each device stores / loads: its share of every token's KV."""
        deps: dict[int, list[int]] = {}
        if not (evicted or reloaded):
            return deps
        for s in range(self.layout.pp):
            share = self.kv_share(s)
            for r in self.ranks(s):
                for kind, moved, label in ((NodeType.MEM_STORE, evicted, "kv_store"),
                                           (NodeType.MEM_LOAD, reloaded, "kv_load")):
                    if moved:
                        deps.setdefault(r, []).append(
                            g.add(kind, f"{label}.s{s}.d{r}", r, size=moved * share,
                                  stage=s, op=label))
        return deps

    def _collective(self, g, kind, name, ranks, prev, size, stage, **fields) -> None:
        group = self._groups[stage]
        deps = [d for r in ranks for d in prev[r]]
        node = g.add(NodeType.COMM_COLL, name, ranks[0], deps, collective=kind, group=group,
                     size=float(size), stage=stage, **fields)
        for r in ranks:
            prev[r] = [node]

    def _comp(self, g, name, r, duration, prev, **fields) -> None:
        prev[r] = [g.add(NodeType.COMP, name, r, prev[r], duration=float(duration), **fields)]

    def _embedding(self, g, mb: MicroBatchTiming, j, ranks, prev) -> None:
        for r in ranks:
            self._comp(g, f"embed.mb{j}", r, mb.embedding_latency, prev, stage=0,
                       micro_batch=j, op="embed")
        if self.layout.tp > 1:
            size = mb.batch.num_tokens * self.hidden * self.dtype
            self._collective(g, CollectiveType.ALL_REDUCE, f"embed.allreduce.mb{j}", ranks,
                             prev, size, 0, micro_batch=j, op="embed")

    def _layer(self, g, mb: MicroBatchTiming, j, s, layer, ranks, prev, cum,
               runs=None) -> None:
        names = self.names
        reduced_bytes = mb.batch.num_tokens * self.hidden * self.dtype
        for (a, b, reduce_after), span in zip(self.segments, self._spans):
            tag = dict(layer=layer, stage=s, micro_batch=j)
            if mb.attention_by_rank and self.attn and a <= self.attn[0] < b:
                self._selective_attention(g, mb, j, s, layer, ranks, prev, a, b, cum, names)
            else:
                for r in ranks:
                    self._comp(g, f"L{layer}.{span}.mb{j}", r, cum[b] - cum[a], prev, op=span,
                               **tag)
            if reduce_after and (runs is None or runs[b - 1]):  # the layer runs that op
                self._collective(g, CollectiveType.ALL_REDUCE,
                                 f"L{layer}.{names[b - 1]}.allreduce.mb{j}", ranks, prev,
                                 reduced_bytes, s, layer=layer,
                                 micro_batch=j, op=names[b - 1])

    def _selective_attention(self, g, mb, j, s, layer, ranks, prev, a, b, cum, names) -> None:
        first, last = self.attn[0], self.attn[-1] + 1
        tag = dict(layer=layer, stage=s, micro_batch=j)
        tokens = mb.batch.num_tokens
        if first > a:
            for r in ranks:
                self._comp(g, f"L{layer}.{names[a]}..{names[first - 1]}.mb{j}", r,
                           cum[first] - cum[a], prev, op=f"{names[a]}..{names[first - 1]}",
                           **tag)
        coll = dict(layer=layer, micro_batch=j)
        self._collective(g, CollectiveType.ALL_TO_ALL, f"L{layer}.qkv.alltoall.mb{j}", ranks,
                         prev, tokens * self.qkv_width * self.dtype, s, **coll, op="qkv")
        span = f"{names[first]}..{names[last - 1]}"
        tp = self.layout.tp
        for r in ranks:
            rank = r - s * tp
            seconds = mb.attention_by_rank[rank]
            mine = mb.batch.request_ids[mb.batch.request_ids % tp == rank]
            self._comp(g, f"L{layer}.attention.d{r}.mb{j}", r,
                       seconds if seconds is not None else 0.0, prev, op=span,
                       request_ids=tuple(mine.tolist()), **tag)
        width = self.template.block[first].num_heads * self.template.block[first].head_dim
        self._collective(g, CollectiveType.ALL_TO_ALL, f"L{layer}.context.alltoall.mb{j}",
                         ranks, prev, tokens * width * self.dtype, s, **coll, op="context")
        if b > last:
            for r in ranks:
                self._comp(g, f"L{layer}.{names[last]}..{names[b - 1]}.mb{j}", r,
                           cum[b] - cum[last], prev, op=f"{names[last]}..{names[b - 1]}", **tag)

    def _head(self, g, mb: MicroBatchTiming, j, s, ranks, prev) -> None:
        if not mb.has_head:
            return
        for r in ranks:
            self._comp(g, f"lm_head.mb{j}", r, mb.head_latency, prev, stage=s, micro_batch=j,
                       op="lm_head")
        if self.layout.tp > 1:
            rows = int(mb.batch.num_logit_tokens.sum())
            self._collective(g, CollectiveType.ALL_GATHER, f"logits.allgather.mb{j}", ranks,
                             prev, rows * self.vocab * self.dtype, s, micro_batch=j,
                             op="lm_head")

    def _send(self, g, mb: MicroBatchTiming, j, s, ranks, prev) -> dict[int, int]:
        """Rank i of stage s sends the activations to rank i of stage s+1."""
        size = float(mb.batch.num_tokens * self.hidden * self.dtype)
        recv = {}
        for r in ranks:
            peer = r + self.layout.tp
            send = g.add(NodeType.COMM_SEND, f"send.s{s}.d{r}.mb{j}", r, prev[r], size=size,
                         peer=peer, stage=s, micro_batch=j, op="activations")
            recv[peer] = g.add(NodeType.COMM_RECV, f"recv.s{s + 1}.d{peer}.mb{j}", peer,
                               [send], size=size, peer=r, stage=s + 1, micro_batch=j,
                               op="activations")
        return recv
