"""Indexes of one ONNX graph that the importer queries.

:class:`BlockGraph` runs shape inference once and answers the questions the
importer asks of every tensor: its static dims, whether it is a weight (or
a constant computed from weights) or a shape, which node produces it and which
consume it. :class:`UnionFind` is the clustering the importer does over node
indices, and :func:`op_label` names an operator after its node.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto, shape_inference

from .conventions import read_metadata


def _dims(vi: onnx.ValueInfoProto) -> list[int | None] | None:
    """Static dims of a value, ``None`` for a symbolic one; ``None`` if it has no shape."""
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def op_label(node: onnx.NodeProto) -> str | None:
    """The operator name a node stands for: the path part before the last.

    ``"qkv_proj/MatMul"`` and ``"/model/layers.0/self_attn/q_proj/MatMul"``
    give ``"qkv_proj"`` and ``"q_proj"``; a name without ``/`` is its own
    label, and an empty one gives ``None``.
    """
    parts = [p for p in node.name.split("/") if p]
    if len(parts) >= 2:
        return parts[-2]
    return parts[0] if parts else None


class BlockGraph:
    """Indexes of one ONNX graph that the importer queries.

    Parameters
    ----------
    model : onnx.ModelProto
        Shape inference runs on a copy; ``model`` is not changed.

    Attributes
    ----------
    graph : onnx.GraphProto
        The shape-inferred graph.
    nodes : list of onnx.NodeProto
        Its nodes, in file order (node indices below refer to this list).
    meta : dict of str to str
        The ``llmsim.*`` metadata.
    shapes, elem_types : dict
        Static dims (see :func:`_dims`) and element type of every named value.
    weight_sizes : dict of str to int
        Elements of every parameter: initializers, weight inputs and constants
        folded from them.
    graph_inputs : list of str
        Inputs that are not weights (activations, caches, masks, tables).
    graph_outputs : set of str
    producer : dict of str to int
        The node writing each tensor.
    consumers : dict of str to list of int
        The nodes reading each tensor.
    const : set of str
        Weights and tensors computed from weights and constants only.
    shape_t : set of str
        Shape-valued tensors (from ``Shape``/``Size``, or shapes and constants).

    Raises
    ------
    ValueError
        If ONNX shape inference fails on the graph.
    """

    def __init__(self, model: onnx.ModelProto):
        try:
            inferred = shape_inference.infer_shapes(model)
        except Exception as exc:  # noqa: BLE001 - onnx raises several error types
            raise ValueError(f"ONNX shape inference failed on this block: {exc}") from exc
        graph = inferred.graph
        self.graph = graph
        self.nodes = list(graph.node)
        self.meta = read_metadata(model)
        self.shapes: dict[str, list[int | None] | None] = {}
        self.elem_types: dict[str, int] = {}
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            self.shapes[vi.name] = _dims(vi)
            self.elem_types[vi.name] = vi.type.tensor_type.elem_type
        self.weight_sizes: dict[str, int] = {}
        for init in graph.initializer:
            self.shapes[init.name] = list(init.dims)
            self.elem_types[init.name] = init.data_type
            self.weight_sizes[init.name] = int(np.prod(init.dims, dtype=np.int64))
        init_names = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in init_names]
        marked = self.meta.get("weights")
        for vi in inputs:
            dims = self.shapes.get(vi.name)
            if marked is not None:
                is_weight = vi.name in set(marked.split(",")) or vi.doc_string == "weight"
            else:  # foreign file: a fully static input is a parameter
                is_weight = bool(dims) and all(isinstance(x, int) and x > 0 for x in dims)
            if is_weight:
                self.weight_sizes[vi.name] = int(np.prod(dims, dtype=np.int64))
        self.graph_inputs = [vi.name for vi in inputs if vi.name not in self.weight_sizes]
        self.graph_outputs = {o.name for o in graph.output}
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for i, node in enumerate(self.nodes):
            for out in node.output:
                self.producer[out] = i
            for inp in node.input:
                if inp:
                    self.consumers[inp].append(i)
        self.const: set[str] = set(self.weight_sizes)   # weights and constants
        self.shape_t: set[str] = set()                  # shape-valued tensors
        # One pass in file order suffices: ONNX requires nodes topologically sorted.
        for node in self.nodes:
            ins = [t for t in node.input if t]
            if node.op_type == "Constant" or (ins and all(t in self.const for t in ins)):
                self.const.update(node.output)
                for out in node.output:  # constant-folded weights keep their size
                    dims = self.shapes.get(out)
                    if out not in self.weight_sizes and dims and all(
                            isinstance(x, int) for x in dims):
                        self.weight_sizes[out] = int(np.prod(dims, dtype=np.int64))
            elif node.op_type in ("Shape", "Size") or (
                    ins and all(t in self.const or t in self.shape_t for t in ins)):
                self.shape_t.update(node.output)

    def is_act(self, name: str) -> bool:
        """Whether ``name`` is an activation: neither a parameter/constant nor a shape."""
        return bool(name) and name not in self.const and name not in self.shape_t

    def act_inputs(self, node: onnx.NodeProto) -> list[str]:
        """The activation inputs of ``node``."""
        return [t for t in node.input if self.is_act(t)]

    def width(self, name: str, what: str) -> int:
        """Elements per token row of ``name``: the product of its static dims.

        Token dims are symbolic (or 1), so they drop out of the product;
        ``what`` names the tensor in the error raised when it has no shape.
        """
        dims = self.shapes.get(name)
        if not dims:
            raise ValueError(f"cannot infer the shape of tensor {name!r} ({what}); give the "
                             f"graph static feature dims and symbolic token dims")
        return int(np.prod([x for x in dims if isinstance(x, int) and x > 0], dtype=np.int64))

    def param_elements(self, name: str) -> int:
        """Elements of a parameter tensor; scalars and integer constants count 0."""
        size = self.weight_sizes.get(name, 0)
        if size <= 1 or self.elem_types.get(name) in (TensorProto.INT64, TensorProto.INT32):
            return 0
        return size


class UnionFind:
    """Union-find over node indices ``0 .. n - 1``.

    A root is always the smallest index of its set, so a cluster's root is its
    first node in file order.
    """

    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]  # path halving
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)
