"""Export an execution graph as JSON in a schema close to Chakra's.

Schema (``llmsim_nb.execution_graph`` version 1)::

    {
      "schema": "llmsim_nb.execution_graph", "version": 1,
      "num_devices": 8,
      "multiplicity": {"0": 4, "4": 4},        # device -> devices it stands for
      "nodes": [
        {"id": 0, "name": "L0.input_norm..out_proj.mb0", "type": "COMP_NODE",
         "device": 0, "duration_micros": 12.5, "data_deps": [],
         "attr": {"layer": 0, "stage": 0, "micro_batch": 0, "op": "input_norm..out_proj"}},
        {"id": 1, "name": "...", "type": "COMM_COLL_NODE", "device": 0,
         "comm_type": "ALL_REDUCE", "comm_size": 1048576, "comm_group": [0, 1, 2, 3],
         "data_deps": [0], "attr": {...}},
        {"type": "COMM_SEND_NODE", "comm_size": ..., "comm_dst": 4, ...},
        {"type": "COMM_RECV_NODE", "comm_size": ..., "comm_src": 0, ...},
        {"type": "MEM_LOAD_NODE", "tensor_size": ..., ...}
      ]
    }

Field names follow Chakra's ``et_def.proto`` where it has one (``id``,
``name``, ``type``, ``data_deps``, ``duration_micros``, ``comm_type``,
``comm_size``, ``comm_src``, ``comm_dst``, ``tensor_size``); durations are in
microseconds as there, sizes in bytes. With a schedule, each node also gets
``start_time_micros`` and ``end_time_micros``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .nodes import ExecutionGraph, NodeType

SCHEMA = "llmsim_nb.execution_graph"


def graph_to_dict(graph: ExecutionGraph, schedule=None) -> dict:
    """The JSON-ready dict of ``graph`` (and node times from ``schedule``)."""
    nodes = []
    for n in graph.nodes:
        item: dict = {"id": n.id, "name": n.name, "type": n.type.value, "device": n.device,
                      "data_deps": list(n.data_deps)}
        if n.type is NodeType.COMP:
            item["duration_micros"] = n.duration * 1e6
        elif n.type is NodeType.COMM_COLL:
            item.update(comm_type=n.collective.value, comm_size=n.size,
                        comm_group=list(n.group))
        elif n.type is NodeType.COMM_SEND:
            item.update(comm_size=n.size, comm_dst=n.peer)
        elif n.type is NodeType.COMM_RECV:
            item.update(comm_size=n.size, comm_src=n.peer)
        else:
            item["tensor_size"] = n.size
        attr = {k: getattr(n, k) for k in ("layer", "stage", "micro_batch") if getattr(n, k) >= 0}
        if n.op:
            attr["op"] = n.op
        if n.request_ids:
            attr["request_ids"] = list(n.request_ids)
        item["attr"] = attr
        if schedule is not None:
            item["start_time_micros"] = float(schedule.start_at[n.id]) * 1e6
            item["end_time_micros"] = float(schedule.end_at[n.id]) * 1e6
        nodes.append(item)
    return {"schema": SCHEMA, "version": 1, "num_devices": graph.num_devices,
            "multiplicity": {str(k): v for k, v in sorted(graph.multiplicity.items())},
            "nodes": nodes}


def save_graph_json(graph: ExecutionGraph, path: str | Path, schedule=None) -> Path:
    """Write :func:`graph_to_dict` to ``path``."""
    path = Path(path)
    path.write_text(json.dumps(graph_to_dict(graph, schedule), indent=1))
    return path
