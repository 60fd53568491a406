"""The op templates of one decoder block, built from its patterns.

:class:`_BlockOps` turns each group that :mod:`.patterns` found (a GEMM,
attention, a residual add, a norm, a cluster of arithmetic) into an
:class:`~llmsim_nb.models.template.OpTemplate`, in file order, and records
what the embedding and head need (the first norm, whether a rotary embedding
was seen). Attention head counts come from the metadata or the static dims
of the first score matmul (:func:`_attention_geometry`).
"""

from __future__ import annotations

from collections import defaultdict

from ..ops import OpKind
from ..template import ACT_FLOPS, NORM_FLOPS, OpTemplate
from .conventions import META_PREFIX
from .graph import node_desc, op_label
from .metadata import _meta_int
from .patterns import BlockPatterns


def _attention_geometry(pt: BlockPatterns) -> dict[str, int] | None:
    """Head counts and size: metadata, else static dims of the first score matmul.

    The metadata's head size must agree with the query operand's last dim
    when that dim is static; either way the counts must be >= 1 and the KV
    heads must divide the query heads.
    """
    bg, meta = pt.bg, pt.bg.meta
    where = bg.where
    scores = [i for i, kd in pt.attn_nodes.items() if kd is OpKind.ATTN_SCORE]
    first = min(scores) if scores else None
    node = bg.nodes[first] if first is not None else None
    desc = node_desc(node, first) if node is not None else ""
    qdims = bg.shapes.get(node.input[0]) if node is not None else None
    q_hd = qdims[-1] if qdims and isinstance(qdims[-1], int) else None
    if all(k in meta for k in ("num_heads", "num_kv_heads", "head_dim")):
        geom = {k: _meta_int(meta, k, where) for k in ("num_heads", "num_kv_heads", "head_dim")}
        if q_hd is not None and q_hd != geom["head_dim"]:
            raise ValueError(f"{where}: metadata {META_PREFIX}head_dim={geom['head_dim']} "
                             f"contradicts the graph: the query operand {node.input[0]!r} of "
                             f"{desc} has head size {q_hd}")
    else:
        if node is None:
            return None
        if q_hd is None:
            raise ValueError(f"{where}: cannot infer head_dim from the query operand of "
                             f"{desc}; add {META_PREFIX}num_heads, num_kv_heads and head_dim "
                             f"metadata")
        q_w = bg.width(node.input[0], f"query of {desc}")
        k_w = bg.width(node.input[1], f"key of {desc}", feature_last=False)
        if q_w % q_hd or k_w % q_hd:
            raise ValueError(f"{where}: {desc}: query width {q_w} and key width {k_w} are not "
                             f"whole numbers of heads of size {q_hd}; add "
                             f"{META_PREFIX}num_heads, num_kv_heads and head_dim metadata")
        geom = dict(num_heads=q_w // q_hd, num_kv_heads=k_w // q_hd, head_dim=q_hd)
    if geom["num_heads"] % geom["num_kv_heads"]:
        raise ValueError(f"{where}: num_kv_heads={geom['num_kv_heads']} does not divide "
                         f"num_heads={geom['num_heads']} (attention of {desc or 'the block'})")
    return geom


class _BlockOps:
    """The block's op templates, built one group at a time in file order.

    Besides the templates it records what the embedding and head need: the
    first norm's kind and parameter count and whether a rotary embedding was
    seen.
    """

    def __init__(self, pt: BlockPatterns, hidden_in: str):
        self.pt = pt
        self.hidden_in = hidden_in
        self.attn_geom = _attention_geometry(pt)
        self.templates: list[OpTemplate] = []
        self.rope_ops: set[int] = set()   # positions in ``templates`` of rotary clusters
        self.rope_found = False
        self.norm_kind: str | None = None
        self.norm_params: int | None = None
        self._used: dict[str, int] = defaultdict(int)

    def label(self, i: int, default: str) -> str:
        """A unique op name for node ``i``: its label, suffixed ``_1``, ``_2`` on repeats."""
        nodes = self.pt.bg.nodes
        base = op_label(nodes[i]) or nodes[i].name or default
        self._used[base] += 1
        return base if self._used[base] == 1 else f"{base}_{self._used[base] - 1}"

    def _saw_norm(self, kind: str, params: int) -> None:
        # The first norm of the block stands for the model's final norm.
        self.norm_kind = self.norm_kind or kind
        self.norm_params = params if self.norm_params is None else self.norm_params

    def add_group(self, idxs: list[int]) -> None:
        """Append the template of one group (``idxs``: its nodes), if it costs anything."""
        pt, bg = self.pt, self.pt.bg
        first = min(idxs)
        node = bg.nodes[first]
        if first in pt.gemm_info:
            info = pt.gemm_info[first]
            self.templates.append(OpTemplate(self.label(first, "gemm"), OpKind.GEMM,
                                             weight_k=info["k"], weight_n=info["n"],
                                             param_elements=info["params"]))
        elif first in pt.attn_nodes or first in pt.softmax_nodes:
            if self.attn_geom is None:
                raise ValueError(f"{bg.where}: {node_desc(node, first)}: attention ops found "
                                 f"but no score MatMul to infer heads from")
            kind = pt.attn_nodes.get(first, OpKind.SOFTMAX)
            self.templates.append(OpTemplate(self.label(first, kind.value), kind,
                                             **self.attn_geom))
        elif first in pt.residual:
            out = node.output[0]
            self.templates.append(OpTemplate(self.label(first, "residual"), OpKind.ELEMENTWISE,
                                             width=bg.width(out, node_desc(node, first)),
                                             num_inputs=2))
        elif node.op_type in ("LayerNormalization", "RMSNormalization"):
            nk = "layernorm" if node.op_type == "LayerNormalization" else "rmsnorm"
            params = sum(bg.param_elements(t) for t in node.input[1:] if t)
            self._saw_norm(nk, params)
            self.templates.append(OpTemplate(self.label(first, "norm"), OpKind.NORM,
                                             width=bg.width(node.output[0],
                                                            node_desc(node, first)),
                                             flops_per_element=NORM_FLOPS[nk],
                                             param_elements=params))
        else:
            self._add_cluster(first, idxs)

    def _add_cluster(self, first: int, idxs: list[int]) -> None:
        """An arithmetic cluster: a norm, rotary, activation or other elementwise op."""
        pt, bg = self.pt, self.pt.bg
        nodes = bg.nodes
        member_set = set(idxs)
        types = [nodes[i].op_type for i in idxs]
        ext_in: set[str] = set()
        outs: set[str] = set()
        params = 0
        for i in idxs:
            for t in nodes[i].input:
                if not t:
                    continue
                if t in bg.const:
                    params += bg.param_elements(t)
                elif bg.is_act(t) and not (pt.roots(t) & {pt.groups.find(m) for m in member_set}):
                    ext_in.add(t)
            for t in nodes[i].output:
                if pt.downstream(t) - member_set:
                    outs.add(t)
        src_nodes = {x[1] for t in ext_in for x in pt.origin(t) if x[0] == "node"}
        if src_nodes and all(pt.attn_nodes.get(s) is OpKind.ATTN_SCORE or s in pt.softmax_nodes
                             for s in src_nodes):
            return  # scale / mask on the score matrix: part of the softmax's cost
        if not outs:
            return  # dead code
        side = {("input", x) for x in bg.graph_inputs if x != self.hidden_in}
        what = node_desc(nodes[first], first)
        # Norms, rotary embeddings and activations are feature-wide: their width must
        # be static. Other arithmetic (mask building, say) keeps the static dims only.
        featured = bool({"ReduceMean", "Neg", "Sin", "Cos", "Gelu", "Relu", "Sigmoid", "Tanh",
                         "Erf"} & set(types))
        width = sum(bg.width(t, what, feature_last=featured) for t in sorted(outs))
        # Token-shaped data read; side inputs such as cos/sin tables are not counted.
        in_width = sum(bg.width(t, what, feature_last=False) for t in sorted(ext_in)
                       if not pt.origin(t) <= side)
        if {"ReduceMean"} & set(types):
            # Layernorm takes the mean twice (of x and of its square) or subtracts it.
            nk = "layernorm" if ("Sub" in types or types.count("ReduceMean") >= 2) else "rmsnorm"
            self._saw_norm(nk, params)
            self.templates.append(OpTemplate(self.label(first, "norm"), OpKind.NORM,
                                             width=width, flops_per_element=NORM_FLOPS[nk],
                                             param_elements=params))
        elif {"Neg", "Sin", "Cos"} & set(types):
            self.rope_found = True
            self.rope_ops.add(len(self.templates))
            self.templates.append(OpTemplate(self.label(first, "rope"), OpKind.ELEMENTWISE,
                                             width=width, flops_per_element=3.0))
        elif {"Gelu", "Relu", "Sigmoid", "Tanh", "Erf"} & set(types):
            if "Relu" in types:
                flops = ACT_FLOPS["relu"]
            elif "Sigmoid" in types:
                flops = ACT_FLOPS["swiglu"]
            else:
                flops = ACT_FLOPS["gelu"]
            num_inputs = max(1, round(in_width / width)) if width else 1
            self.templates.append(OpTemplate(self.label(first, "activation"),
                                             OpKind.ACTIVATION, width=width,
                                             num_inputs=num_inputs, flops_per_element=flops,
                                             param_elements=params))
        else:
            num_inputs = max(1, round(in_width / width)) if width else 1
            self.templates.append(OpTemplate(self.label(first, "elementwise"),
                                             OpKind.ELEMENTWISE, width=width,
                                             num_inputs=num_inputs,
                                             flops_per_element=float(len(idxs)),
                                             param_elements=params))

    def block(self) -> list[OpTemplate]:
        """The templates, adjacent rotary clusters (q then k) merged into one op, as in
        :func:`~llmsim_nb.models.decoder.decoder_template`."""
        block: list[OpTemplate] = []
        prev_rope = False
        for pos_, t in enumerate(self.templates):
            is_rope = pos_ in self.rope_ops
            if is_rope and prev_rope:
                prev = block.pop()
                t = OpTemplate(prev.name, OpKind.ELEMENTWISE, width=prev.width + t.width,
                               flops_per_element=3.0)
            block.append(t)
            prev_rope = is_rope
        return block
