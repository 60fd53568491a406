"""How work is split: over devices (tensor / pipeline layout, weight shards) and
within a batch (micro-batches, sub-batches). Below both the scheduler and the
engines, so each may use it without knowing the other.

- :mod:`.layout`: :class:`ParallelLayout` and micro-batches.
- :mod:`.sharding`: one tensor-parallel rank's share of a layer template.
- :mod:`.partition`: NeuPIMs' balanced sub-batches.
"""

from .layout import ParallelLayout, subset
from .partition import request_costs, split_batch
from .sharding import shard_template

__all__ = ["ParallelLayout", "request_costs", "shard_template", "split_batch", "subset"]
