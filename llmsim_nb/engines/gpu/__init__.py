"""The ``gpu`` engine: datasheet peaks and a few calibrated efficiencies.

- :mod:`.engine`: :class:`GPUEngine` (registered as ``gpu``), the model's
  description, and the op dispatch.
- :mod:`.spec`: :class:`GPUSpec` and its validation.
- :mod:`.memory`: DRAM and L2 traffic time; :mod:`.gemm`, :mod:`.attention`,
  :mod:`.vector`: one op family each.
"""

from .engine import (ATTENTION_QUERY_TILE, DTYPES, EFFICIENCY_FIELDS, GEMM_TILES, ROTARY_OPS,
                     SPLIT_K_MIN_DEPTH, GPUEngine, GPUSpec)

__all__ = ["ATTENTION_QUERY_TILE", "DTYPES", "EFFICIENCY_FIELDS", "GEMM_TILES", "GPUEngine",
           "GPUSpec", "ROTARY_OPS", "SPLIT_K_MIN_DEPTH"]
