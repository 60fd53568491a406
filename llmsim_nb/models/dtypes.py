"""Storage data types of weights and KV cache, as bits per element.

A model's tensors need not share one precision: DeepSeek-V3 ships fp8 weights
with bf16 activations, gpt-oss stores its expert weights in MXFP4 and keeps
attention, router, embeddings and head in bf16, and a server may keep the KV
cache in fp8. :class:`~.spec.ModelSpec` names a data type per tensor class
(``weight_dtype``, ``expert_weight_dtype``, ``kv_dtype``); this table turns
the name into the bits one element occupies in memory, scale factors included,
so weight bytes and KV bytes are what a reviewer computes by hand:

=========  ======  ============================================================
name       bits    layout
=========  ======  ============================================================
fp32       32
bf16       16
fp16       16
fp8        8       e4m3/e5m2; a per-tensor or per-128x128-block fp32 scale adds
                   under 0.03 % and is not counted
int8       8       per-channel scales not counted (under 0.1 %)
mxfp4      4.25    OCP microscaling: 4-bit e2m1 elements, one 8-bit e8m0 scale
                   per 32 elements (4 + 8/32)
nvfp4      4.5     4-bit e2m1 elements, one 8-bit e4m3 scale per 16 (4 + 8/16)
int4       4.125   GPTQ/AWQ-style group quantisation: 4-bit elements, one
                   16-bit scale per group of 128 (4 + 16/128); zero points of
                   asymmetric schemes are not counted
=========  ======  ============================================================

The compute precision of activations is ``ModelSpec.dtype_bytes``; the
engine's own ``dtype`` (a hardware preset such as ``h100-sxm-fp8``) says at
which precision its tensor cores run.
"""

from __future__ import annotations

#: Bits per stored element, scale factors included (see the module docstring).
DTYPE_BITS = {"fp32": 32.0, "bf16": 16.0, "fp16": 16.0, "fp8": 8.0, "int8": 8.0,
              "mxfp4": 4.25, "nvfp4": 4.5, "int4": 4.125}

#: Data types a KV cache may be stored in (block-scaled 4-bit KV is not modelled).
KV_DTYPES = ("fp32", "bf16", "fp16", "fp8")

#: The data type of a whole-byte ``dtype_bytes`` (the default of every tensor class).
DTYPE_OF_BYTES = {4: "fp32", 2: "bf16", 1: "fp8"}


def element_bytes(name: str) -> float:
    """Bytes one element of data type ``name`` occupies (``DTYPE_BITS / 8``)."""
    return DTYPE_BITS[name] / 8.0


def check_dtype(owner: str, field: str, value: str, allowed=tuple(DTYPE_BITS)) -> None:
    """Raise a one-line ValueError unless ``value`` is one of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{owner}.{field}={value!r} is not a known data type; allowed: "
                         f"{list(allowed)}")
