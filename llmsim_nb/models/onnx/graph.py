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

from .conventions import META_PREFIX, default_opset, one_line, read_metadata


_FLOAT_TYPES = frozenset({TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.FLOAT,
                          TensorProto.DOUBLE})


def _show_dims(dims: list[int | None]) -> str:
    return "[" + ", ".join("?" if x is None else str(x) for x in dims) + "]"


def _dims(vi: onnx.ValueInfoProto) -> list[int | None] | None:
    """Static dims of a value, ``None`` for a symbolic one; ``None`` if it has no shape."""
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def node_desc(node: onnx.NodeProto, index: int) -> str:
    """How messages name a node: ``node 'name' (MatMul)``, or by index when unnamed."""
    if node.name:
        return f"node {node.name!r} ({node.op_type})"
    outs = [o for o in node.output if o]
    return (f"node #{index} ({node.op_type}"
            + (f", output {outs[0]!r})" if outs else ")"))


def check_nodes(model: onnx.ModelProto, where: str) -> None:
    """Refuse a graph the importer cannot walk, naming the node.

    Every node must have the input and output counts its op's schema allows;
    every input must be a graph input, an initializer or the output of an
    *earlier* node (ONNX requires nodes in topological order, which also rules
    out cycles); no tensor may be produced twice; every graph output must be
    produced. Op types are checked first by the importer, so every node here
    has a default-domain schema.
    """
    graph = model.graph
    opset = default_opset(model)
    if not graph.node:
        raise ValueError(f"{where}: the graph has no nodes (an empty block)")
    later: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for out in node.output:
            if out:
                later.setdefault(out, i)
    known = {vi.name for vi in graph.input} | {t.name for t in graph.initializer}
    for i, node in enumerate(graph.node):
        desc = node_desc(node, i)
        try:
            schema = onnx.defs.get_schema(node.op_type, opset, "")
        except onnx.defs.SchemaError:
            raise ValueError(f"{where}: {desc}: op {node.op_type!r} does not exist in opset "
                             f"{opset}") from None
        n_in, n_out = len(node.input), len(node.output)
        if not schema.min_input <= n_in <= schema.max_input:
            raise ValueError(f"{where}: {desc} has {n_in} inputs; {node.op_type} takes "
                             f"{schema.min_input}..{schema.max_input}")
        if not max(schema.min_output, 1) <= n_out <= schema.max_output:
            raise ValueError(f"{where}: {desc} has {n_out} outputs; {node.op_type} gives "
                             f"{max(schema.min_output, 1)}..{schema.max_output}")
        if any(a.g.node or a.graphs for a in node.attribute):
            raise ValueError(f"{where}: {desc} has a subgraph attribute; subgraphs are not "
                             f"supported")
        for inp in node.input:
            if not inp or inp in known:
                continue
            if inp in later:
                producer = node_desc(graph.node[later[inp]], later[inp])
                raise ValueError(f"{where}: {desc} reads {inp!r} before {producer} produces "
                                 f"it: the graph has a cycle or its nodes are not in "
                                 f"topological order (ONNX requires that order)")
            raise ValueError(f"{where}: {desc} reads {inp!r}, which is not a graph input, an "
                             f"initializer or the output of any node")
        for out in node.output:
            if not out:
                continue
            if out in known:
                raise ValueError(f"{where}: {desc} writes {out!r}, which is already a graph "
                                 f"input, an initializer or the output of an earlier node")
            known.add(out)
    for vi in graph.output:
        if vi.name not in known:
            raise ValueError(f"{where}: graph output {vi.name!r} is not produced by any node")


def _matmul_mismatch(model: onnx.ModelProto, where: str) -> str | None:
    """Name the first MatMul/Gemm whose static operand dims do not multiply, if any.

    Called when strict shape inference has failed, to say which operands and
    dims disagree rather than only which node; ``None`` if no such node is found.
    """
    try:
        graph = shape_inference.infer_shapes(model).graph
    except Exception:  # noqa: BLE001 - the strict error is reported instead
        return None
    shapes = {vi.name: _dims(vi) for vi in list(graph.input) + list(graph.value_info)}
    shapes.update({t.name: list(t.dims) for t in graph.initializer})
    for i, node in enumerate(graph.node):
        if node.op_type not in ("MatMul", "Gemm") or len(node.input) < 2:
            continue
        a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
        if not a or not b:
            continue
        attrs = {x.name: onnx.helper.get_attribute_value(x) for x in node.attribute}
        if node.op_type == "Gemm":
            if len(a) != 2 or len(b) != 2:
                continue
            ka = a[0] if attrs.get("transA", 0) else a[-1]
            kb = b[1] if attrs.get("transB", 0) else b[0]
        else:
            ka, kb = a[-1], (b[-2] if len(b) >= 2 else b[0])
        if isinstance(ka, int) and isinstance(kb, int) and ka != kb:
            return (f"{where}: {node_desc(node, i)}: shapes do not multiply: "
                    f"{node.input[0]!r} {_show_dims(a)} by {node.input[1]!r} "
                    f"{_show_dims(b)} ({ka} != {kb})")
    return None


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
    where : str
        How error messages name the file or model.

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
        If ONNX shape inference (strict: contradictions are errors) fails on
        the graph, a dim is negative or a graph input or float initializer
        has a zero-size dim, or ``llmsim.weights`` names a tensor that is not a
        graph input or whose shape is not static.
    """

    def __init__(self, model: onnx.ModelProto, where: str = "ONNX model"):
        self.where = where
        try:
            inferred = shape_inference.infer_shapes(model, strict_mode=True)
        except Exception as exc:  # noqa: BLE001 - onnx raises several error types
            raise ValueError(_matmul_mismatch(model, where) or
                             f"{where}: ONNX shape inference failed (the shapes of the graph "
                             f"contradict each other): {one_line(exc)}") from None
        graph = inferred.graph
        self.graph = graph
        self.nodes = list(graph.node)
        self.meta = read_metadata(model)
        self.shapes: dict[str, list[int | None] | None] = {}
        self.elem_types: dict[str, int] = {}
        input_names = {vi.name for vi in graph.input}
        for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
            dims = _dims(vi)
            if dims and any(x is not None and x < 0 for x in dims):
                raise ValueError(f"{where}: tensor {vi.name!r} has a negative dim {dims}")
            if dims and vi.name in input_names and 0 in dims:
                raise ValueError(f"{where}: graph input {vi.name!r} has a zero-size dim "
                                 f"{dims}; every static dim must be >= 1")
            self.shapes[vi.name] = dims
            self.elem_types[vi.name] = vi.type.tensor_type.elem_type
        self.weight_sizes: dict[str, int] = {}
        for init in graph.initializer:
            dims = list(init.dims)
            if any(x < 0 for x in dims) or (0 in dims and init.data_type in _FLOAT_TYPES):
                raise ValueError(f"{where}: initializer {init.name!r} has shape {dims}; every "
                                 f"dim of a weight must be >= 1")
            self.shapes[init.name] = dims
            self.elem_types[init.name] = init.data_type
            self.weight_sizes[init.name] = int(np.prod(dims, dtype=np.int64))
        init_names = {i.name for i in graph.initializer}
        inputs = [i for i in graph.input if i.name not in init_names]
        marked = self.meta.get("weights")
        if marked is not None:
            listed = [w for w in marked.split(",") if w]
            known = {vi.name for vi in inputs} | init_names
            stray = [w for w in listed if w not in known]
            if stray:
                raise ValueError(f"{where}: {META_PREFIX}weights names {stray[:3]} "
                                 f"{'...' if len(stray) > 3 else ''}which "
                                 f"{'is' if len(stray) == 1 else 'are'} neither a graph input "
                                 f"nor an initializer; the metadata contradicts the graph")
            marked_set = set(listed)
        for vi in inputs:
            dims = self.shapes.get(vi.name)
            if marked is not None:
                is_weight = vi.name in marked_set or vi.doc_string == "weight"
                if is_weight and not (dims and all(isinstance(x, int) for x in dims)):
                    raise ValueError(f"{where}: weight input {vi.name!r} has shape {dims}; a "
                                     f"weight needs a static shape (every dim an integer "
                                     f">= 1)")
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

    def width(self, name: str, what: str, *, feature_last: bool = True) -> int:
        """Elements per token row of ``name``: the product of its static dims.

        Token dims are symbolic (or 1), so they drop out of the product;
        ``what`` names the tensor (and node) in the errors. With
        ``feature_last`` the last dim is a feature dim and must be static: a
        symbolic one would silently drop out of the width.
        """
        dims = self.shapes.get(name)
        if not dims:
            raise ValueError(f"{self.where}: cannot infer the shape of tensor {name!r} "
                             f"({what}); give the graph static feature dims and symbolic "
                             f"token dims")
        if 0 in dims:
            raise ValueError(f"{self.where}: tensor {name!r} ({what}) has a zero-size dim "
                             f"{dims}")
        if feature_last and not isinstance(dims[-1], int):
            raise ValueError(f"{self.where}: tensor {name!r} ({what}) has shape "
                             f"{_show_dims(dims)}: its last (feature) dim is symbolic, but "
                             f"its width is needed; give feature dims static sizes (only "
                             f"token dims may be symbolic)")
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
