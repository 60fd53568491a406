"""The measured-latency data model: :class:`Measurement` rows and their table.

Also the builders every reader shares: the :class:`~llmsim_nb.models.ops.Op`
objects a measured operator ran (built with the same template as a simulation)
and the shape key the ``profiled`` engine interpolates within. The file formats
are read by :mod:`.loading`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ...models.ops import BatchShape, Op
from ...models.spec import ModelSpec
from ...models.decoder import decoder_template
from ...models.template import BlockTemplate
from ...parallel.sharding import shard_template

#: Op name that stands for the three attention ops timed as one kernel.
ATTENTION = "attention"


@dataclass(frozen=True)
class Measurement:
    """One measured latency.

    Attributes
    ----------
    source : str
        Where the row came from (``"vidur"``, ``"llmcompass"``, a file name).
    device : str
    label : str
        The measured operator as its source names it (the per-kind grouping of
        error reports), e.g. ``"vidur/attn_pre_proj"``.
    ops : tuple of Op
        What was measured; its predicted latency is the sum over these ops.
    latency : float
        Measured seconds.
    standalone : bool
        A stand-alone kernel (e.g. a softmax writing to DRAM) rather than a
        serving-block op; engines time it with ``time_vector_op`` when they have one.
    num_tokens, context : int
        The shape's token counts (for interpolation and reports).
    key : tuple
        Shape key the ``profiled`` engine interpolates within.
    """

    source: str
    device: str
    label: str
    ops: tuple[Op, ...]
    latency: float
    standalone: bool = False
    num_tokens: int = 0
    context: int = 0
    key: tuple = field(default=())

    @property
    def kind(self) -> str:
        """``attention`` for a fused attention row, else the op kind's value."""
        if len(self.ops) > 1 or self.ops[0].kind.is_attention:
            return ATTENTION
        return self.ops[0].kind.value


@dataclass(frozen=True)
class Measurements:
    """A list of :class:`Measurement` with table views."""

    rows: tuple[Measurement, ...]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __add__(self, other: "Measurements") -> "Measurements":
        return Measurements(self.rows + other.rows)

    @property
    def latency(self) -> np.ndarray:
        return np.array([r.latency for r in self.rows], dtype=np.float64)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.rows], dtype=object)

    def select(self, mask) -> "Measurements":
        mask = np.asarray(mask, dtype=bool)
        return Measurements(tuple(r for r, keep in zip(self.rows, mask) if keep))

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"source": [r.source for r in self.rows],
                             "device": [r.device for r in self.rows],
                             "label": self.labels, "kind": [r.kind for r in self.rows],
                             "num_tokens": [r.num_tokens for r in self.rows],
                             "context": [r.context for r in self.rows],
                             "latency_s": self.latency})


# --------------------------------------------------------------------- builders
def _ops_for(template: BlockTemplate, op_name: str, num_tokens: int, context: int
             ) -> tuple[Op, ...]:
    """The ops ``op_name`` of ``template`` runs for one request of ``num_tokens``
    query tokens after ``context`` cached ones (non-attention ops: ``num_tokens`` rows)."""
    batch = BatchShape.from_lists([num_tokens], [context])
    recipes = template.embedding + template.block + template.head
    if op_name == ATTENTION:
        chosen = [t for t in template.block if t.kind.is_attention]
    else:
        chosen = [t for t in recipes if t.name == op_name]
    if not chosen:
        raise ValueError(f"op={op_name!r} is not an op of model {template.name!r}; known: "
                         f"{sorted({t.name for t in recipes} | {ATTENTION})}")
    return tuple(t.instantiate(batch, template.dtype_bytes) for t in chosen)


def _shape_key(ops: tuple[Op, ...], template: BlockTemplate | None) -> tuple:
    """What identifies a measured curve apart from its token counts."""
    op = ops[0]
    if op.kind.is_attention:
        heads = next(t for t in template.block if t.kind.is_attention)
        return (ATTENTION if len(ops) > 1 else op.kind.value, heads.num_heads,
                heads.num_kv_heads, heads.head_dim)
    return (op.kind.value, int(op.n[0]), int(op.k[0]), op.batch, float(op.weight_bytes))


def _template(model: ModelSpec, tp: int) -> BlockTemplate:
    return shard_template(decoder_template(model), tp, by_heads=True)
