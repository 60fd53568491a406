"""Graph patterns: which ONNX nodes of a block make which simulator operator.

:func:`find_patterns` walks a :class:`~.graph.BlockGraph` and decides, node by
node, what the importer turns into an operator:

1. every node is *free* (a :data:`~.conventions.FREE_OPS` op, or computed from
   constants only), an *anchor* (:data:`~.conventions.ANCHOR_OPS`: one
   operator each) or *vector* (arithmetic to be clustered);
2. a ``MatMul``/``Gemm`` with a weight operand is a GEMM, and an ``Add`` of a
   weight onto its output is its bias (same operator); a ``MatMul`` between
   activations is attention, ``ATTN_CONTEXT`` when it reads a ``Softmax``;
3. an ``Add`` onto the residual stream (the hidden input, or an earlier
   residual add) is an operator of its own;
4. the remaining arithmetic nodes that feed each other are one cluster.

Free ops are looked through: the "origin" of a tensor is the set of non-free
nodes (or graph inputs) it is computed from by reshapes, transposes and the
like, so ``Reshape(MatMul(x, w))`` still comes from the GEMM.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from onnx import helper

from ..ops import OpKind
from .conventions import ANCHOR_OPS, FREE_OPS
from .graph import BlockGraph, UnionFind, node_desc


def _node_kinds(bg: BlockGraph) -> dict[int, str]:
    """``"free"``, ``"anchor"`` or ``"vector"`` for every node index (step 1)."""
    kind_of: dict[int, str] = {}
    for i, node in enumerate(bg.nodes):
        ins = [t for t in node.input if t]
        if node.op_type in FREE_OPS or all(not bg.is_act(t) for t in ins):
            kind_of[i] = "free"   # shape ops, and anything computed from constants only
        elif node.op_type in ANCHOR_OPS:
            kind_of[i] = "anchor"
        else:
            kind_of[i] = "vector"
    return kind_of


class BlockPatterns:
    """What each node of a block graph is, and the clusters they form.

    Built by :func:`find_patterns`; the importer reads the attributes.

    Attributes
    ----------
    bg : BlockGraph
    kind_of : dict of int to str
        Per node: ``"free"``, ``"anchor"``, ``"vector"``, or ``"bias"`` (an
        ``Add`` folded into its GEMM). Residual adds are ``"anchor"``.
    groups : UnionFind
        Nodes that form one operator share a root (a GEMM and its bias, an
        arithmetic cluster).
    gemm_info : dict of int to dict
        Per GEMM node: its weight's ``k`` and ``n`` and its ``params`` (bias
        elements).
    attn_nodes : dict of int to OpKind
        Activation-by-activation matmuls: ``ATTN_SCORE`` or ``ATTN_CONTEXT``.
    softmax_nodes : set of int
    residual : set of int
        ``Add`` nodes onto the residual stream.
    members : dict of int to list of int
        Group root -> its non-free nodes in file order.
    """

    def __init__(self, bg: BlockGraph):
        self.bg = bg
        self.kind_of = _node_kinds(bg)
        self.groups = UnionFind(len(bg.nodes))
        self._origin_cache: dict[str, frozenset] = {}
        self.gemm_info: dict[int, dict[str, Any]] = {}
        self.attn_nodes: dict[int, OpKind] = {}
        self.softmax_nodes: set[int] = set()
        self.residual: set[int] = set()
        self.members: dict[int, list[int]] = defaultdict(list)

    def origin(self, t: str) -> frozenset:
        """Groups (node roots) or graph inputs a tensor comes from, through free ops.

        Memoised: a node never becomes free or stops being free after
        :func:`_node_kinds`, so an origin found early stays right.
        """
        if t in self._origin_cache:
            return self._origin_cache[t]
        bg = self.bg
        if t not in bg.producer:
            res = frozenset({("input", t)})
        else:
            p = bg.producer[t]
            if self.kind_of[p] == "free":
                res = frozenset().union(*[self.origin(x) for x in bg.act_inputs(bg.nodes[p])])
            else:
                res = frozenset({("node", p)})
        self._origin_cache[t] = res
        return res

    def roots(self, t: str) -> set[int]:
        """Group roots of the nodes ``t`` comes from (not memoised: groups still merge)."""
        return {self.groups.find(x[1]) for x in self.origin(t) if x[0] == "node"}

    def downstream(self, t: str, seen: set[str] | None = None) -> set[int]:
        """Non-free consumers of ``t`` reached through free ops (-1 = graph output)."""
        bg = self.bg
        seen = set() if seen is None else seen
        if t in seen:
            return set()
        seen.add(t)
        out: set[int] = {-1} if t in bg.graph_outputs else set()
        for c in bg.consumers.get(t, []):
            if self.kind_of[c] == "free":
                for o in bg.nodes[c].output:
                    out |= self.downstream(o, seen)
            else:
                out.add(c)
        return out


def _find_matmuls(pt: BlockPatterns) -> None:
    """Step 2: GEMMs (with their weight shape), attention matmuls and softmaxes."""
    bg = pt.bg
    where = bg.where
    for i, node in enumerate(bg.nodes):
        if pt.kind_of[i] != "anchor":
            continue
        desc = node_desc(node, i)
        if node.op_type in ("MatMul", "Gemm"):
            a, b = node.input[0], node.input[1]
            attrs = {a_.name: helper.get_attribute_value(a_) for a_ in node.attribute}
            if node.op_type == "Gemm" and attrs.get("transA", 0):
                raise ValueError(f"{where}: {desc} has transA=1; only activations (rows of "
                                 f"tokens) @ weight is supported (allowed: transA=0)")
            adims, bdims = bg.shapes.get(a), bg.shapes.get(b)
            if not bg.is_act(b) or not bg.is_act(a):
                if not bg.is_act(a):
                    raise ValueError(f"{where}: {desc} multiplies a weight on the left; only "
                                     f"activations @ weight is supported")
                if not bdims or len(bdims) != 2 or not all(isinstance(x, int) for x in bdims):
                    raise ValueError(f"{where}: {desc}: weight {b!r} must be a static 2-D "
                                     f"tensor, got shape {bdims}")
                if 0 in bdims:
                    raise ValueError(f"{where}: {desc}: weight {b!r} has a zero-size dim "
                                     f"{bdims}; every dim of a weight must be >= 1")
                k_, n_ = bdims
                if node.op_type == "Gemm" and attrs.get("transB", 0):
                    k_, n_ = n_, k_
                if adims and isinstance(adims[-1], int) and adims[-1] != k_:
                    raise ValueError(f"{where}: {desc}: shapes do not multiply: activation "
                                     f"{a!r} has {adims[-1]} features but weight {b!r} "
                                     f"{bdims} has {k_} rows (allowed: equal)")
                params = bg.param_elements(node.input[2]) if (
                    node.op_type == "Gemm" and len(node.input) > 2 and node.input[2]) else 0
                pt.gemm_info[i] = dict(k=k_, n=n_, params=params)
            else:
                if (adims and bdims and len(bdims) >= 2 and isinstance(adims[-1], int)
                        and isinstance(bdims[-2], int) and adims[-1] != bdims[-2]):
                    raise ValueError(f"{where}: {desc}: shapes do not multiply: {a!r} ends in "
                                     f"{adims[-1]} but {b!r} has {bdims[-2]} rows")
                pt.attn_nodes[i] = OpKind.ATTN_SCORE  # refined in _refine_attention
        elif node.op_type == "Softmax":
            pt.softmax_nodes.add(i)


def _fold_biases(pt: BlockPatterns) -> None:
    """Step 2: an ``Add(gemm_out, weight)`` is the GEMM's bias, part of the GEMM."""
    bg = pt.bg
    for i, node in enumerate(bg.nodes):
        if node.op_type != "Add" or pt.kind_of[i] != "vector":
            continue
        acts = bg.act_inputs(node)
        params = [t for t in node.input if t and t in bg.const]
        if len(acts) == 1 and len(params) == 1 and bg.param_elements(params[0]) > 0:
            src = [x[1] for x in pt.origin(acts[0]) if x[0] == "node"]
            if len(src) == 1 and src[0] in pt.gemm_info and len(pt.origin(acts[0])) == 1:
                pt.gemm_info[src[0]]["params"] += bg.param_elements(params[0])
                pt.kind_of[i] = "bias"
                pt.groups.union(src[0], i)


def _refine_attention(pt: BlockPatterns) -> None:
    """Step 2: an attention matmul that reads a softmax is the context product."""
    bg = pt.bg
    for i in pt.attn_nodes:
        srcs = {x[1] for t in bg.act_inputs(bg.nodes[i]) for x in pt.origin(t)
                if x[0] == "node"}
        if srcs & pt.softmax_nodes:
            pt.attn_nodes[i] = OpKind.ATTN_CONTEXT


def _find_residuals(pt: BlockPatterns, hidden_in: str) -> None:
    """Step 3: an Add onto the residual stream (hidden input or earlier residual)."""
    bg = pt.bg
    for i, node in enumerate(bg.nodes):
        if node.op_type != "Add" or pt.kind_of[i] != "vector":
            continue
        acts = bg.act_inputs(node)
        if len(acts) != 2:
            continue
        # Rebuilt per node: a residual add found earlier extends the stream.
        stream = {("input", hidden_in)} | {("node", r) for r in pt.residual}
        if any(pt.origin(t) & stream for t in acts):
            pt.residual.add(i)
            pt.kind_of[i] = "anchor"


def _cluster(pt: BlockPatterns) -> None:
    """Step 4: join the remaining arithmetic nodes with their arithmetic neighbours."""
    bg = pt.bg
    for i, node in enumerate(bg.nodes):
        if pt.kind_of[i] != "vector":
            continue
        for t in bg.act_inputs(node):
            for x in pt.origin(t):
                if x[0] == "node" and pt.kind_of[x[1]] == "vector":
                    pt.groups.union(i, x[1])
    for i in range(len(bg.nodes)):
        if pt.kind_of[i] != "free":
            pt.members[pt.groups.find(i)].append(i)


def find_patterns(bg: BlockGraph, hidden_in: str) -> BlockPatterns:
    """Classify and cluster the nodes of ``bg`` (steps 1 to 4 of the module docstring).

    Parameters
    ----------
    bg : BlockGraph
    hidden_in : str
        The hidden-state graph input: where the residual stream starts.

    Returns
    -------
    BlockPatterns

    Raises
    ------
    ValueError
        For a matmul with a weight on the left (or a transposed activation), a
        weight that is not a static 2-D tensor of dims >= 1, or operands whose
        static dims do not multiply.
    """
    pt = BlockPatterns(bg)
    _find_matmuls(pt)
    _fold_biases(pt)
    _refine_attention(pt)
    _find_residuals(pt, hidden_in)
    _cluster(pt)
    return pt
