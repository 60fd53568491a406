"""The graph converter: execution graphs for tensor, pipeline and hybrid parallelism."""

from .builder import GraphConverter
from .export import graph_to_dict, save_graph_json
from .nodes import CollectiveType, ExecutionGraph, Node, NodeType

__all__ = ["GraphConverter", "ExecutionGraph", "Node", "NodeType", "CollectiveType",
           "graph_to_dict", "save_graph_json"]
