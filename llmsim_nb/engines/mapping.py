"""Operator mapping: which operator instances run on the PIM, which on the NPU.

A *mapping policy* is any callable ``policy(op) -> bool array`` with one entry
per instance of ``op`` (True = PIM). Per instance, because one attention op
holds every request of the batch: a prefill request's attention is a GEMM
(the NPU's work) while a decode request's is a GEMV (the PIM's). Weight GEMMs
and vector ops have one instance, so they go wholly to one side.

Write your own in a notebook cell and pass it to
``Simulator(config, trace, pim_mapping=my_policy)``::

    def ffn_too(op):
        decode = op.m == 1
        if op.kind is OpKind.GEMM:   # tiny decode-only batches: GEMV on PIM
            return np.full(op.num_instances, bool(op.m[0] <= 4))
        return decode & (op.kind in (OpKind.ATTN_SCORE, OpKind.ATTN_CONTEXT))

Built-in policies (``--pim_mapping``):

- ``decode-attention`` (default, NeuPIMs): attention score and context of
  decode tokens (one query row) on PIM, everything else on the NPU;
- ``attention``: all attention score / context on PIM, prefill included;
- ``fastest``: each op instance where the engines' models time it faster
  (GEMV-shaped ops land on PIM, large GEMMs on the NPU: the split comes out of
  the models); needs both engines, see :class:`FastestPolicy`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..models.ops import Op, OpKind
from .base import Engine

MappingPolicy = Callable[[Op], np.ndarray]

_GEMV_KINDS = (OpKind.ATTN_SCORE, OpKind.ATTN_CONTEXT)


def decode_attention(op: Op) -> np.ndarray:
    """NeuPIMs' mapping: score and context of one-query-row (decode) requests on PIM."""
    if op.kind in _GEMV_KINDS:
        return op.m == 1
    return np.zeros(op.num_instances, dtype=bool)


def all_attention(op: Op) -> np.ndarray:
    """Every attention score / context instance on PIM (prefill too)."""
    return np.full(op.num_instances, op.kind in _GEMV_KINDS)


class FastestPolicy:
    """Each instance on whichever engine's model times it faster (ties: NPU).

    Parameters
    ----------
    npu, pim : Engine
    """

    def __init__(self, npu: Engine, pim: Engine) -> None:
        self.npu = npu
        self.pim = pim

    def __call__(self, op: Op) -> np.ndarray:
        return self.pim.time_op(op).latency < self.npu.time_op(op).latency


#: Policies by ``--pim_mapping`` name; "fastest" is built from the engines.
POLICIES: dict[str, MappingPolicy | None] = {
    "decode-attention": decode_attention,
    "attention": all_attention,
    "fastest": None,
}


def get_policy(name: str, npu: Engine | None = None, pim: Engine | None = None
               ) -> MappingPolicy:
    """The policy called ``name`` (``fastest`` needs ``npu`` and ``pim``)."""
    if name not in POLICIES:
        raise ValueError(f"pim_mapping={name!r} is not one of {sorted(POLICIES)}")
    if name == "fastest":
        if npu is None or pim is None:
            raise ValueError("pim_mapping='fastest' needs both the NPU and the PIM engine")
        return FastestPolicy(npu, pim)
    return POLICIES[name]


def apply_policy(policy: MappingPolicy, op: Op) -> np.ndarray:
    """``policy(op)`` checked: a bool array with one entry per instance."""
    mask = np.asarray(policy(op))
    if mask.shape != (op.num_instances,) or mask.dtype != bool:
        raise ValueError(f"mapping policy {getattr(policy, '__name__', policy)!r} returned "
                         f"{mask.dtype} array of shape {mask.shape} for op {op.name!r}; it "
                         f"must return a bool array of shape ({op.num_instances},)")
    return mask


def take(op: Op, index: np.ndarray) -> Op:
    """The instances of ``op`` selected by ``index`` (mask or positions), as an op."""
    ids = None if op.request_ids is None else op.request_ids[index]
    return Op(op.name, op.kind, op.m[index], op.n[index], op.k[index], op.batch,
              op.flops[index], op.bytes_read[index], op.bytes_written[index],
              op.weight_bytes, ids)


__all__ = ["FastestPolicy", "MappingPolicy", "POLICIES", "all_attention", "apply_policy",
           "decode_attention", "get_policy", "take"]
