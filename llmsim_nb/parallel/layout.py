"""ParallelLayout: how devices split a model (tensor, pipeline, hybrid).

The original's flags keep their meaning: ``npu_num`` devices in ``npu_group``
pipeline groups. ``parallel="tensor"`` puts all devices in one tensor-parallel
group (``npu_group`` must be 1); ``"pipeline"`` makes every device a stage;
``"hybrid"`` makes ``npu_group`` stages of ``npu_num / npu_group`` tensor-
parallel devices. Devices are numbered stage by stage: stage ``s`` owns
devices ``s*tp .. s*tp + tp - 1``, which on a hierarchical topology puts each
tensor-parallel group in the fastest (lowest) dimensions.

Layers are split over stages as evenly as possible, earlier stages taking the
remainder. A batch is cut into micro-batches of consecutive requests with
balanced token counts so that stages overlap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..config import ATTENTION_PLACEMENTS, ConfigWarning, SystemConfig
from ..config.original_flags import resolved_attention, resolved_micro_batches
from ..models.ops import BatchShape


@dataclass(frozen=True, slots=True)
class ParallelLayout:
    """Tensor- and pipeline-parallel degrees and how work is placed.

    Attributes
    ----------
    tp, pp : int
        Tensor-parallel group size and number of pipeline stages.
    stage_layers : tuple of int
        Transformer layers per stage (sums to the model's layers).
    num_micro_batches : int
        Most micro-batches an iteration's batch is cut into.
    attention : {"heads", "requests", "data"}
        ``heads``: each TP rank computes its share of every request's heads
        (Megatron; ranks are symmetric). ``requests``: Orca's selective
        batching, as the original simulator does: each rank computes all heads
        of its own requests (request ``r`` on rank ``r % tp``), with all-to-alls
        around attention; the group size need not divide the heads. ``data``:
        attention data parallelism for mixture-of-experts models (vLLM's
        data-parallel attention, SGLang's DP attention): each rank of the group
        is a data-parallel rank that runs everything but the routed experts
        with whole weights on its own requests (request ``r`` on rank
        ``r % tp``), and the experts are spread over the group (expert
        parallelism) with an all-to-all dispatch and combine around them.
    """

    tp: int
    pp: int
    stage_layers: tuple[int, ...]
    num_micro_batches: int = 1
    attention: str = "heads"

    def __post_init__(self) -> None:
        if self.tp < 1 or self.pp < 1:
            raise ValueError(f"ParallelLayout tp={self.tp}, pp={self.pp} must be >= 1")
        if len(self.stage_layers) != self.pp or min(self.stage_layers) < 1:
            raise ValueError(f"ParallelLayout.stage_layers={self.stage_layers} must give each "
                             f"of the {self.pp} stages at least one layer")
        if self.num_micro_batches < 1:
            raise ValueError(f"ParallelLayout.num_micro_batches must be >= 1, got "
                             f"{self.num_micro_batches}")
        if self.attention not in ATTENTION_PLACEMENTS[1:]:
            raise ValueError(f"ParallelLayout.attention={self.attention!r} is not one of "
                             f"{list(ATTENTION_PLACEMENTS[1:])}")

    @classmethod
    def from_config(cls, system: SystemConfig, num_layers: int,
                    num_heads: int | None = None, model_name: str = "",
                    mixture_of_experts: bool = False) -> "ParallelLayout":
        """Resolve the seed's flags; ``attention="auto"`` needs ``num_heads``.

        With ``num_heads`` given and a tensor-parallel degree that does not
        divide it, ``attention_placement='heads'`` raises ``ValueError`` (the
        heads cannot be split evenly), and ``'auto'`` switches to ``requests``
        placement (Orca's selective batching) with a
        :class:`~llmsim_nb.config.ConfigWarning` (a ``UserWarning``) naming the
        flags and the switch, never silently; ``'requests'`` is what asks for
        that placement without a warning. ``model_name`` only names the model
        in those messages. With ``pim_type`` local or pool, ``micro_batches=0``
        means 1 and ``'auto'`` means ``requests`` for a dense model
        (``mixture_of_experts`` False): the original's meaning of its PIM flags
        (:mod:`llmsim_nb.config.original_flags`).
        """
        n, groups = system.npu_num, system.npu_group
        if system.parallel == "tensor":
            if groups != 1:
                raise ValueError(f"parallel='tensor' uses one group of all {n} NPUs; "
                                 f"npu_group={groups} needs parallel='hybrid' or 'pipeline'")
            tp, pp = n, 1
        elif system.parallel == "pipeline":
            if groups not in (1, n):
                raise ValueError(f"parallel='pipeline' makes each of the {n} NPUs a stage; "
                                 f"npu_group={groups} needs parallel='hybrid'")
            tp, pp = 1, n
        else:
            tp, pp = n // groups, groups
        if pp > num_layers:
            raise ValueError(f"{pp} pipeline stages exceed the model's {num_layers} layers")
        base, extra = divmod(num_layers, pp)
        layers = tuple(base + (1 if s < extra else 0) for s in range(pp))
        # With pim_type given, 0 / 'auto' take the original's values (1 micro-batch,
        # requests placement): config.original_flags says why.
        micro = resolved_micro_batches(system, pp)
        attention = resolved_attention(system, mixture_of_experts)
        # Data parallelism keeps every head on every rank: tp need not divide them.
        if num_heads is not None and num_heads % tp and attention != "data":
            of = f" of {model_name!r}" if model_name else ""
            flags = f"npu_num={n}, npu_group={groups}, parallel={system.parallel!r}"
            if attention == "heads":
                raise ValueError(
                    f"attention_placement='heads': tensor parallelism {tp} must divide the "
                    f"{num_heads} attention heads{of} ({flags} give a {tp}-way tensor-parallel "
                    f"group); use attention_placement='requests' (Orca's selective batching: "
                    f"each rank computes all heads of its own requests) or a tensor-parallel "
                    f"degree that divides {num_heads}")
            if attention == "auto":
                warnings.warn(
                    f"attention_placement='auto' with {flags}: tensor parallelism {tp} does "
                    f"not divide the {num_heads} attention heads{of}, so attention switches "
                    f"from heads to requests placement (Orca's selective batching: each rank "
                    f"computes all heads of its own requests, with all-to-alls around "
                    f"attention); pass attention_placement='requests' to choose it (and "
                    f"silence this warning) or use a tensor-parallel degree that divides "
                    f"{num_heads}", ConfigWarning, stacklevel=2)
                attention = "requests"
        if attention == "auto":
            attention = "heads"
        return cls(tp, pp, layers, micro, attention)

    @property
    def num_devices(self) -> int:
        return self.tp * self.pp

    @property
    def is_single_device(self) -> bool:
        return self.num_devices == 1

    def attention_ranks(self, batch: BatchShape) -> np.ndarray:
        """The tensor-parallel rank that computes each request's attention with
        ``requests`` or ``data`` placement: request ``r`` on rank ``r % tp`` (as
        the original simulator places them). The engines ask the layout, so the placement
        rule lives here, not in code that times operators."""
        return batch.request_ids % self.tp

    def stage_devices(self, stage: int) -> range:
        return range(stage * self.tp, (stage + 1) * self.tp)

    def first_layer(self, stage: int) -> int:
        return sum(self.stage_layers[:stage])

    def split(self, batch: BatchShape) -> list[BatchShape]:
        """Cut ``batch`` into consecutive, token-balanced, non-empty micro-batches."""
        count = min(self.num_micro_batches, batch.num_requests)
        if count <= 1:
            return [batch]
        tokens = np.cumsum(batch.num_query_tokens)
        targets = tokens[-1] * np.arange(1, count) / count
        n = batch.num_requests
        bounds = [0]
        for i, cut in enumerate((np.searchsorted(tokens, targets, side="left") + 1).tolist()):
            # Strictly increasing and leaving a request for every later micro-batch.
            bounds.append(min(max(cut, bounds[-1] + 1), n - (count - 1 - i)))
        bounds.append(n)
        return [subset(batch, slice(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]


def subset(batch: BatchShape, index) -> BatchShape:
    """The requests of ``batch`` selected by ``index`` (slice, mask or positions)."""
    return BatchShape(batch.request_ids[index], batch.num_query_tokens[index],
                      batch.num_context_tokens[index], batch.num_logit_tokens[index])
